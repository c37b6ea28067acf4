/* libFuzzer target: the kernel CPU time parsers of common/procstat.c (the "cpu" line of /proc/stat,
 * /proc/<pid>/stat, a cgroup v2 cpu.stat) and the guest's /proc/stat reader on top of them
 * (cpuacct_parse_stat, which takes a NUL-terminated buffer). */
#include "common/procstat.h"
#include "common/util.h"
#include "guestd/cpuacct.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct cpu_times t;
	struct pid_stat ps;
	uint64_t ns;

	if (procstat_parse_cpu(buf, size, &t) == 0) {
		if (t.n_fields < 4)
			abort();
		(void)cpu_times_busy_ns(&t);
	}
	if (procstat_parse_pid(buf, size, &ps) == 0) {
		/* comm lies inside the buffer */
		if (ps.comm < buf || ps.comm + ps.comm_len > buf + size)
			abort();
		(void)procstat_ticks_to_ns(ps.cpu_ticks);
	}
	procstat_parse_cgroup_usage(buf, size, &ns);

	_cleanup_free_ char *s = xstrndup(buf, size);
	cpuacct_parse_stat(s, &ns);
	return 0;
}
