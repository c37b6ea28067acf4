# Installation layout and Debian packages (CPack, one package per daemon). Included by the top-level
# CMakeLists.txt after the targets exist.

# powerd-host attach/detach edit domain XML with libxml2 (libvirt itself depends on it).
pkg_check_modules(LIBXML REQUIRED IMPORTED_TARGET libxml-2.0)
target_link_libraries(powerd_hostd PUBLIC PkgConfig::LIBXML)
