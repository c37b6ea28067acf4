/* libFuzzer target: powerd-host's CPU time sources (hostd/cputime.c) on a fixture /proc and cgroup
 * tree the input describes (see fuzz.h): "proc/1/cgroup" is the qemu process's cgroup file, which
 * names the cgroup whose "cpu.stat" or "<controllers>/.../cpuacct.usage" under "cgroup/" is read;
 * "proc/1/stat" is the fallback and "proc/stat" the host's busy time. */
#include "common/util.h"
#include "hostd/cputime.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *root = fuzz_fixture_build(data, size);
	_cleanup_free_ char *proc = xasprintf("%s/proc", root);
	_cleanup_free_ char *cgroup = xasprintf("%s/cgroup", root);
	unsigned fds = fuzz_fd_count();
	struct cpu_source *src;
	struct host_cpu *h;
	uint64_t ns, busy, all;

	if (cpu_source_open(proc, cgroup, 1, &src) == 0) {
		const char *path = cpu_source_path(src);

		/* whatever the cgroup file says, no ".." leads out of cgroup_root */
		if (!path || !startswith(path, root) || strstr(path, "/../"))
			abort();
		cpu_source_read(src, &ns);
		cpu_source_free(src);
	}
	if (host_cpu_open(proc, &h) == 0) {
		host_cpu_read(h, &busy, &all);
		host_cpu_free(h);
	}
	if (fuzz_fd_count() != fds)
		abort();
	return 0;
}
