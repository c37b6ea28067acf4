/* The floor of a host tick: only the system calls no implementation can avoid. Per tick, one
 * pread of /proc/stat and of each host zone's energy_uj; per domain, one pread of its cpu.stat
 * (kept open) and one atomic replace (openat O_CREAT|O_EXCL, write, close, renameat) of each of
 * its energy files, in zone directories kept open. --heartbeat adds the heartbeat file powerd
 * also replaces per domain, to tell the two costs apart; --reads-only leaves every write out
 * (the CPU-time reads alone, to set against a /proc scan's).
 *   bench_floor N [--heartbeat|--reads-only] [RUNS] */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/harness.h"
#include "common/util.h"

struct floor_domain {
	int cpu_fd;
	int zone_fds[FIXTURE_ZONES];
	int tree_fd;
	uint64_t last_usec;
	uint64_t energy_uj[FIXTURE_ZONES];
};

struct floor {
	struct fixture *f;
	struct floor_domain *doms;
	int host_zone_fds[FIXTURE_ZONES];
	uint64_t host_last_uj[FIXTURE_ZONES];
	int stat_fd;
	uint64_t last_busy;
	uint64_t seq;
	bool has_heartbeat;
	bool is_reads_only;
};

static uint64_t pread_u64(int fd, const char *key)
{
	char buf[4096];
	ssize_t len = pread(fd, buf, sizeof(buf) - 1, 0);

	if (len < 0)
		bench_die("pread", errno);
	buf[len] = '\0';
	const char *p = key ? strstr(buf, key) : buf;
	if (!p)
		bench_die("parse", EINVAL);
	if (key)
		p += strlen(key);
	return strtoull(p, NULL, 10);
}

static int floor_tick(void *arg)
{
	struct floor *fl = arg;
	uint64_t delta_uj[FIXTURE_ZONES];
	uint64_t busy = bench_read_busy_ticks(fl->stat_fd) * 10000; /* USER_HZ ticks to µs */
	uint64_t busy_delta = busy - fl->last_busy;

	fl->last_busy = busy;
	fl->seq++;
	for (size_t z = 0; z < FIXTURE_ZONES; z++) {
		uint64_t raw = pread_u64(fl->host_zone_fds[z], NULL);
		delta_uj[z] = raw - fl->host_last_uj[z];
		fl->host_last_uj[z] = raw;
	}
	for (size_t i = 0; i < fl->f->n_domains; i++) {
		struct floor_domain *d = &fl->doms[i];
		uint64_t usec = pread_u64(d->cpu_fd, "usage_usec ");
		uint64_t du = usec - d->last_usec;

		d->last_usec = usec;
		if (fl->is_reads_only) {
			for (size_t z = 0; z < FIXTURE_ZONES; z++)
				d->energy_uj[z] += busy_delta ? delta_uj[z] * du / busy_delta : 0;
			continue;
		}
		for (size_t z = 0; z < FIXTURE_ZONES; z++) {
			char text[32];

			d->energy_uj[z] += busy_delta ? delta_uj[z] * du / busy_delta : 0;
			int len = snprintf(text, sizeof(text), "%" PRIu64 "\n", d->energy_uj[z]);
			int r = bench_replace(d->zone_fds[z], "energy_uj", text, (size_t)len);
			if (r < 0)
				return r;
		}
		if (fl->has_heartbeat) {
			char text[160];
			int len = snprintf(text, sizeof(text),
				"version 1\nseq %" PRIu64 "\ninterval_ms 1000\ntime_ms %" PRIu64
				"\nestimated 0\n",
				fl->seq, now_realtime_ms());
			int r = bench_replace(d->tree_fd, ".powerd-heartbeat", text, (size_t)len);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int open_dir_at(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		bench_die(path, errno);
	return fd;
}

int main(int argc, char **argv)
{
	struct floor fl = { 0 };
	struct bench_result res;
	size_t n;
	unsigned runs = 5;
	char path[512];

	if (argc < 2) {
		fprintf(stderr, "usage: bench_floor N [--heartbeat|--reads-only] [RUNS]\n");
		return 2;
	}
	n = strtoul(argv[1], NULL, 10);
	for (int i = 2; i < argc; i++) {
		if (streq(argv[i], "--heartbeat"))
			fl.has_heartbeat = true;
		else if (streq(argv[i], "--reads-only"))
			fl.is_reads_only = true;
		else
			runs = (unsigned)strtoul(argv[i], NULL, 10);
	}
	bench_raise_nofile();
	fixture_new(n, &fl.f);

	bench_open_host_reads(fl.f, &fl.stat_fd, fl.host_zone_fds);
	fl.doms = xcalloc(n, sizeof(*fl.doms));
	for (size_t i = 0; i < n; i++) {
		struct floor_domain *d = &fl.doms[i];

		snprintf(path, sizeof(path), "%s/machine/qemu-%zu-vm%zu.libvirt-qemu/cpu.stat",
			fl.f->cgroup_root, i + 1, i);
		d->cpu_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (d->cpu_fd < 0)
			bench_die(path, errno);
		snprintf(path, sizeof(path), "vm%zu", i);
		d->tree_fd = open_dir_at(fl.f->trees_fd, path);
		for (size_t z = 0; z < FIXTURE_ZONES; z++) {
			if (mkdirat(d->tree_fd, fixture_zone_dirs[z], 0755) < 0)
				bench_die(fixture_zone_dirs[z], errno);
			d->zone_fds[z] = open_dir_at(d->tree_fd, fixture_zone_dirs[z]);
		}
	}

	bench_measure(fl.f, floor_tick, &fl, runs, 0, &res);
	bench_print(fl.is_reads_only   ? "floor_reads"
		    : fl.has_heartbeat ? "floor_hb"
				       : "floor",
		n, &res);

	for (size_t i = 0; i < n; i++) {
		close(fl.doms[i].cpu_fd);
		close(fl.doms[i].tree_fd);
		for (size_t z = 0; z < FIXTURE_ZONES; z++)
			close(fl.doms[i].zone_fds[z]);
	}
	free(fl.doms);
	close(fl.stat_fd);
	for (size_t z = 0; z < FIXTURE_ZONES; z++)
		close(fl.host_zone_fds[z]);
	fixture_free(fl.f);
	return 0;
}
