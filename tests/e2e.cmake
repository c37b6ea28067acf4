# The end-to-end tests (tests/e2e/README.md) and the simulated RAPL they read.
add_executable(powerd-e2e-raplsim ${CMAKE_CURRENT_SOURCE_DIR}/e2e/raplsim.c)
# Each end-to-end test is a script of tests/e2e/ given the binaries; it needs root, runs alone
# (RUN_SERIAL: they share the machine's CPUs and timing bounds) and skips (77) where it cannot.
function(powerd_e2e_test name script timeout_s)
	add_test(NAME ${name}
		COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/${script}
			--host $<TARGET_FILE:powerd-host>
			--guest $<TARGET_FILE:powerd-guest>
			--raplsim $<TARGET_FILE:powerd-e2e-raplsim>
			--source ${CMAKE_SOURCE_DIR})
	set_tests_properties(${name} PROPERTIES LABELS "e2e" TIMEOUT ${timeout_s} RUN_SERIAL TRUE
		SKIP_RETURN_CODE 77)
endfunction()

# Against a real libvirtd and qemu (tests/e2e/e2e.sh), in a private mount namespace with throwaway
# libvirt state: shares, trees and guests reading them over 9p and virtiofs.
powerd_e2e_test(e2e_libvirt_qemu e2e.sh 1200)
# The attribution against libvirt's own CPU time: two guests under load at once, on libvirt's
# cgroups (tests/e2e/e2e-attribution.sh, about 2 minutes).
powerd_e2e_test(e2e_attribution e2e-attribution.sh 600)

# The energy channel end to end (tests/e2e/e2e-channel.sh, about 2 minutes): hot-plug, the guest
# reading the port, save/restore, managedsave, kill -9 of powerd-host, live migration both ways,
# the 9p share's save limit.
powerd_e2e_test(e2e_channel e2e-channel.sh 900)
# powerd-host.service under a real systemd that also runs libvirtd: a debootstrap'd root (cached)
# booted by systemd-nspawn, the package installed with apt (tests/e2e/e2e-systemd-host.sh, about
# 35 s with the root cached, 4 minutes more to debootstrap it the first time).
powerd_e2e_test(e2e_systemd_host e2e-systemd-host.sh 1200)
# powerd-host on Proxmox VE, two nodes emulated around the real qemu (tests/e2e/e2e-proxmox.sh,
# the stand-in qm tests/e2e/pve-qm.py): qemu as qemu-server starts it, the channel only into VMs
# with the hookscript, QMP free, live migrations both ways, a hook that cannot plug failing the
# migration, VM and powerd-host faults, attribution by the VMs' scopes (about 3 minutes).
powerd_e2e_test(e2e_proxmox e2e-proxmox.sh 600)
# OpenStack Nova's domains (tests/e2e/e2e-nova.sh, about a minute): the info series from Nova's
# metadata and its live change, a default instance's no_controller reason (metric, status, one
# log line per start), and an instance with the guest agent's channel hot-plugged and metered.
powerd_e2e_test(e2e_nova e2e-nova.sh 600)
# The image path (tests/e2e/e2e-image.sh, about 5 minutes with the image cached, 3 more to build it):
# a real Debian 12 VM image with the powerd-guest package installed by apt, booted from its disk;
# hot-plug, save/restore, managedsave, live migration both ways, guest service restarts,
# node_exporter and a prometheus/procfs reader with Kepler's wrap rule in the guest, a 9p share boot.
powerd_e2e_test(e2e_image e2e-image.sh 1500)
