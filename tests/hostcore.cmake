# powerd-host's core modules (attribution, config, tree, cputime, accounting, the channel's record and
# publisher, domain info labels) under valgrind: the same cmocka programs, failing on any memory
# error or leak. Label "valgrind".
find_program(VALGRIND_PROGRAM valgrind)
if(VALGRIND_PROGRAM AND NOT POWERD_SANITIZE)
	foreach(name test_host_attribution test_host_config test_host_tree test_host_cputime
			test_host_accounting test_channel_record test_host_channel
			test_host_domain_info)
		if(TARGET ${name})
			add_test(NAME ${name}_valgrind COMMAND ${VALGRIND_PROGRAM} -q --error-exitcode=1
				--leak-check=full --errors-for-leak-kinds=definite,indirect
				$<TARGET_FILE:${name}>)
			set_tests_properties(${name}_valgrind PROPERTIES LABELS "valgrind" TIMEOUT 600)
		endif()
	endforeach()
endif()
