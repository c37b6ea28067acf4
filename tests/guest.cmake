# powerd-guest's tests: the daemon test starts the real binary, so it is an integration test with
# a tighter time limit than the default.
if(TARGET test_guest_daemon)
	set_tests_properties(test_guest_daemon PROPERTIES LABELS "integration;guest" TIMEOUT 120)
endif()
foreach(t test_guest_config test_guest_attribution test_guest_scaphandre test_guest_channel)
	if(TARGET ${t})
		set_tests_properties(${t} PROPERTIES LABELS "unit;guest")
	endif()
endforeach()

# The guest's unit tests under valgrind, and powerd-guest --once on a bare-metal-like fixture tree
# (no heartbeat, so the run does not depend on timing under valgrind). Label "valgrind".
find_program(VALGRIND_PROGRAM valgrind)
if(VALGRIND_PROGRAM AND NOT POWERD_SANITIZE)
	foreach(name test_guest_config test_guest_attribution test_guest_source test_guest_scaphandre
		test_guest_channel)
		if(TARGET ${name})
			add_test(NAME ${name}_valgrind COMMAND ${VALGRIND_PROGRAM} -q --error-exitcode=1
				--leak-check=full --errors-for-leak-kinds=definite,indirect
				$<TARGET_FILE:${name}>)
			set_tests_properties(${name}_valgrind PROPERTIES LABELS "valgrind;guest"
				TIMEOUT 600)
		endif()
	endforeach()
	add_test(NAME test_guest_once_valgrind COMMAND /bin/sh -c [=[
set -e
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/tree/intel-rapl:0/intel-rapl:0:0"
echo package-0 > "$d/tree/intel-rapl:0/name"
echo 1000 > "$d/tree/intel-rapl:0/energy_uj"
echo 262143328850 > "$d/tree/intel-rapl:0/max_energy_range_uj"
echo core > "$d/tree/intel-rapl:0/intel-rapl:0:0/name"
echo 10 > "$d/tree/intel-rapl:0/intel-rapl:0:0/energy_uj"
printf 'source: %s/tree\ninterval: 100ms\nattribution: processes\nmetric_names: scaphandre\n' "$d" > "$d/g.yaml"
"$1" -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect "$2" -c "$d/g.yaml" --once > "$d/out"
grep -q '^powerd_source_up 1$' "$d/out"
]=] sh ${VALGRIND_PROGRAM} $<TARGET_FILE:powerd-guest>)
	set_tests_properties(test_guest_once_valgrind PROPERTIES LABELS "valgrind;guest" TIMEOUT 300)
endif()

# A source that really hangs: a FUSE file system in the test process (libfuse3, scripts/deps)
# whose reads block on demand. Without libfuse3 the test is built and skips.
pkg_check_modules(FUSE3 IMPORTED_TARGET fuse3)
if(TARGET test_guest_stall)
	if(FUSE3_FOUND)
		target_link_libraries(test_guest_stall PRIVATE PkgConfig::FUSE3)
		target_compile_definitions(test_guest_stall PRIVATE HAVE_FUSE3)
	endif()
	set_tests_properties(test_guest_stall PROPERTIES LABELS "integration;guest" TIMEOUT 120)
endif()

# powerd-guest itself on the tree Scaphandre's qemu exporter writes (energy_uj alone, no newline,
# an empty intel-rapl:0:0/): up and flagged; without energy_uj, down with the file named.
add_test(NAME test_guest_once_scaphandre_tree COMMAND /bin/sh -c [=[
set -e
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/vm/intel-rapl:0" "$d/vm/intel-rapl:0:0"
printf 123456 > "$d/vm/intel-rapl:0/energy_uj"
printf 'source: %s/vm\ninterval: 100ms\nattribution: none\n' "$d" > "$d/g.yaml"
"$1" -c "$d/g.yaml" --once > "$d/out"
grep -q '^powerd_source_up 1$' "$d/out"
grep -q '^powerd_source_info{layout="scaphandre-qemu"} 1$' "$d/out"
grep -q '^powerd_energy_joules_total{zone="package-0"} 0.123456$' "$d/out"
rm "$d/vm/intel-rapl:0/energy_uj"
if "$1" -c "$d/g.yaml" --once > "$d/out" 2> "$d/err"; then exit 1; fi
grep -q '^powerd_source_up 0$' "$d/out"
grep -q 'vm: intel-rapl:0/energy_uj: No such file or directory' "$d/err"
! grep -q 'missing' "$d/err"
]=] sh $<TARGET_FILE:powerd-guest>)
set_tests_properties(test_guest_once_scaphandre_tree PROPERTIES LABELS "integration;guest" TIMEOUT 60)
