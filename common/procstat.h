/* Parsers of the kernel's CPU time files, shared by both daemons: the "cpu" line of /proc/stat,
 * /proc/<pid>/stat and the "usage_usec" line of a cgroup v2 cpu.stat. Pure functions over a buffer
 * the caller has read; every number is checked strictly (digits only, no overflow). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The aggregate "cpu" line, in ns. guest and guest_nice are left out: the kernel already counts
 * them in user and nice. Fields a short line lacks are 0. */
struct cpu_times {
	uint64_t user_ns, nice_ns, system_ns, idle_ns, iowait_ns, irq_ns, softirq_ns, steal_ns;
	size_t n_fields; /* on the line: 4 (2.4 kernels), 10 (since 2.6.33), more if appended */
};

/* The first line of buf (len bytes, the head of /proc/stat) must be "cpu", spaces, 4 to 10
 * decimals one space apart (one trailing space allowed), and a '\n': -EINVAL otherwise, -ERANGE
 * when a number does not fit. The rest of buf is not looked at. */
int procstat_parse_cpu(const char *buf, size_t len, struct cpu_times *ret);

/* Sums wrap modulo 2^64 after years on big hosts; callers use differences. */
static inline uint64_t cpu_times_all_ns(const struct cpu_times *t)
{
	return t->user_ns + t->nice_ns + t->system_ns + t->idle_ns + t->iowait_ns + t->irq_ns +
	       t->softirq_ns + t->steal_ns;
}

/* all - idle - iowait - steal: steal is time this system's CPUs did not run at all (the
 * hypervisor under a nested or cloud host, or the host under a guest, ran something else) */
static inline uint64_t cpu_times_busy_ns(const struct cpu_times *t)
{
	return cpu_times_all_ns(t) - t->idle_ns - t->iowait_ns - t->steal_ns;
}

/* /proc/<pid>/stat: "pid (comm) state ppid ...". comm may hold spaces and parentheses, so it
 * ends at the last ')'. comm points into the parsed buffer and is not NUL-terminated. */
struct pid_stat {
	const char *comm;
	size_t comm_len;
	uint64_t cpu_ticks;   /* utime + stime (fields 14 and 15) */
	uint64_t start_ticks; /* starttime (field 22), since boot */
};

/* Fields 3 to 22 must be there, each non-empty after a single space, with decimals in 14, 15 and
 * 22: -EINVAL otherwise (also for a NUL in buf), -ERANGE when a number does not fit. */
int procstat_parse_pid(const char *buf, size_t len, struct pid_stat *ret);

/* The first "usage_usec N" line of a cgroup v2 cpu.stat, in ns: -EINVAL without one or when N is
 * not a decimal (or buf holds a NUL), -ERANGE when N or N * 1000 does not fit. */
int procstat_parse_cgroup_usage(const char *buf, size_t len, uint64_t *ret_ns);

/* Clock ticks (USER_HZ, sysconf(_SC_CLK_TCK), 100 when unknown) to ns, modulo 2^64. */
uint64_t procstat_ticks_to_ns(uint64_t ticks);
