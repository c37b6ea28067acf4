# Benchmark programs (bench/run builds and runs them). Included by the top-level CMakeLists.txt,
# or passed as -DCMAKE_PROJECT_INCLUDE=bench/bench.cmake by bench/run: either way the targets are
# declared at the end of the top-level directory, once the daemon libraries and the warning
# flags exist. Programs that need a module not landed yet are skipped.
include_guard(GLOBAL)

set(POWERD_BENCH_DIR ${CMAKE_CURRENT_LIST_DIR})

function(powerd_bench_targets)
	set(b ${POWERD_BENCH_DIR})
	set(src ${CMAKE_SOURCE_DIR})

	add_library(powerd_bench_harness STATIC ${b}/harness.c)
	target_link_libraries(powerd_bench_harness PUBLIC powerd_common)

	add_executable(bench_floor ${b}/bench_floor.c)
	target_link_libraries(bench_floor PRIVATE powerd_bench_harness)

	add_executable(bench_scan ${b}/bench_scan.c)
	target_link_libraries(bench_scan PRIVATE powerd_bench_harness)

	add_executable(bench_idle ${b}/bench_idle.c)
	target_link_libraries(bench_idle PRIVATE powerd_common)

	if(EXISTS ${src}/hostd/accounting.c AND EXISTS ${src}/common/tree.c
			AND EXISTS ${src}/hostd/cputime.c)
		add_executable(bench_tick ${b}/bench_tick.c)
		target_link_libraries(bench_tick PRIVATE powerd_bench_harness powerd_hostd)
	else()
		message(STATUS "bench: hostd accounting/tree/cputime not landed, no bench_tick")
	endif()

	if(EXISTS ${src}/common/tree.c)
		add_executable(bench_define ${b}/bench_define.c)
		target_link_libraries(bench_define PRIVATE powerd_bench_harness powerd_hostd
			PkgConfig::LIBVIRT)
		if(EXISTS ${src}/hostd/domains.h AND EXISTS ${src}/hostd/domains.c)
			target_compile_definitions(bench_define PRIVATE HAVE_DOMAINS=1)
		endif()
	else()
		message(STATUS "bench: hostd tree not landed, no bench_define")
	endif()

	if(EXISTS ${src}/hostd/manager_proxmox.c)
		add_executable(bench_manager ${b}/bench_manager.c)
		target_link_libraries(bench_manager PRIVATE powerd_bench_harness powerd_hostd
			PkgConfig::LIBVIRT)
	else()
		message(STATUS "bench: hostd manager_proxmox not landed, no bench_manager")
	endif()

	if(EXISTS ${src}/hostd/domain_info.c AND EXISTS ${src}/hostd/manager.h)
		add_executable(bench_scrape_nova ${b}/bench_scrape_nova.c)
		target_link_libraries(bench_scrape_nova PRIVATE powerd_bench_harness powerd_hostd
			PkgConfig::LIBVIRT PkgConfig::ZLIB)
	else()
		message(STATUS "bench: hostd domain_info not landed, no bench_scrape_nova")
	endif()
endfunction()

cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL powerd_bench_targets)
