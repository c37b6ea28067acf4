/* What the host benchmarks share: a host fixture on its own tmpfs mount (a sysfs-like powercap
 * tree, a proc_root with <pid>/cgroup and a synthetic /proc/stat, a cgroup_root with a cpu.stat
 * per domain, and a directory per domain tree), advanced between ticks outside the timed region;
 * the floor's atomic replace; clocks, fd limits and the one-line result format. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* package-0 with two subzones, as most Intel servers: powerd writes three energy files a domain. */
#define FIXTURE_ZONES 3
extern const char *const fixture_zone_names[FIXTURE_ZONES];
/* Directory of zone i inside a domain tree (and inside the powercap fixture). */
extern const char *const fixture_zone_dirs[FIXTURE_ZONES];
#define FIXTURE_PID_BASE 100000

struct fixture {
	char *root; /* temporary directory with a tmpfs mounted on it */
	char *powercap_root;
	char *proc_root;
	char *cgroup_root;
	int trees_fd; /* <root>/trees: one directory per domain, "vm<i>" */
	size_t n_domains;
	int *cpu_fds; /* each domain's cpu.stat, kept open to advance it in place */
	uint64_t *cpu_usec;
	int zone_fds[FIXTURE_ZONES];
	uint64_t zone_uj[FIXTURE_ZONES];
	int stat_fd;
	uint64_t stat_user, stat_system, stat_idle;
	char *stat_tail; /* the real /proc/stat after its cpu lines, for a realistic size */
};

/* Build the fixture for n domains (domain i: pid FIXTURE_PID_BASE + i, name "vm<i>"). */
int fixture_new(size_t n, struct fixture **ret);
/* One interval's worth of CPU time and energy, written in place (kept-open fds stay valid). */
void fixture_advance(struct fixture *f);
/* Close, unmount (lazily) and remove. Accepts NULL. */
void fixture_free(struct fixture *f);

/* Atomic replace of dirfd/name with text: exclusive temporary, write, close, rename over. */
int bench_replace(int dirfd, const char *name, const char *text, size_t len);

/* RLIMIT_NOFILE as high as root may take it (fs.nr_open), else the hard limit. */
void bench_raise_nofile(void);
uint64_t bench_cpu_ns(void);  /* CLOCK_PROCESS_CPUTIME_ID */
uint64_t bench_wall_ns(void); /* CLOCK_MONOTONIC */
long bench_maxrss_kib(void);
double bench_median(double *v, size_t n); /* sorts v */
/* Ticks a run takes so that a run does about work_domains domain-ticks, at least min. */
unsigned bench_ticks_for(size_t n, unsigned min);
#define BENCH_RUNS_MAX 15
struct bench_result {
	unsigned runs;
	unsigned ticks;	    /* a run */
	double us_per_tick; /* CPU (user + system) of one tick, median of the runs */
};
/* Two warm-up ticks, then runs × ticks ticks, each after fixture_advance (not timed).
 * ticks 0: as many as make a run about 20000 domain-ticks. */
void bench_measure(struct fixture *f, int (*tick)(void *arg), void *arg, unsigned runs,
	unsigned ticks, struct bench_result *ret);
/* The same, with prepare(arg) before each tick, outside the timed region too (a channel's reader
 * drains what the last tick wrote). */
void bench_measure_prepared(struct fixture *f, int (*tick)(void *arg), void (*prepare)(void *arg),
	void *arg, unsigned runs, unsigned ticks, struct bench_result *ret);
/* The one result line: "bench=… n=… us_per_tick=… us_per_domain=… maxrss_kib=…". */
void bench_print(const char *bench, size_t n, const struct bench_result *res);

/* Exit with a message (benchmarks have no error recovery to do). */
void bench_die(const char *what, int err) __attribute__((noreturn));

/* The baselines' minimal read of the host's busy time: one pread of /proc/stat, USER_HZ ticks
 * (user + nice + system + irq + softirq + steal), exiting on any error. */
uint64_t bench_read_busy_ticks(int fd);
/* The host-side files a baseline reads every tick (<proc_root>/stat and each powercap zone's
 * energy_uj), opened read-only as a daemon would; exits on error. */
void bench_open_host_reads(
	const struct fixture *f, int *ret_stat_fd, int ret_zone_fds[FIXTURE_ZONES]);
