# Packaging, distribution and operations files (ctest -L packaging): Debian packages, units,
# man pages, Prometheus/Grafana files, Butane/Ignition configs, the systemd-sysext image.
# Scripts exit 77 when a tool they need is missing (reported as skipped, not passed).
set(_pkg ${CMAKE_SOURCE_DIR}/tests/packaging)

function(powerd_packaging_test name)
	add_test(NAME ${name} COMMAND ${ARGN})
	set_tests_properties(${name} PROPERTIES LABELS packaging SKIP_RETURN_CODE 77 TIMEOUT 600)
endfunction()

powerd_packaging_test(packaging_prometheus ${_pkg}/test-prometheus.sh ${CMAKE_SOURCE_DIR})
powerd_packaging_test(packaging_man ${_pkg}/test-man.sh ${CMAKE_SOURCE_DIR}
	$<TARGET_FILE:powerd-host> $<TARGET_FILE:powerd-guest>)
# Installs and purges the packages on this machine: alone, never beside another dpkg user.
powerd_packaging_test(packaging_deb ${_pkg}/test-deb.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
set_tests_properties(packaging_deb PROPERTIES RUN_SERIAL TRUE)
powerd_packaging_test(packaging_sysext ${_pkg}/test-sysext.sh ${CMAKE_SOURCE_DIR}
	${CMAKE_BINARY_DIR})
set_tests_properties(packaging_sysext PROPERTIES RUN_SERIAL TRUE)
powerd_packaging_test(packaging_butane ${_pkg}/test-butane.sh ${CMAKE_SOURCE_DIR})
powerd_packaging_test(packaging_units ${_pkg}/test-units.sh ${CMAKE_SOURCE_DIR})
