/* The approach of Scaphandre's qemu exporter, for comparison: every tick, list /proc, read each
 * process's cmdline to find the qemu ones, read their stat for CPU time, then write each domain's
 * energy files as the floor does. N real sleeping processes stand in for qemu (argv[0]
 * "qemu-system-x86_64", comm "qemu-system-x86", "-name guest=vm<i>"), beside OTHERS more
 * sleepers and whatever else the machine runs. Scaphandre also reads the stat of every process
 * it lists; this reads only the qemu ones', so it is a lower bound of that approach.
 * --reads-only leaves the writes out: the cost of finding the domains' CPU time alone.
 *   bench_scan N [--reads-only] [OTHERS [RUNS]] */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/harness.h"
#include "common/util.h"

#define QEMU_ARGV0 "qemu-system-x86_64"
#define OTHER_ARGV0 "bench-sleeper"
#define READY_FD 3

struct scan_domain {
	int zone_fds[FIXTURE_ZONES];
	uint64_t last_ticks;
	uint64_t energy_uj[FIXTURE_ZONES];
};

struct scan {
	struct fixture *f;
	struct scan_domain *doms;
	int host_zone_fds[FIXTURE_ZONES];
	uint64_t host_last_uj[FIXTURE_ZONES];
	int stat_fd;
	uint64_t last_busy;
	size_t n_seen_procs;
	size_t n_seen_qemu;
	bool is_reads_only;
};

/* A stand-in process: say it is ready, then sleep until killed (or orphaned). */
static int sleeper(bool is_qemu)
{
	char c = 1;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (is_qemu)
		prctl(PR_SET_NAME,
			"qemu-system-x86"); /* what the kernel shows for qemu: 15 chars */
	if (getppid() == 1)
		_exit(0);
	if (write(READY_FD, &c, 1) != 1)
		_exit(1);
	close(READY_FD);
	for (;;)
		pause();
}

static pid_t spawn(const char *self, int ready_fd, const char *argv0, size_t i)
{
	char guest[64];
	pid_t pid;

	snprintf(guest, sizeof(guest), "guest=vm%zu,debug-threads=on", i);
	pid = fork();
	if (pid < 0)
		bench_die("fork", errno);
	if (pid == 0) {
		char *argv[] = { (char *)argv0, "-name", guest, "-S", NULL };

		if (ready_fd == READY_FD ? fcntl(READY_FD, F_SETFD, 0) < 0
					 : dup2(ready_fd, READY_FD) < 0)
			_exit(1);
		execv(self, argv);
		_exit(127);
	}
	return pid;
}

static ssize_t read_at_proc(int proc_fd, const char *pid, const char *file, char *buf, size_t size)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/%s", pid, file);
	int fd = openat(proc_fd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t len = read(fd, buf, size - 1);
	close(fd);
	if (len >= 0)
		buf[len] = '\0';
	return len;
}

static int scan_tick(void *arg)
{
	struct scan *s = arg;
	uint64_t delta_uj[FIXTURE_ZONES];
	uint64_t busy = bench_read_busy_ticks(s->stat_fd);
	uint64_t busy_delta = busy - s->last_busy;
	char buf[4096];

	s->last_busy = busy;
	for (size_t z = 0; z < FIXTURE_ZONES; z++) {
		ssize_t len = pread(s->host_zone_fds[z], buf, sizeof(buf) - 1, 0);
		if (len < 0)
			return -errno;
		buf[len] = '\0';
		uint64_t raw = strtoull(buf, NULL, 10);
		delta_uj[z] = raw - s->host_last_uj[z];
		s->host_last_uj[z] = raw;
	}

	DIR *dir = opendir("/proc");
	if (!dir)
		return -errno;
	int proc_fd = dirfd(dir);
	s->n_seen_procs = s->n_seen_qemu = 0;
	for (struct dirent *de; (de = readdir(dir));) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		s->n_seen_procs++;
		ssize_t len = read_at_proc(proc_fd, de->d_name, "cmdline", buf, sizeof(buf));
		if (len <= 0 || !strstr(buf, "qemu-system"))
			continue;
		/* arguments are NUL-separated: find "-name" "guest=<domain>,…" */
		const char *guest = NULL;
		for (ssize_t off = 0; off < len; off += (ssize_t)strlen(buf + off) + 1)
			if (startswith(buf + off, "guest=")) {
				guest = buf + off + 6;
				break;
			}
		if (!guest || !startswith(guest, "vm"))
			continue;
		size_t i = strtoul(guest + 2, NULL, 10);
		if (i >= s->f->n_domains)
			continue;
		s->n_seen_qemu++;
		if (read_at_proc(proc_fd, de->d_name, "stat", buf, sizeof(buf)) <= 0)
			continue;
		const char *p = strrchr(buf, ')');
		unsigned long long utime, stime;
		if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				  &utime, &stime) != 2)
			continue;

		struct scan_domain *d = &s->doms[i];
		uint64_t ticks = utime + stime, dt = ticks - d->last_ticks;
		d->last_ticks = ticks;
		for (size_t z = 0; z < FIXTURE_ZONES && !s->is_reads_only; z++) {
			char text[32];

			d->energy_uj[z] += busy_delta ? delta_uj[z] * dt / busy_delta : 0;
			int tl = snprintf(text, sizeof(text), "%" PRIu64 "\n", d->energy_uj[z]);
			int r = bench_replace(d->zone_fds[z], "energy_uj", text, (size_t)tl);
			if (r < 0) {
				closedir(dir);
				return r;
			}
		}
	}
	closedir(dir);
	return 0;
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	struct scan s = { 0 };
	struct bench_result res;
	size_t n, others = 200;
	unsigned runs = 5;
	char path[512], self[512];
	int ready[2];

	if (streq(base, QEMU_ARGV0) || streq(base, OTHER_ARGV0))
		return sleeper(streq(base, QEMU_ARGV0));
	if (argc < 2) {
		fprintf(stderr, "usage: bench_scan N [--reads-only] [OTHERS [RUNS]]\n");
		return 2;
	}
	n = strtoul(argv[1], NULL, 10);
	if (argc > 2 && streq(argv[2], "--reads-only")) {
		s.is_reads_only = true;
		argv++;
		argc--;
	}
	if (argc > 2)
		others = strtoul(argv[2], NULL, 10);
	if (argc > 3)
		runs = (unsigned)strtoul(argv[3], NULL, 10);
	bench_raise_nofile();
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl < 0)
		bench_die("/proc/self/exe", errno);
	self[sl] = '\0';

	if (pipe2(ready, O_CLOEXEC) < 0)
		bench_die("pipe", errno);
	size_t total = n + others;
	pid_t *pids = xcalloc(total, sizeof(pid_t));
	for (size_t i = 0; i < total; i++)
		pids[i] = spawn(self, ready[1], i < n ? QEMU_ARGV0 : OTHER_ARGV0, i);
	close(ready[1]);
	for (size_t got = 0; got < total;) {
		char c[256];
		ssize_t len = read(ready[0], c, sizeof(c));
		if (len <= 0)
			bench_die("sleepers did not start", len < 0 ? errno : EPIPE);
		got += (size_t)len;
	}
	close(ready[0]);

	fixture_new(n, &s.f);
	bench_open_host_reads(s.f, &s.stat_fd, s.host_zone_fds);
	s.doms = xcalloc(n, sizeof(*s.doms));
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "vm%zu", i);
		_cleanup_close_ int tree_fd =
			openat(s.f->trees_fd, path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (tree_fd < 0)
			bench_die(path, errno);
		for (size_t z = 0; z < FIXTURE_ZONES; z++) {
			if (mkdirat(tree_fd, fixture_zone_dirs[z], 0755) < 0)
				bench_die(fixture_zone_dirs[z], errno);
			s.doms[i].zone_fds[z] = openat(
				tree_fd, fixture_zone_dirs[z], O_DIRECTORY | O_RDONLY | O_CLOEXEC);
			if (s.doms[i].zone_fds[z] < 0)
				bench_die(fixture_zone_dirs[z], errno);
		}
	}

	/* the scan costs by processes, not domains: size runs by what /proc lists */
	bench_measure(s.f, scan_tick, &s, runs, bench_ticks_for(total + 150, 5), &res);
	if (s.n_seen_qemu != n)
		fprintf(stderr, "bench_scan: found %zu of %zu qemu stand-ins\n", s.n_seen_qemu, n);
	printf("procs=%zu ", s.n_seen_procs);
	bench_print(s.is_reads_only ? "scan_reads" : "scan", n, &res);

	for (size_t i = 0; i < total; i++)
		kill(pids[i], SIGKILL);
	for (size_t i = 0; i < total; i++)
		waitpid(pids[i], NULL, 0);
	for (size_t i = 0; i < n; i++)
		for (size_t z = 0; z < FIXTURE_ZONES; z++)
			close(s.doms[i].zone_fds[z]);
	free(s.doms);
	free(pids);
	close(s.stat_fd);
	for (size_t z = 0; z < FIXTURE_ZONES; z++)
		close(s.host_zone_fds[z]);
	fixture_free(s.f);
	return 0;
}
