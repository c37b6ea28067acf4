# Installation layout, Debian packages (CPack, one component package per daemon) and the
# systemd-sysext image of powerd-guest for Flatcar. Included by the top-level CMakeLists.txt after
# the targets exist.
#
#   sbin/powerd-host, sbin/powerd-guest            binaries (components host, guest)
#   <systemdsystemunitdir>/powerd-host.service      pkg-config systemd, else lib/systemd/system
#   <systemdsystemunitdir>/{powerd-guest.service,var-scaphandre.mount}
#   <etc>/libvirt/hooks/qemu.d/powerd (0755)       libvirt runs it before qemu starts
#   share/powerd/powerd-hook (0755)                 Proxmox VE hookscript, for a snippets storage
#   share/powerd/{host,guest}.yaml                  pristine examples
#   <etc>/powerd/{host,guest}.yaml                  copied from the examples only when absent
#   share/man/man8/powerd-{host,guest}.8.gz, share/man/man5/powerd-{host,guest}.yaml.5.gz
#
# <etc> is decided when installing, from the prefix then in force (GNUInstallDirs' rule: /etc for
# the /usr and / prefixes, <prefix>/etc otherwise, or CMAKE_INSTALL_SYSCONFDIR when absolute), so
# that `cmake --install build --prefix /usr` and CPack (which installs with prefix /usr under a
# DESTDIR) both land in /etc, whatever prefix the build was configured with.

# powerd-host attach/detach edit domain XML with libxml2 (libvirt itself depends on it).
pkg_check_modules(LIBXML REQUIRED IMPORTED_TARGET libxml-2.0)
target_link_libraries(powerd_hostd PUBLIC PkgConfig::LIBXML)

# --- where things go ------------------------------------------------------------------------------

if(NOT DEFINED POWERD_SYSTEMD_UNITDIR)
	pkg_get_variable(_powerd_unitdir systemd systemdsystemunitdir)
	if(NOT _powerd_unitdir)
		set(_powerd_unitdir "lib/systemd/system")
	endif()
	set(POWERD_SYSTEMD_UNITDIR "${_powerd_unitdir}" CACHE STRING
		"Directory for systemd system units (absolute, or relative to the prefix)")
endif()

set(POWERD_HOST_UNITS ${CMAKE_SOURCE_DIR}/units/powerd-host.service
	${CMAKE_SOURCE_DIR}/units/powerd-host.socket)
set(POWERD_GUEST_UNITS ${CMAKE_SOURCE_DIR}/units/powerd-guest.service
	${CMAKE_SOURCE_DIR}/units/var-scaphandre.mount)

# The duplicate of the top-level install(TARGETS) rule puts each binary in its package's component
# (the top-level rule's "Unspecified" component is left out of the packages below).
install(TARGETS powerd-host RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT host)
install(TARGETS powerd-guest RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT guest)

# Units are written alongside this file; OPTIONAL keeps a tree without them installable.
install(FILES ${POWERD_HOST_UNITS} DESTINATION ${POWERD_SYSTEMD_UNITDIR} COMPONENT host OPTIONAL)
install(FILES ${POWERD_GUEST_UNITS} DESTINATION ${POWERD_SYSTEMD_UNITDIR} COMPONENT guest OPTIONAL)
# powerd-guest's system user and group (units/powerd-guest.sysusers): the unit runs as it, the
# energy channel's port is its group's.
if(NOT DEFINED POWERD_SYSUSERS_DIR)
	pkg_get_variable(_powerd_sysusersdir systemd sysusersdir)
	if(NOT _powerd_sysusersdir)
		set(_powerd_sysusersdir "lib/sysusers.d")
	endif()
	set(POWERD_SYSUSERS_DIR "${_powerd_sysusersdir}" CACHE STRING
		"Directory for sysusers.d files (absolute, or relative to the prefix)")
endif()
install(FILES ${CMAKE_SOURCE_DIR}/units/powerd-guest.sysusers DESTINATION ${POWERD_SYSUSERS_DIR}
	RENAME powerd-guest.conf COMPONENT guest)
# The energy channel's port, given to the group powerd (units/60-powerd-guest.rules).
if(NOT DEFINED POWERD_UDEV_RULESDIR)
	pkg_get_variable(_powerd_udevdir udev udevdir)
	if(NOT _powerd_udevdir)
		set(_powerd_udevdir "lib/udev")
	endif()
	set(POWERD_UDEV_RULESDIR "${_powerd_udevdir}/rules.d" CACHE STRING
		"Directory for udev rules (absolute, or relative to the prefix)")
endif()
install(FILES ${CMAKE_SOURCE_DIR}/units/60-powerd-guest.rules DESTINATION ${POWERD_UDEV_RULESDIR}
	COMPONENT guest OPTIONAL)

# Man pages are installed gzip -9n'ed, as Debian policy wants (-n: reproducible).
set(_powerd_man_gz)
foreach(_page powerd-host.8 powerd-guest.8 powerd.yaml.5)
	add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/man/${_page}.gz
		COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
		COMMAND sh -c "gzip -9n -c \"$0\" >\"$1\"" ${CMAKE_SOURCE_DIR}/man/${_page}
			${CMAKE_BINARY_DIR}/man/${_page}.gz
		DEPENDS ${CMAKE_SOURCE_DIR}/man/${_page} VERBATIM)
	list(APPEND _powerd_man_gz ${CMAKE_BINARY_DIR}/man/${_page}.gz)
endforeach()
add_custom_target(powerd-man ALL DEPENDS ${_powerd_man_gz})
set(_man ${CMAKE_BINARY_DIR}/man)
install(FILES ${_man}/powerd-host.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT host)
install(FILES ${_man}/powerd-guest.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT guest)
# One page documents both files; each package ships it under its own name (two packages may not
# ship one path), and its NAME section lists powerd.yaml so that `man powerd.yaml` finds either.
install(FILES ${_man}/powerd.yaml.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5
	RENAME powerd-host.yaml.5.gz COMPONENT host)
install(FILES ${_man}/powerd.yaml.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5
	RENAME powerd-guest.yaml.5.gz COMPONENT guest)

foreach(_role host guest)
	install(FILES ${CMAKE_SOURCE_DIR}/conf/${_role}.yaml DESTINATION ${CMAKE_INSTALL_DATADIR}/powerd
		COMPONENT ${_role} OPTIONAL)
endforeach()

# Shared by the install(CODE) snippets below: the install-time /etc.
set(_powerd_etc_code [[
	if(IS_ABSOLUTE "@CMAKE_INSTALL_SYSCONFDIR@")
		set(_powerd_etc "@CMAKE_INSTALL_SYSCONFDIR@")
	elseif(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/")
		set(_powerd_etc "/etc")
	else()
		set(_powerd_etc "${CMAKE_INSTALL_PREFIX}/@CMAKE_INSTALL_SYSCONFDIR@")
	endif()
]])
string(CONFIGURE "${_powerd_etc_code}" _powerd_etc_code @ONLY)

# Configs: never overwrite a file the administrator has (DESTDIR-aware; file(INSTALL) adds it to
# install_manifest.txt). In the .deb they are conffiles, and dpkg keeps edited ones on upgrade.
foreach(_role host guest)
	install(CODE "${_powerd_etc_code}
	set(_src \"${CMAKE_SOURCE_DIR}/conf/${_role}.yaml\")
	if(EXISTS \"\${_src}\" AND NOT EXISTS \"\$ENV{DESTDIR}\${_powerd_etc}/powerd/${_role}.yaml\")
		file(INSTALL \"\${_src}\" DESTINATION \"\${_powerd_etc}/powerd\"
			FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
	elseif(EXISTS \"\${_src}\")
		message(STATUS \"Keeping: \$ENV{DESTDIR}\${_powerd_etc}/powerd/${_role}.yaml\")
	endif()" COMPONENT ${_role})
endforeach()

install(CODE "${_powerd_etc_code}
	set(_src \"${CMAKE_SOURCE_DIR}/units/powerd-libvirt-hook\")
	if(EXISTS \"\${_src}\")
		file(INSTALL \"\${_src}\" DESTINATION \"\${_powerd_etc}/libvirt/hooks/qemu.d\"
			RENAME powerd FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
			GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
	endif()" COMPONENT host)

# Proxmox VE: operators copy it into a snippets storage (docs/proxmox.md).
install(PROGRAMS ${CMAKE_SOURCE_DIR}/units/powerd-pve-hook DESTINATION ${CMAKE_INSTALL_DATADIR}/powerd
	RENAME powerd-hook COMPONENT host OPTIONAL)

# --- Debian packages: cpack -G DEB (both), or -D CPACK_COMPONENTS_ALL=host for one --------------

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME powerd)
set(CPACK_PACKAGE_VENDOR "powerd")
set(CPACK_PACKAGE_CONTACT "powerd maintainers <powerd@localhost>")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# CPack installs with CMAKE_INSTALL_PREFIX=/usr under DESTDIR: the install(CODE) above sees /usr.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL host guest)
set(CPACK_COMPONENTS_GROUPING IGNORE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/powerd/powerd")

set(CPACK_DEBIAN_HOST_PACKAGE_NAME powerd-host)
set(CPACK_DEBIAN_GUEST_PACKAGE_NAME powerd-guest)
set(CPACK_COMPONENT_HOST_DISPLAY_NAME "powerd-host")
set(CPACK_COMPONENT_GUEST_DISPLAY_NAME "powerd-guest")
set(CPACK_COMPONENT_HOST_DESCRIPTION "power sensor for Qemu/KVM virtual machines: hypervisor daemon
powerd-host reads the host's RAPL counters, splits the energy among libvirt domains (or Proxmox
VE VMs) by their CPU time and exports a powercap-like tree per domain that the guest mounts over
9p or virtiofs, and an energy channel (a virtio-serial port) that never blocks migration.")
set(CPACK_COMPONENT_GUEST_DESCRIPTION "power sensor for Qemu/KVM virtual machines: guest daemon
powerd-guest reads the powercap-like tree powerd-host shares into the VM, splits it over the
VM's services and serves Prometheus metrics.")
# postinst creates the system user powerd with adduser (README "Privilege separation"); the unit's
# ExecReload is procps's /bin/kill, absent from minimal roots (measured: systemctl reload failed
# in a debootstrap --variant=minbase root, tests/e2e/e2e-systemd-host.sh).
set(CPACK_DEBIAN_HOST_PACKAGE_DEPENDS "adduser, procps")
set(CPACK_DEBIAN_GUEST_PACKAGE_DEPENDS "procps")
set(CPACK_DEBIAN_HOST_PACKAGE_RECOMMENDS "libvirt-daemon-system")
set(CPACK_DEBIAN_HOST_PACKAGE_SUGGESTS "prometheus")
set(CPACK_DEBIAN_HOST_PACKAGE_CONTROL_EXTRA "${CMAKE_SOURCE_DIR}/packaging/host/postinst;${CMAKE_SOURCE_DIR}/packaging/host/prerm;${CMAKE_SOURCE_DIR}/packaging/host/postrm;${CMAKE_SOURCE_DIR}/packaging/host/conffiles")
set(CPACK_DEBIAN_GUEST_PACKAGE_CONTROL_EXTRA "${CMAKE_SOURCE_DIR}/packaging/guest/postinst;${CMAKE_SOURCE_DIR}/packaging/guest/prerm;${CMAKE_SOURCE_DIR}/packaging/guest/postrm;${CMAKE_SOURCE_DIR}/packaging/guest/conffiles")
include(CPack)

# --- powerd-guest for Flatcar: a systemd-sysext image -------------------------------------------
# Flatcar has glibc and libsystemd, not libevent, libyaml or zlib: those are linked statically.

pkg_get_variable(_powerd_libdir libevent libdir)
add_executable(powerd-guest-static EXCLUDE_FROM_ALL guestd/main.c
	$<TARGET_OBJECTS:powerd_guestd> $<TARGET_OBJECTS:powerd_common>)
get_target_property(_powerd_common_inc powerd_common INCLUDE_DIRECTORIES)
target_include_directories(powerd-guest-static PRIVATE ${_powerd_common_inc})
target_compile_options(powerd-guest-static PRIVATE ${LIBEVENT_CFLAGS} ${YAML_CFLAGS}
	${SYSTEMD_CFLAGS})
target_link_libraries(powerd-guest-static PRIVATE -Wl,-Bstatic event_extra event_core yaml z
	-Wl,-Bdynamic ${SYSTEMD_LINK_LIBRARIES} m)
target_link_directories(powerd-guest-static PRIVATE ${_powerd_libdir})

add_custom_target(sysext
	COMMAND ${CMAKE_SOURCE_DIR}/packaging/build-sysext.sh
		--binary $<TARGET_FILE:powerd-guest-static>
		--units ${CMAKE_SOURCE_DIR}/units
		--version ${PROJECT_VERSION}
		--output ${CMAKE_BINARY_DIR}/powerd-guest.raw
	DEPENDS powerd-guest-static ${CMAKE_SOURCE_DIR}/packaging/build-sysext.sh
	BYPRODUCTS ${CMAKE_BINARY_DIR}/powerd-guest.raw
	COMMENT "Building the systemd-sysext image powerd-guest.raw"
	VERBATIM)
