/* libFuzzer target: the guest's CPU time readers (guestd/cpuacct.c) on a fixture /proc and cgroup
 * tree the input describes (see fuzz.h): "proc/stat", "proc/<pid>/stat", "proc/<pid>/cmdline",
 * "proc/<pid>/exe->...", "cgroup/cgroup.controllers" and "cgroup/system.slice/<unit>/cpu.stat"
 * (or v1's "cgroup/cpu,cpuacct/system.slice/<unit>/cpuacct.usage"). */
#include "common/util.h"
#include "guestd/cpuacct.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

/* Sorted by key; units each once (one label set is never served twice). */
static void check_sorted(const struct cpu_samples *s, bool is_unique)
{
	for (size_t i = 1; i < s->n; i++) {
		int c = strcmp(s->v[i - 1].key, s->v[i].key);

		if (c > 0 || (is_unique && c == 0))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *root = fuzz_fixture_build(data, size);
	_cleanup_free_ char *proc = xasprintf("%s/proc", root);
	_cleanup_free_ char *cgroup = xasprintf("%s/cgroup", root);
	unsigned fds = fuzz_fd_count();
	struct cpu_samples s = { 0 };
	uint64_t ns;

	cpuacct_busy_ns(proc, &ns);
	if (cpuacct_units(cgroup, &s) == 0) {
		check_sorted(&s, true);
		cpu_samples_free(&s);
	}
	/* with details on odd sizes: both ways are covered without a second pass */
	if (cpuacct_processes(proc, size & 1, &s) == 0) {
		check_sorted(&s, false);
		cpu_samples_free(&s);
	}
	if (fuzz_fd_count() != fds)
		abort();
	return 0;
}
