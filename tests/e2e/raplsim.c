/* A fake RAPL package for the end-to-end test: a sysfs-like powercap tree whose counters advance
 * with the machine's real busy CPU time, so that powerd-host sees energy that follows the load
 * the guests put on the host.
 *
 *   powerd-e2e-raplsim DIR IDLE_W MAX_W [PERIOD_MS]
 *
 * Every period: power = IDLE_W + (MAX_W - IDLE_W) * busy fraction of /proc/stat (all CPUs),
 * package energy_uj += power * dt, core energy_uj += 0.6 of it; both wrap at
 * max_energy_range_uj like the kernel's. Files are replaced by rename so a reader never sees a
 * partial value. Runs until killed. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Small enough that a long run exercises the wrap (about 4.3 kJ: minutes at tens of watts). */
#define RANGE_UJ UINT64_C(4294967295)

struct cpu_sample {
	unsigned long long busy, total;
};

static int read_cpu(struct cpu_sample *s)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "re");
	if (!f)
		return -errno;
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
		&v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
	fclose(f);
	if (n < 5)
		return -EINVAL;
	/* guest and guest_nice are already in user and nice */
	unsigned long long total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	s->total = total;
	s->busy = total - v[3] - v[4];
	return 0;
}

static void write_file(const char *dir, const char *file, const char *text)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, file);
	FILE *f = fopen(tmp, "we");
	if (!f) {
		fprintf(stderr, "raplsim: %s: %s\n", tmp, strerror(errno));
		exit(1);
	}
	fputs(text, f);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		fprintf(stderr, "raplsim: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	chmod(path, 0644);
}

static void write_u64(const char *dir, const char *file, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64 "\n", v);
	write_file(dir, file, buf);
}

static void make_zone(const char *dir, const char *name)
{
	char buf[128];
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "raplsim: %s: %s\n", dir, strerror(errno));
		exit(1);
	}
	snprintf(buf, sizeof(buf), "%s\n", name);
	write_file(dir, "name", buf);
	write_u64(dir, "max_energy_range_uj", RANGE_UJ);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s DIR IDLE_W MAX_W [PERIOD_MS]\n", argv[0]);
		return 2;
	}
	const char *root = argv[1];
	double idle_w = atof(argv[2]), max_w = atof(argv[3]);
	long period_ms = argc > 4 ? atol(argv[4]) : 100;
	char pkg[4096], core[4200];
	snprintf(pkg, sizeof(pkg), "%s/intel-rapl:0", root);
	snprintf(core, sizeof(core), "%s/intel-rapl:0:0", pkg);
	make_zone(pkg, "package-0");
	make_zone(core, "core");
	/* Start near the top of the range so that the wrap happens early in the run. */
	double pkg_uj = (double)RANGE_UJ - 200e6, core_uj = 1000;
	write_u64(pkg, "energy_uj", (uint64_t)pkg_uj);
	write_u64(core, "energy_uj", (uint64_t)core_uj);
	/* sysfs lists subzones at the top level too */
	char link[4200];
	snprintf(link, sizeof(link), "%s/intel-rapl:0:0", root);
	if (symlink("intel-rapl:0/intel-rapl:0:0", link) != 0 && errno != EEXIST)
		fprintf(stderr, "raplsim: %s: %s\n", link, strerror(errno));

	struct cpu_sample prev, cur;
	if (read_cpu(&prev) < 0)
		return 1;
	double t_prev = now_s();
	for (;;) {
		struct timespec ts = { period_ms / 1000, (period_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		if (read_cpu(&cur) < 0)
			return 1;
		double t = now_s(), dt = t - t_prev;
		double busy = cur.total > prev.total ? (double)(cur.busy - prev.busy) /
							       (double)(cur.total - prev.total)
						     : 0;
		double e = (idle_w + (max_w - idle_w) * busy) * dt * 1e6;
		pkg_uj += e;
		core_uj += 0.6 * e;
		while (pkg_uj >= (double)RANGE_UJ)
			pkg_uj -= (double)RANGE_UJ;
		while (core_uj >= (double)RANGE_UJ)
			core_uj -= (double)RANGE_UJ;
		write_u64(pkg, "energy_uj", (uint64_t)pkg_uj);
		write_u64(core, "energy_uj", (uint64_t)core_uj);
		prev = cur;
		t_prev = t;
	}
}
