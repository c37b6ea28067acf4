# End-to-end test against a real libvirtd and qemu (TCG): tests/e2e/e2e.sh. Needs root; it runs
# in a private mount namespace with throwaway libvirt state and skips (77) where it cannot.
add_executable(powerd-e2e-raplsim ${CMAKE_CURRENT_SOURCE_DIR}/e2e/raplsim.c)
add_test(NAME e2e_libvirt_qemu
	COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/e2e.sh
		--host $<TARGET_FILE:powerd-host>
		--guest $<TARGET_FILE:powerd-guest>
		--raplsim $<TARGET_FILE:powerd-e2e-raplsim>
		--source ${CMAKE_SOURCE_DIR})
set_tests_properties(e2e_libvirt_qemu PROPERTIES LABELS "e2e" TIMEOUT 1200 RUN_SERIAL TRUE
	SKIP_RETURN_CODE 77)
# The attribution against libvirt's own CPU time: two guests under load at once, on libvirt's
# cgroups (tests/e2e/e2e-attribution.sh, about 2 minutes).
add_test(NAME e2e_attribution
	COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/e2e-attribution.sh
		--host $<TARGET_FILE:powerd-host>
		--guest $<TARGET_FILE:powerd-guest>
		--raplsim $<TARGET_FILE:powerd-e2e-raplsim>
		--source ${CMAKE_SOURCE_DIR})
set_tests_properties(e2e_attribution PROPERTIES LABELS "e2e" TIMEOUT 600 RUN_SERIAL TRUE
	SKIP_RETURN_CODE 77)

# The energy channel end to end (tests/e2e/e2e-channel.sh, about 2 minutes): hot-plug, the guest
# reading the port, save/restore, managedsave, kill -9 of powerd-host, live migration both ways,
# the 9p share's save limit.
add_test(NAME e2e_channel
	COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/e2e-channel.sh
		--host $<TARGET_FILE:powerd-host>
		--guest $<TARGET_FILE:powerd-guest>
		--raplsim $<TARGET_FILE:powerd-e2e-raplsim>
		--source ${CMAKE_SOURCE_DIR})
set_tests_properties(e2e_channel PROPERTIES LABELS "e2e" TIMEOUT 900 RUN_SERIAL TRUE
	SKIP_RETURN_CODE 77)
# powerd-host.service under a real systemd that also runs libvirtd: a debootstrap'd root (cached)
# booted by systemd-nspawn, the package installed with apt (tests/e2e/e2e-systemd-host.sh, about
# 35 s with the root cached, 4 minutes more to debootstrap it the first time).
add_test(NAME e2e_systemd_host
	COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/e2e-systemd-host.sh
		--host $<TARGET_FILE:powerd-host>
		--guest $<TARGET_FILE:powerd-guest>
		--raplsim $<TARGET_FILE:powerd-e2e-raplsim>
		--source ${CMAKE_SOURCE_DIR})
set_tests_properties(e2e_systemd_host PROPERTIES LABELS "e2e" TIMEOUT 1200 RUN_SERIAL TRUE
	SKIP_RETURN_CODE 77)
# powerd-host on Proxmox VE, two nodes emulated around the real qemu (tests/e2e/e2e-proxmox.sh,
# the stand-in qm tests/e2e/pve-qm.py): qemu as qemu-server starts it, the channel only into VMs
# with the hookscript, QMP free, live migrations both ways, a hook that cannot plug failing the
# migration, VM and powerd-host faults, attribution by the VMs' scopes (about 3 minutes).
add_test(NAME e2e_proxmox
	COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/e2e-proxmox.sh
		--host $<TARGET_FILE:powerd-host>
		--guest $<TARGET_FILE:powerd-guest>
		--raplsim $<TARGET_FILE:powerd-e2e-raplsim>
		--source ${CMAKE_SOURCE_DIR})
set_tests_properties(e2e_proxmox PROPERTIES LABELS "e2e" TIMEOUT 600 RUN_SERIAL TRUE
	SKIP_RETURN_CODE 77)
# OpenStack Nova's domains (tests/e2e/e2e-nova.sh, about a minute): the info series from Nova's
# metadata and its live change, a default instance's no_controller reason (metric, status, one
# log line per start), and an instance with the guest agent's channel hot-plugged and metered.
add_test(NAME e2e_nova
	COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/e2e-nova.sh
		--host $<TARGET_FILE:powerd-host>
		--guest $<TARGET_FILE:powerd-guest>
		--raplsim $<TARGET_FILE:powerd-e2e-raplsim>
		--source ${CMAKE_SOURCE_DIR})
set_tests_properties(e2e_nova PROPERTIES LABELS "e2e" TIMEOUT 600 RUN_SERIAL TRUE
	SKIP_RETURN_CODE 77)
# The image path (tests/e2e/e2e-image.sh, about 5 minutes with the image cached, 3 more to build it):
# a real Debian 12 VM image with the powerd-guest package installed by apt, booted from its disk;
# hot-plug, save/restore, managedsave, live migration both ways, guest service restarts,
# node_exporter and a prometheus/procfs reader with Kepler's wrap rule in the guest, a 9p share boot.
add_test(NAME e2e_image
	COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/e2e-image.sh
		--host $<TARGET_FILE:powerd-host>
		--guest $<TARGET_FILE:powerd-guest>
		--raplsim $<TARGET_FILE:powerd-e2e-raplsim>
		--source ${CMAKE_SOURCE_DIR})
set_tests_properties(e2e_image PROPERTIES LABELS "e2e" TIMEOUT 1500 RUN_SERIAL TRUE
	SKIP_RETURN_CODE 77)
