# powerd-host's libvirt side (libvirt loop bridge, shares, domain manager, daemon): labels, and the
# same programs under valgrind (label "valgrind"). The daemon test starts the real binary, so the
# binary itself is run under valgrind too: --once against the test driver, inside a private mount
# namespace (unshare -m) so that its mounts vanish with it.
foreach(t test_host_libvirt test_host_mounts test_host_domains)
	if(TARGET ${t})
		set_tests_properties(${t} PROPERTIES LABELS "unit;host" TIMEOUT 120)
	endif()
endforeach()
foreach(t test_host_daemon test_host_privsep)
	if(TARGET ${t})
		set_tests_properties(${t} PROPERTIES LABELS "integration;host" TIMEOUT 120)
	endif()
endforeach()

# Proxmox VE: real qemu processes (TCG, -S), a dozen of them started one after another.
if(TARGET test_host_proxmox)
	set_tests_properties(test_host_proxmox PROPERTIES LABELS "integration;host" TIMEOUT 300)
endif()

find_program(VALGRIND_PROGRAM valgrind)
find_program(UNSHARE_PROGRAM unshare)
if(VALGRIND_PROGRAM AND NOT POWERD_SANITIZE)
	# test_host_privsep: the daemon it starts runs natively (valgrind has no seccomp(2)); the
	# test's own process, and the hand-over header, under valgrind.
	foreach(name test_host_libvirt test_host_mounts test_host_domains test_host_privsep)
		if(TARGET ${name})
			add_test(NAME ${name}_valgrind COMMAND ${VALGRIND_PROGRAM} -q --error-exitcode=1
				--leak-check=full --errors-for-leak-kinds=definite,indirect
				$<TARGET_FILE:${name}>)
			set_tests_properties(${name}_valgrind PROPERTIES LABELS "valgrind" TIMEOUT 600)
		endif()
	endforeach()
	if(UNSHARE_PROGRAM)
		set(_once ${CMAKE_CURRENT_BINARY_DIR}/powerd-host-once-valgrind.sh)
		file(WRITE ${_once} [=[
#!/bin/sh
# powerd-host --once under valgrind: test driver, fixture powercap tree, temporary share_dir.
set -eu
host=$1 valgrind=$2
d=$(mktemp -d)
cleanup() {
	awk -v d="$d/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf "$d"
}
trap cleanup EXIT
mkdir -p "$d/pc/intel-rapl:0"
echo package-0 >"$d/pc/intel-rapl:0/name"
echo 1000 >"$d/pc/intel-rapl:0/energy_uj"
echo 262143328850 >"$d/pc/intel-rapl:0/max_energy_range_uj"
printf 'libvirt_uri: test:///default\ninterval: 100ms\nshare_dir: %s/share\npowercap_root: %s/pc\nmetrics_listen: ""\n' "$d" "$d" >"$d/h.yaml"
"$valgrind" -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	"$host" -c "$d/h.yaml" --once >"$d/out"
grep -q '^powerd_domains 1$' "$d/out"
]=])
		add_test(NAME powerd_host_once_valgrind COMMAND ${UNSHARE_PROGRAM} -m --propagation private
			/bin/sh ${_once} $<TARGET_FILE:powerd-host> ${VALGRIND_PROGRAM})
		set_tests_properties(powerd_host_once_valgrind PROPERTIES LABELS "valgrind" TIMEOUT 300)
	endif()
endif()
