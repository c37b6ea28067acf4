/* Helpers shared by the libFuzzer targets: silence the daemons' logs, hand an input to a loader
 * that wants a path (a memfd seen through /proc/self/fd), and build a small fixture directory
 * tree (powercap zones, /proc, cgroups) from an input in a private temporary directory. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Call once per process, from LLVMFuzzerInitialize: no log output from powerd or libevent. */
void fuzz_quiet(void);

/* A memfd holding data; its path ("/proc/self/fd/N") into path. Returns the fd (close it), or
 * aborts: a fuzz target has no use for an input it could not hand over. */
int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t path_size);

/* How many of the fds 0..255 are open: equal before and after an input, or the code under test
 * leaked a descriptor. */
unsigned fuzz_fd_count(void);

/* Rebuild the fixture tree from data and return its root (the same directory for the whole
 * process, emptied first; removed at exit). One entry per line:
 *   PATH=CONTENT    a regular file; in CONTENT "\n" is a newline, "\0" a NUL, "\\" a backslash,
 *                   "\R" the tree's root (absolute: for mountinfo's mount points)
 *   PATH/           a directory
 *   PATH->TARGET    a symbolic link (TARGET relative, without "..": the tree stays closed)
 * PATH is relative, at most FUZZ_FIXTURE_DEPTH components, none "." or ".."; parents are made as
 * needed. Lines that do not fit are skipped; at most FUZZ_FIXTURE_ENTRIES entries. */
#define FUZZ_FIXTURE_DEPTH 6
#define FUZZ_FIXTURE_ENTRIES 64
const char *fuzz_fixture_build(const uint8_t *data, size_t size);
