# The documentation (ctest -L docs): every relative link and #anchor of README.md, docs/*.md and
# tests/e2e/README.md resolves, so that moving a heading or a file cannot leave a dead link.
add_test(NAME docs_links COMMAND ${CMAKE_SOURCE_DIR}/tests/docs/test-links.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(docs_links PROPERTIES LABELS docs SKIP_RETURN_CODE 77 TIMEOUT 60)
