/* CPU accounting of another process, finer than /proc/<pid>/stat's clock ticks.
 *   bench_idle cpu PID
 *       "stat_ns=… sched_ns=… wait_ns=… rss_kib=… hwm_kib=…": utime+stime (10 ms ticks,
 *       threads that exited included), Σ of /proc/PID/task/<tid>/schedstat run time and
 *       run-queue wait (ns, live threads)
 *   bench_idle run WARM_S MEASURE_S -- CMD ARGS…
 *       start CMD, let it settle WARM_S, measure its CPU over MEASURE_S (schedstat), SIGTERM it;
 *       prints "cpu_ns=… measure_s=… cpu_s_per_hour=… rss_kib=…"
 *   bench_idle feed PATH INTERVAL_MS
 *       a host side of the energy channel: one record (package-0, core, dram; ~10 W) every
 *       INTERVAL_MS into PATH (a FIFO standing for the port), until killed */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/channel_record.h"
#include "common/util.h"

struct proc_cpu {
	uint64_t stat_ns;
	uint64_t sched_ns;
	uint64_t wait_ns; /* runnable but waiting for a CPU */
	unsigned long rss_kib;
	unsigned long hwm_kib;
};

static int read_small(const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len;

	if (fd < 0)
		return -errno;
	return pread_all(fd, buf, size, &len);
}

static int proc_cpu_read(pid_t pid, struct proc_cpu *ret)
{
	char path[128], buf[4096];
	long hz = sysconf(_SC_CLK_TCK);
	int r;

	memset(ret, 0, sizeof(*ret));
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = read_small(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	/* comm may hold spaces and parentheses: fields restart after the last ')' */
	char *p = strrchr(buf, ')');
	unsigned long long utime, stime;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
			  &stime) != 2)
		return -EINVAL;
	ret->stat_ns = (utime + stime) * (NSEC_PER_SEC / (uint64_t)hz);

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return -errno;
	for (struct dirent *de; (de = readdir(dir));) {
		char tpath[512];
		unsigned long long run_ns, wait_ns;

		if (de->d_name[0] == '.')
			continue;
		snprintf(tpath, sizeof(tpath), "%s/%s/schedstat", path, de->d_name);
		if (read_small(tpath, buf, sizeof(buf)) == 0 &&
			sscanf(buf, "%llu %llu", &run_ns, &wait_ns) == 2) {
			ret->sched_ns += run_ns;
			ret->wait_ns += wait_ns;
		}
	}
	closedir(dir);

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	r = read_small(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	p = strstr(buf, "VmRSS:");
	if (p)
		ret->rss_kib = strtoul(p + 6, NULL, 10);
	p = strstr(buf, "VmHWM:");
	if (p)
		ret->hwm_kib = strtoul(p + 6, NULL, 10);
	return 0;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int cmd_run(double warm_s, double measure_s, char **cmd)
{
	struct proc_cpu a, b;
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execvp(cmd[0], cmd);
		fprintf(stderr, "bench_idle: %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	sleep_s(warm_s);
	int ra = proc_cpu_read(pid, &a);
	sleep_s(measure_s);
	int rb = proc_cpu_read(pid, &b);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	if (ra < 0 || rb < 0) {
		fprintf(stderr, "bench_idle: %s exited early\n", cmd[0]);
		return 1;
	}
	uint64_t ns = b.sched_ns - a.sched_ns;
	printf("cpu_ns=%" PRIu64 " measure_s=%.1f cpu_s_per_hour=%.4f rss_kib=%lu hwm_kib=%lu\n",
		ns, measure_s, (double)ns / 1e9 * 3600.0 / measure_s, b.rss_kib, b.hwm_kib);
	return 0;
}

static int cmd_feed(const char *path, long interval_ms)
{
	/* Read-write: the FIFO always has a writer, as a connected host side. */
	_cleanup_close_ int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
	struct channel_record r = { .interval_ms = (uint64_t)interval_ms, .n_zones = 3 };
	char line[CHANNEL_RECORD_MAX + 1];

	if (fd < 0 || interval_ms <= 0) {
		fprintf(stderr, "bench_idle: feed %s: %s\n", path,
			fd < 0 ? strerror(errno) : "interval");
		return 1;
	}
	snprintf(r.instance, sizeof(r.instance), "%s", "00112233445566778899aabbccddeeff");
	snprintf(r.zones[0].name, sizeof(r.zones[0].name), "package-0");
	snprintf(r.zones[1].name, sizeof(r.zones[1].name), "core");
	snprintf(r.zones[2].name, sizeof(r.zones[2].name), "dram");
	for (;;) {
		r.seq++;
		r.time_ms = now_realtime_ms();
		r.zones[0].energy_uj += 10 * (uint64_t)interval_ms * 1000;
		r.zones[1].energy_uj += 6 * (uint64_t)interval_ms * 1000;
		r.zones[2].energy_uj += 1 * (uint64_t)interval_ms * 1000;
		size_t len = channel_record_format(&r, line, sizeof(line));
		/* A full pipe (nobody reading) drops the record, as the host does. */
		if (len == 0 || (write(fd, line, len) < 0 && errno != EAGAIN))
			return 1;
		nanosleep(&ts, NULL);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && streq(argv[1], "cpu")) {
		struct proc_cpu c;
		int r = proc_cpu_read((pid_t)atoi(argv[2]), &c);

		if (r < 0) {
			fprintf(stderr, "bench_idle: pid %s: %s\n", argv[2], strerror(-r));
			return 1;
		}
		printf("stat_ns=%" PRIu64 " sched_ns=%" PRIu64 " wait_ns=%" PRIu64
		       " rss_kib=%lu hwm_kib=%lu\n",
			c.stat_ns, c.sched_ns, c.wait_ns, c.rss_kib, c.hwm_kib);
		return 0;
	}
	if (argc >= 6 && streq(argv[1], "run") && streq(argv[4], "--"))
		return cmd_run(atof(argv[2]), atof(argv[3]), argv + 5);
	if (argc == 4 && streq(argv[1], "feed"))
		return cmd_feed(argv[2], atol(argv[3]));
	fprintf(stderr, "usage: bench_idle cpu PID | bench_idle run WARM_S MEASURE_S -- CMD… | "
			"bench_idle feed PATH INTERVAL_MS\n");
	return 2;
}
