/* The host fixture and the helpers every host benchmark uses (see harness.h). */
#include "bench/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

const char *const fixture_zone_names[FIXTURE_ZONES] = { "package-0", "core", "dram" };
const char *const fixture_zone_dirs[FIXTURE_ZONES] = {
	"intel-rapl:0",
	"intel-rapl:0/intel-rapl:0:0",
	"intel-rapl:0/intel-rapl:0:1",
};

/* max_energy_range_uj of a common Intel server package */
#define FIXTURE_MAX_RANGE_UJ UINT64_C(262143328850)

/* The fixture mounted now, so that bench_die does not leave a mount behind. */
static char *mounted_root;

void bench_die(const char *what, int err)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(err));
	if (mounted_root && umount2(mounted_root, MNT_DETACH) == 0)
		rmdir(mounted_root);
	exit(1);
}

static void xmkdirat(int dirfd, const char *path)
{
	if (mkdirat(dirfd, path, 0755) < 0 && errno != EEXIST)
		bench_die(path, errno);
}

static void xwrite_file_at(int dirfd, const char *path, const char *text)
{
	_cleanup_close_ int fd =
		openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		bench_die(path, errno);
	int r = write_all(fd, text, strlen(text));
	if (r < 0)
		bench_die(path, -r);
}

/* Rewrite a kept-open file in place: readers that keep it open (and pread) see the new value. */
static void rewrite_fd(int fd, const char *text, size_t len)
{
	if (pwrite(fd, text, len, 0) != (ssize_t)len || ftruncate(fd, (off_t)len) < 0)
		bench_die("rewrite", errno);
}

static int open_rw_at(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		bench_die(path, errno);
	return fd;
}

static void write_cpu_stat(int fd, uint64_t usage_usec)
{
	char buf[256];
	int len = snprintf(buf, sizeof(buf),
		"usage_usec %" PRIu64 "\nuser_usec %" PRIu64 "\nsystem_usec %" PRIu64
		"\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
		usage_usec, usage_usec / 4 * 3, usage_usec - usage_usec / 4 * 3);
	rewrite_fd(fd, buf, (size_t)len);
}

static void write_proc_stat(struct fixture *f)
{
	size_t tail = strlen(f->stat_tail);
	_cleanup_free_ char *buf = xmalloc(tail + 512);
	/* user nice system idle iowait irq softirq steal guest guest_nice, in USER_HZ */
	int len = snprintf(buf, 512,
		"cpu  %" PRIu64 " 0 %" PRIu64 " %" PRIu64 " 0 0 0 0 0 0\n"
		"cpu0 %" PRIu64 " 0 %" PRIu64 " %" PRIu64 " 0 0 0 0 0 0\n"
		"cpu1 %" PRIu64 " 0 %" PRIu64 " %" PRIu64 " 0 0 0 0 0 0\n",
		f->stat_user, f->stat_system, f->stat_idle, f->stat_user / 2, f->stat_system / 2,
		f->stat_idle / 2, f->stat_user - f->stat_user / 2,
		f->stat_system - f->stat_system / 2, f->stat_idle - f->stat_idle / 2);
	memcpy(buf + len, f->stat_tail, tail);
	rewrite_fd(f->stat_fd, buf, (size_t)len + tail);
}

/* Everything of the real /proc/stat after the per-CPU lines (intr, ctxt, btime, …). */
static char *real_stat_tail(void)
{
	_cleanup_fclose_ FILE *in = fopen("/proc/stat", "re");
	char *line = NULL;
	size_t cap = 0;
	_cleanup_free_ char *tail = xstrdup("");

	if (!in)
		return TAKE_PTR(tail);
	while (getline(&line, &cap, in) > 0) {
		if (startswith(line, "cpu"))
			continue;
		char *joined = xasprintf("%s%s", tail, line);
		free(tail);
		tail = joined;
	}
	free(line);
	return TAKE_PTR(tail);
}

int fixture_new(size_t n, struct fixture **ret)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	const char *tmpdir = getenv("BENCH_TMPDIR");
	char tmpl[512];
	char path[512];

	snprintf(tmpl, sizeof(tmpl), "%s/powerd-bench.XXXXXX", tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(tmpl))
		bench_die("mkdtemp", errno);
	f->root = xstrdup(tmpl);
	if (mount("powerd-bench", f->root, "tmpfs", 0, "size=2g,mode=0755") < 0)
		bench_die("mount tmpfs", errno);
	mounted_root = f->root;
	_cleanup_close_ int root_fd = open(f->root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (root_fd < 0)
		bench_die(f->root, errno);
	f->n_domains = n;
	f->powercap_root = xasprintf("%s/powercap", f->root);
	f->proc_root = xasprintf("%s/proc", f->root);
	f->cgroup_root = xasprintf("%s/cgroup", f->root);
	xmkdirat(root_fd, "powercap");
	xmkdirat(root_fd, "proc");
	xmkdirat(root_fd, "cgroup");
	xmkdirat(root_fd, "cgroup/machine");
	xmkdirat(root_fd, "trees");
	f->trees_fd = openat(root_fd, "trees", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (f->trees_fd < 0)
		bench_die("trees", errno);

	/* A sysfs-like powercap tree: nested subzones plus their top-level links. */
	for (size_t z = 0; z < FIXTURE_ZONES; z++) {
		snprintf(path, sizeof(path), "powercap/%s", fixture_zone_dirs[z]);
		xmkdirat(root_fd, path);
		snprintf(path, sizeof(path), "powercap/%s/name", fixture_zone_dirs[z]);
		char text[64];
		snprintf(text, sizeof(text), "%s\n", fixture_zone_names[z]);
		xwrite_file_at(root_fd, path, text);
		snprintf(path, sizeof(path), "powercap/%s/max_energy_range_uj",
			fixture_zone_dirs[z]);
		snprintf(text, sizeof(text), "%" PRIu64 "\n", FIXTURE_MAX_RANGE_UJ);
		xwrite_file_at(root_fd, path, text);
		snprintf(path, sizeof(path), "powercap/%s/energy_uj", fixture_zone_dirs[z]);
		f->zone_uj[z] = UINT64_C(1000000) * (z + 1);
		snprintf(text, sizeof(text), "%" PRIu64 "\n", f->zone_uj[z]);
		xwrite_file_at(root_fd, path, text);
		f->zone_fds[z] = open_rw_at(root_fd, path);
		if (z > 0) {
			const char *leaf = strrchr(fixture_zone_dirs[z], '/') + 1;
			snprintf(path, sizeof(path), "powercap/%s", leaf);
			if (symlinkat(fixture_zone_dirs[z], root_fd, path) < 0)
				bench_die(path, errno);
		}
	}

	f->stat_tail = real_stat_tail();
	xwrite_file_at(root_fd, "proc/stat", "");
	f->stat_fd = open_rw_at(root_fd, "proc/stat");
	f->stat_user = 100000;
	f->stat_system = 50000;
	f->stat_idle = 1000000;
	write_proc_stat(f);

	f->cpu_fds = xcalloc(n, sizeof(int));
	f->cpu_usec = xcalloc(n, sizeof(uint64_t));
	for (size_t i = 0; i < n; i++) {
		unsigned long pid = FIXTURE_PID_BASE + i;
		/* libvirt's layout: qemu sits in the scope's "emulator" leaf, vCPUs beside it */
		char scope[128];
		snprintf(scope, sizeof(scope), "machine/qemu-%zu-vm%zu.libvirt-qemu", i + 1, i);
		snprintf(path, sizeof(path), "proc/%lu", pid);
		xmkdirat(root_fd, path);
		snprintf(path, sizeof(path), "proc/%lu/cgroup", pid);
		char text[256];
		snprintf(text, sizeof(text), "0::/%s/emulator\n", scope);
		xwrite_file_at(root_fd, path, text);
		snprintf(path, sizeof(path), "proc/%lu/stat", pid);
		snprintf(text, sizeof(text),
			"%lu (qemu-system-x86) S 1 %lu %lu 0 -1 4194560 0 0 0 0 100 50 0 0 20 0 "
			"4 0 100 0 0\n",
			pid, pid, pid);
		xwrite_file_at(root_fd, path, text);
		snprintf(path, sizeof(path), "cgroup/%s", scope);
		xmkdirat(root_fd, path);
		snprintf(path, sizeof(path), "cgroup/%s/emulator", scope);
		xmkdirat(root_fd, path);
		snprintf(path, sizeof(path), "cgroup/%s/emulator/cpu.stat", scope);
		xwrite_file_at(root_fd, path, "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
		snprintf(path, sizeof(path), "cgroup/%s/cgroup.controllers", scope);
		xwrite_file_at(root_fd, path, "cpu io memory pids\n");
		snprintf(path, sizeof(path), "cgroup/%s/cpu.stat", scope);
		xwrite_file_at(root_fd, path, "");
		f->cpu_fds[i] = open_rw_at(root_fd, path);
		f->cpu_usec[i] = 1000 * (i % 97);
		write_cpu_stat(f->cpu_fds[i], f->cpu_usec[i]);

		snprintf(path, sizeof(path), "vm%zu", i);
		xmkdirat(f->trees_fd, path);
	}
	xwrite_file_at(root_fd, "cgroup/cgroup.controllers", "cpu io memory pids\n");
	*ret = f;
	return 0;
}

void fixture_advance(struct fixture *f)
{
	uint64_t sum_usec = 0;

	/* Domains use 0.1..1.06 ms of CPU an interval, a little more than they did */
	for (size_t i = 0; i < f->n_domains; i++) {
		uint64_t step = 100 + 10 * (i % 97);
		f->cpu_usec[i] += step;
		sum_usec += step;
		write_cpu_stat(f->cpu_fds[i], f->cpu_usec[i]);
	}
	/* The host is busier than all domains together (USER_HZ = 100) */
	uint64_t busy_ticks = sum_usec / 10000 + 20;
	f->stat_user += busy_ticks * 3 / 4;
	f->stat_system += busy_ticks - busy_ticks * 3 / 4;
	f->stat_idle += 50;
	write_proc_stat(f);
	for (size_t z = 0; z < FIXTURE_ZONES; z++) {
		char text[32];
		f->zone_uj[z] = (f->zone_uj[z] + 40000000 / (z + 1)) % FIXTURE_MAX_RANGE_UJ;
		int len = snprintf(text, sizeof(text), "%" PRIu64 "\n", f->zone_uj[z]);
		rewrite_fd(f->zone_fds[z], text, (size_t)len);
	}
}

void fixture_free(struct fixture *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_domains; i++)
		close(f->cpu_fds[i]);
	for (size_t z = 0; z < FIXTURE_ZONES; z++)
		close(f->zone_fds[z]);
	close(f->stat_fd);
	close(f->trees_fd);
	/* Lazy: a module that still holds an fd inside must not make the mount outlive us. */
	if (umount2(f->root, MNT_DETACH) < 0)
		fprintf(stderr, "bench: umount %s: %s\n", f->root, strerror(errno));
	rmdir(f->root);
	if (mounted_root == f->root)
		mounted_root = NULL;
	free(f->cpu_fds);
	free(f->cpu_usec);
	free(f->stat_tail);
	free(f->powercap_root);
	free(f->proc_root);
	free(f->cgroup_root);
	free(f->root);
	free(f);
}

int bench_replace(int dirfd, const char *name, const char *text, size_t len)
{
	char tmp[128];

	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len) {
		int r = -errno;
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	close(fd);
	if (renameat(dirfd, tmp, dirfd, name) < 0)
		return -errno;
	return 0;
}

void bench_raise_nofile(void)
{
	struct rlimit rl;
	unsigned long nr_open = 0;
	_cleanup_fclose_ FILE *in = fopen("/proc/sys/fs/nr_open", "re");

	if (in && fscanf(in, "%lu", &nr_open) != 1)
		nr_open = 0;
	if (nr_open > 0) {
		rl.rlim_cur = rl.rlim_max = nr_open;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

uint64_t bench_wall_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

long bench_maxrss_kib(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return ru.ru_maxrss;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

unsigned bench_ticks_for(size_t n, unsigned min)
{
	size_t t = 20000 / (n ? n : 1);

	return t < min ? min : t > 2000 ? 2000 : (unsigned)t;
}

void bench_measure(struct fixture *f, int (*tick)(void *arg), void *arg, unsigned runs,
	unsigned ticks, struct bench_result *ret)
{
	bench_measure_prepared(f, tick, NULL, arg, runs, ticks, ret);
}

void bench_measure_prepared(struct fixture *f, int (*tick)(void *arg), void (*prepare)(void *arg),
	void *arg, unsigned runs, unsigned ticks, struct bench_result *ret)
{
	if (ticks == 0)
		ticks = bench_ticks_for(f->n_domains, 5);
	double per_run[BENCH_RUNS_MAX];

	if (runs > BENCH_RUNS_MAX)
		runs = BENCH_RUNS_MAX;
	/* the first ticks create or adopt trees and have no previous sample: not steady state */
	for (unsigned w = 0; w < 2; w++) {
		fixture_advance(f);
		if (prepare)
			prepare(arg);
		int r = tick(arg);
		if (r < 0)
			bench_die("tick", -r);
	}
	for (unsigned run = 0; run < runs; run++) {
		uint64_t cpu_ns = 0;

		for (unsigned t = 0; t < ticks; t++) {
			fixture_advance(f);
			if (prepare)
				prepare(arg);
			uint64_t start = bench_cpu_ns();
			int r = tick(arg);
			cpu_ns += bench_cpu_ns() - start;
			if (r < 0)
				bench_die("tick", -r);
		}
		per_run[run] = (double)cpu_ns / 1e3 / ticks;
	}
	ret->ticks = ticks;
	ret->runs = runs;
	ret->us_per_tick = bench_median(per_run, runs);
}

void bench_print(const char *bench, size_t n, const struct bench_result *res)
{
	printf("bench=%s n=%zu runs=%u ticks=%u us_per_tick=%.2f us_per_domain=%.3f "
	       "maxrss_kib=%ld\n",
		bench, n, res->runs, res->ticks, res->us_per_tick,
		res->us_per_tick / (double)(n ? n : 1), bench_maxrss_kib());
	fflush(stdout);
}

uint64_t bench_read_busy_ticks(int fd)
{
	char buf[8192];
	ssize_t len = pread(fd, buf, sizeof(buf) - 1, 0);
	unsigned long long v[8] = { 0 };

	if (len < 0)
		bench_die("pread /proc/stat", errno);
	buf[len] = '\0';
	if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		    &v[4], &v[5], &v[6], &v[7]) != 8)
		bench_die("parse /proc/stat", EINVAL);
	return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

void bench_open_host_reads(
	const struct fixture *f, int *ret_stat_fd, int ret_zone_fds[FIXTURE_ZONES])
{
	char path[512];

	snprintf(path, sizeof(path), "%s/stat", f->proc_root);
	*ret_stat_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*ret_stat_fd < 0)
		bench_die(path, errno);
	for (size_t z = 0; z < FIXTURE_ZONES; z++) {
		snprintf(path, sizeof(path), "%s/%s/energy_uj", f->powercap_root,
			fixture_zone_dirs[z]);
		ret_zone_fds[z] = open(path, O_RDONLY | O_CLOEXEC);
		if (ret_zone_fds[z] < 0)
			bench_die(path, errno);
	}
}
