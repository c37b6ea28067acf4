/* The guest's channel reader on a port stand-in (a FIFO, opened non-blocking as the port is):
 * records split across reads, garbage, oversize lines, a future version, freshness, rebasing
 * (instance change, a counter that went down, a guest restart), EOF without a busy loop, the
 * port found by name under a fixture /sys/class/virtio-ports and hot-plugged after start, and
 * tree_out read back as a powercap tree. */
#include "tests/testutil.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <time.h>

#include "common/channel_record.h"
#include "common/powercap.h"
#include "guestd/channel_reader.h"
#include "guestd/source.h"
#include "guestd/tree_out.h"

#define MS (NSEC_PER_MSEC)
#define INSTANCE_A "0123456789abcdef0123456789abcdef"
#define INSTANCE_B "fedcba9876543210fedcba9876543210"

static char *dir;
/* Processes the tests started: a failed assertion leaves its test at once, so the group's
 * teardown stops whichever are still running. */
static pid_t children[16];
static size_t n_children;

static pid_t spawn(char *const argv[], char *const env[], const char *log)
{
	pid_t pid = tu_spawn(argv, env, log);

	if (n_children < ARRAY_SIZE(children))
		children[n_children++] = pid;
	return pid;
}

static int setup(void **state)
{
	dir = tu_mkdtemp("test_guest_channel");
	return 0;
}

static int teardown(void **state)
{
	for (size_t i = 0; i < n_children; i++)
		/* 0: still our running child (one already reaped is not touched) */
		if (waitpid(children[i], NULL, WNOHANG) == 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
		}
	n_children = 0;
	tu_rm_rf(dir);
	free(dir);
	return 0;
}

/* A FIFO at dir/name, and the host's end: opened read-write, so the port always has a writer
 * (as a connected host side) until the test closes it. */
static int fifo_new(const char *name, char **ret_path)
{
	char *path = xasprintf("%s/%s", dir, name);

	assert_int_equal(mkfifo(path, 0600), 0);
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	*ret_path = path;
	return fd;
}

static void put(int fd, const char *s)
{
	assert_int_equal(write_all(fd, s, strlen(s)), 0);
}

static size_t record(char *buf, size_t size, const char *instance, uint64_t seq, uint64_t pkg_uj,
	uint64_t core_uj)
{
	struct channel_record r = {
		.seq = seq, .interval_ms = 1000, .time_ms = 1700000000000, .n_zones = 2
	};

	snprintf(r.instance, sizeof(r.instance), "%s", instance);
	snprintf(r.zones[0].name, sizeof(r.zones[0].name), "package-0");
	r.zones[0].energy_uj = pkg_uj;
	snprintf(r.zones[1].name, sizeof(r.zones[1].name), "core");
	r.zones[1].energy_uj = core_uj;
	size_t len = channel_record_format(&r, buf, size);
	assert_true(len > 0);
	return len;
}

static void put_record(int fd, const char *instance, uint64_t seq, uint64_t pkg_uj)
{
	char buf[CHANNEL_RECORD_MAX];

	record(buf, sizeof(buf), instance, seq, pkg_uj, pkg_uj / 2);
	put(fd, buf);
}

static const struct source_zone *zone(const struct source *s, const char *name)
{
	for (size_t i = 0; i < s->n_zones; i++)
		if (s->zones[i].is_present && streq(s->zones[i].name, name))
			return &s->zones[i];
	fail_msg("no zone %s", name);
	return NULL;
}

static void test_records(void **state)
{
	char *path;
	int host = fifo_new("port", &path);
	struct source *s = source_new(path);
	char buf[CHANNEL_RECORD_MAX];
	uint64_t t = 1000 * MS;

	/* Nothing yet: down, and says so. */
	assert_true(source_sample(s, t, 1000) < 0);
	assert_true(s->is_channel);
	assert_non_null(strstr(s->problem, "no record yet"));

	/* A record split across two reads counts once it is whole. */
	size_t len = record(buf, sizeof(buf), INSTANCE_A, 1, 5000000, 2000000);
	assert_int_equal(write_all(host, buf, 20), 0);
	t += 1000 * MS;
	assert_true(source_sample(s, t, 1000) < 0);
	assert_int_equal(write_all(host, buf + 20, len - 20), 0);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	/* The served totals start at the host's counter, as a tree's do. */
	assert_int_equal(zone(s, "package-0")->counter.total_uj, 5000000);
	assert_int_equal(zone(s, "core")->counter.total_uj, 2000000);
	assert_int_equal(source_total_uj(s), 5000000);
	assert_true(s->has_heartbeat);
	assert_int_equal(s->host_interval_ms, 1000);

	/* Several records in one read: the newest is the reading; +2 J in 1 s. */
	put_record(host, INSTANCE_A, 2, 6000000);
	put_record(host, INSTANCE_A, 3, 7000000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 7000000);
	assert_int_equal(s->package_delta_uj, 2000000);
	assert_true(source_power_w(s) > 1.999 && source_power_w(s) < 2.001);

	/* Garbage and a bad crc between records: skipped, the source stays up. */
	put(host, "hello\n\n");
	len = record(buf, sizeof(buf), INSTANCE_A, 4, 8000000, 1);
	buf[len - 2] = buf[len - 2] == '0' ? '1' : '0'; /* last crc digit */
	put(host, buf);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 7000000);
	put_record(host, INSTANCE_A, 5, 8000000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 8000000);

	/* A line over CHANNEL_RECORD_MAX, written in parts, ending in what looks like a record: all
	 * of it is discarded up to its '\n'; the next record counts. */
	char big[1500];
	memset(big, 'x', sizeof(big));
	assert_int_equal(write_all(host, big, sizeof(big)), 0);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	put(host, " ");
	put_record(host, INSTANCE_A, 6, 99000000);
	put_record(host, INSTANCE_A, 7, 9000000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9000000);

	/* A future version: down with the reason, until version 1 again. */
	put(host, "powerd-energy/2 seq=8 whatever=1 crc=00000000\n");
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), -EPROTONOSUPPORT);
	assert_non_null(strstr(s->problem, "record version 2 not supported: upgrade powerd-guest"));
	put_record(host, INSTANCE_A, 9, 9500000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9500000);

	/* No new record for two of the longer intervals: stale, the totals held. */
	int samples = 0;
	while (s->is_up && samples < 10) {
		t += 1000 * MS;
		source_sample(s, t, 1000);
		samples++;
	}
	assert_true(samples <= 3);
	assert_non_null(strstr(s->problem, "no new record"));
	assert_int_equal(source_total_uj(s), 9500000);
	put_record(host, INSTANCE_A, 10, 9600000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9600000);

	source_free(s);
	close(host);
	free(path);
}

/* Served counters never go back: another host instance, or a counter that went down, is a new
 * baseline; a restarted guest daemon starts from the host's counter again. */
static void test_rebase(void **state)
{
	char *path;
	int host = fifo_new("port_rebase", &path);
	struct source *s = source_new(path);
	uint64_t t = 1000 * MS;

	put_record(host, INSTANCE_A, 1, 50000000);
	assert_int_equal(source_sample(s, t, 1000), 0);
	put_record(host, INSTANCE_A, 2, 51000000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 51000000);

	/* Migrated to a host whose powerd-host knows nothing of it: its counter is far lower. */
	put_record(host, INSTANCE_B, 1, 300);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 51000000);
	assert_int_equal(s->package_delta_uj, 0);
	put_record(host, INSTANCE_B, 2, 1000300);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 52000000);

	/* Another instance whose counter happens to be higher: rebased too, no jump. */
	put_record(host, INSTANCE_A, 3, 90000000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 52000000);

	/* The same instance going down (a host daemon that lost its state): rebased. */
	put_record(host, INSTANCE_A, 4, 1000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 52000000);
	put_record(host, INSTANCE_A, 5, 501000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 52500000);
	assert_int_equal(zone(s, "core")->counter.total_uj >= 250000, 1);
	source_free(s);

	/* powerd-guest restarts: its first record's value is the served total, as with a tree. */
	s = source_new(path);
	put_record(host, INSTANCE_A, 6, 601000);
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 601000);
	source_free(s);
	close(host);
	free(path);
}

/* source_seed, the logic under a restart: the served totals start at what was laid out; the
 * seed's instance resumes at its counter + offset (the downtime's energy counted) unless that is
 * less (then the laid-out value stands); another instance counts from its next record. */
static void test_seed(void **state)
{
	char *path;
	int host = fifo_new("port_seed", &path);
	const struct source_seed_zone seed[] = {
		{ .name = "package-0", .total_uj = 9000, .has_offset = true, .offset_uj = 8000 },
		{ .name = "core",
			.total_uj = 500,
			.has_offset = true,
			.offset_uj = UINT64_MAX - 99 },
	};
	uint64_t t = 1000 * MS;

	/* The same instance, its counter at 1500 (1000 when last laid out): 1500 + 8000. */
	struct source *s = source_new(path);
	source_seed(s, INSTANCE_A, seed, 2);
	assert_int_equal(source_total_uj(s), 9000);
	put_record(host, INSTANCE_A, 1, 1500); /* core: 750, + offset (-100 mod 2^64) = 650 */
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9500);
	assert_int_equal(zone(s, "core")->counter.total_uj, 650);
	put_record(host, INSTANCE_A, 2, 1600);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9600);
	source_free(s);

	/* The same instance, but its counter went down meanwhile (a stale offset): what was laid
	 * out stands, never less. */
	s = source_new(path);
	source_seed(s, INSTANCE_A, seed, 2);
	put_record(host, INSTANCE_A, 3, 200);
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9000);
	assert_int_equal(zone(s, "core")->counter.total_uj, 500);
	put_record(host, INSTANCE_A, 4, 300);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9100);
	source_free(s);

	/* Another instance: its counter (higher) is no energy of this VM's; from its next record.
	 */
	s = source_new(path);
	source_seed(s, INSTANCE_A, seed, 2);
	put_record(host, INSTANCE_B, 1, 500000);
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9000);
	put_record(host, INSTANCE_B, 2, 500400);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9400);
	source_free(s);

	/* No instance in the seed (no state file): what was laid out, from the next record on. */
	s = source_new(path);
	source_seed(s, "", seed, 1);
	put_record(host, INSTANCE_A, 5, 1700);
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9000);
	source_free(s);
	close(host);
	free(path);
}

/* EOF (no host side connected; the port's poll() says HUP for as long): closed, not spun on, and
 * opened again at the next sample. In a loop: the read event goes with the port. */
static void test_eof(void **state)
{
	char *path;
	int host = fifo_new("port_eof", &path);
	struct event_base *base = event_base_new();
	struct source *s = source_new(path);
	uint64_t t = 1000 * MS;

	source_set_loop(s, base, NULL, NULL);
	assert_int_equal(source_begin(s, t, 1000), -ENODATA); /* opened; nothing yet */
	assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 1);
	put_record(host, INSTANCE_A, 1, 7000);
	/* The loop drains the port as records come. */
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
	t += 1000 * MS;
	assert_int_equal(source_begin(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 7000);

	/* The host side goes: one wake-up, then the port is closed and no event is left. */
	close(host);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
	assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1); /* nothing to run */
	assert_true(s->reader->ops->is_gone(s->reader));
	/* The last record still stands until it is stale. */
	t += 1000 * MS;
	assert_int_equal(source_begin(s, t, 1000), 0);

	/* A host side again: the port is opened at the next sample and read. */
	host = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(host >= 0);
	put_record(host, INSTANCE_A, 2, 9000);
	t += 1000 * MS;
	assert_int_equal(source_begin(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 9000);
	assert_false(s->reader->ops->is_gone(s->reader));
	source_free(s);
	event_base_free(base);
	close(host);
	free(path);
}

static void test_port_find(void **state)
{
	_cleanup_free_ char *sys = xasprintf("%s/find/sys", dir);
	char buf[256];

	assert_int_equal(
		channel_port_find(sys, "/dev", CHANNEL_PORT_NAME, buf, sizeof(buf)), -ENOENT);
	tu_write(sys, "vport0p1/name", "org.qemu.guest_agent.0\n");
	tu_write(sys, "vport0p2/name", "\n");
	tu_write(sys, "other/name", "org.powerd.energy.0\n");
	assert_int_equal(
		channel_port_find(sys, "/dev", CHANNEL_PORT_NAME, buf, sizeof(buf)), -ENOENT);
	tu_write(sys, "vport2p3/name", "org.powerd.energy.0\n");
	assert_int_equal(channel_port_find(sys, "/dev", CHANNEL_PORT_NAME, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/dev/vport2p3");
}

/* source: auto with no port: the tree. The port is hot-plugged: read from the next tick on, the
 * served total going on from the tree's (one series per zone); it goes away: the tree again. */
static void test_auto_hotplug(void **state)
{
	_cleanup_free_ char *root = xasprintf("%s/auto", dir);
	_cleanup_free_ char *tree = xasprintf("%s/auto/var/scaphandre", dir);
	_cleanup_free_ char *portdir = xasprintf("%s/sys/class/virtio-ports/vport1p1", root);
	_cleanup_free_ char *dev = xasprintf("%s/dev", root);
	_cleanup_free_ char *fifo = xasprintf("%s/vport1p1", dev);
	uint64_t t = 1000 * MS;

	/* The share's tree first. */
	tu_write(tree, "intel-rapl:0/name", "package-0\n");
	tu_write(tree, "intel-rapl:0/energy_uj", "4000000\n");
	tu_write(tree, "intel-rapl:0/max_energy_range_uj", "1125899906842624\n");
	assert_int_equal(setenv("POWERD_GUEST_TEST_ROOT", root, 1), 0);
	struct source *s = source_new("auto");
	unsetenv("POWERD_GUEST_TEST_ROOT");
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_false(s->is_channel);
	assert_string_equal(s->root, tree);
	assert_int_equal(source_total_uj(s), 4000000);

	/* Hot-plug: the port's sysfs entry and device appear. */
	assert_int_equal(mkdir(dev, 0755), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	int host = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(host >= 0);
	tu_write(portdir, "name", "org.powerd.energy.0\n");
	put_record(host, INSTANCE_A, 1, 4100000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_true(s->is_channel);
	assert_string_equal(s->root, fifo);
	/* One package-0 series, going on from the tree's total (a new baseline). */
	assert_int_equal(source_total_uj(s), 4000000);
	put_record(host, INSTANCE_A, 2, 4600000);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(source_total_uj(s), 4500000);
	size_t packages = 0;
	for (size_t i = 0; i < s->n_zones; i++)
		packages += streq(s->zones[i].name, "package-0");
	assert_int_equal(packages, 1);

	/* Unplugged: EOF, the entry gone: back to the tree. */
	close(host);
	_cleanup_free_ char *name = xasprintf("%s/name", portdir);
	assert_int_equal(unlink(name), 0);
	assert_int_equal(rmdir(portdir), 0);
	t += 1000 * MS;
	source_sample(s, t, 1000); /* reads EOF: the port is gone */
	t += 1000 * MS;
	source_sample(s, t, 1000);
	assert_false(s->is_channel);
	assert_string_equal(s->root, tree);
	assert_int_equal(source_total_uj(s), 4500000);
	source_free(s);
}

/* tree_out: the served totals as a powercap tree any reader takes: read back with the guest's own
 * tree reader, files 0644 under the daemon's umask 0077. */
static void test_tree_out(void **state)
{
	char *path;
	int host = fifo_new("port_out", &path);
	_cleanup_free_ char *out = xasprintf("%s/run/powerd/powercap", dir);
	struct source *s = source_new(path);
	struct tree_out *to = tree_out_new("tree_out", out, true);
	struct stat st;
	uint64_t t = 1000 * MS;
	mode_t old_umask = umask(0077);

	put_record(host, INSTANCE_A, 1, 3000000);
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(tree_out_write(to, s, 1000), 0);
	put_record(host, INSTANCE_B, 1, 10); /* rebased: the tree goes on, never back */
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	put_record(host, INSTANCE_B, 2, 1000010);
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(tree_out_write(to, s, 1000), 0);
	umask(old_umask);

	_cleanup_free_ char *energy = tu_read(out, "intel-rapl:0/energy_uj");
	assert_string_equal(energy, "4000000\n");
	_cleanup_free_ char *pkg_name = tu_read(out, "intel-rapl:0/name");
	assert_string_equal(pkg_name, "package-0\n");
	_cleanup_free_ char *core = tu_read(out, "intel-rapl:0:0/name");
	assert_string_equal(core, "core\n");
	_cleanup_free_ char *energy_path = xasprintf("%s/intel-rapl:0/energy_uj", out);
	assert_int_equal(stat(energy_path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	struct source *reader = source_new(out);
	assert_int_equal(source_sample(reader, t, 1000), 0);
	assert_true(reader->has_heartbeat);
	assert_int_equal(source_total_uj(reader), 4000000);
	source_free(reader);

	tree_out_free(to);
	source_free(s);
	close(host);
	free(path);
}

static uint64_t now_ms(void)
{
	return now_monotonic_ns() / NSEC_PER_MSEC;
}

/* Poll the daemon until series == want, or fail. */
static void wait_metric(uint16_t port, const char *series, double want, int timeout_ms)
{
	uint64_t start = now_ms();
	double v = -1;

	while (now_ms() - start <= (uint64_t)timeout_ms) {
		char *body = NULL;

		if (tu_http_get(port, "/metrics", &body) == 200 &&
			tu_metric(body, series, &v) == 0 && v == want) {
			free(body);
			return;
		}
		free(body);
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	fail_msg("%s is %g, not %g, after %d ms", series, v, want, timeout_ms);
}

/* The real daemon with the default source (auto) and a tree_out: no share, no port at start;
 * the port is hot-plugged, read on the loop, served, and laid out as a tree. */
static void test_daemon(void **state)
{
	_cleanup_free_ char *root = xasprintf("%s/vm", dir);
	_cleanup_free_ char *dev = xasprintf("%s/vm/dev", dir);
	_cleanup_free_ char *fifo = xasprintf("%s/vm/dev/vport3p1", dir);
	_cleanup_free_ char *out = xasprintf("%s/vm/run/powerd/powercap", dir);
	_cleanup_free_ char *cfg = xasprintf("%s/vm/guest.yaml", dir);
	_cleanup_free_ char *log = xasprintf("%s/vm/daemon.log", dir);
	_cleanup_free_ char *env_root = xasprintf("POWERD_GUEST_TEST_ROOT=%s", root);
	uint16_t port = tu_free_port();

	_cleanup_free_ char *sysfs = xasprintf("%s/vm/run/powerd/sysfs", dir);

	tu_writef(root, "guest.yaml",
		"interval: 100ms\nlisten: 127.0.0.1:%u\nattribution: none\ntree_out: %s\n"
		"sysfs_out: %s\n",
		port, out, sysfs);
	char *argv[] = { (char *)POWERD_GUEST_BIN, (char *)"-c", cfg, NULL };
	char *env[] = { env_root, NULL };
	pid_t pid = spawn(argv, env, log);
	assert_int_equal(tu_wait_port(port, 5000), 0);
	wait_metric(port, "powerd_source_up", 0, 3000);

	assert_int_equal(mkdir(dev, 0755), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	int host = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(host >= 0);
	tu_write(root, "sys/class/virtio-ports/vport3p1/name", "org.powerd.energy.0\n");
	/* A host that writes once per its interval, here faster than the guest samples. */
	for (uint64_t seq = 1; seq <= 30; seq++) {
		put_record(host, INSTANCE_A, seq, 2000000 + seq * 1000);
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	wait_metric(port, "powerd_source_up", 1, 3000);
	wait_metric(port, "powerd_energy_joules_total{zone=\"package-0\"}", 2.03, 3000);
	_cleanup_free_ char *energy = tu_read(out, "intel-rapl:0/energy_uj");
	assert_non_null(energy);
	assert_string_equal(energy, "2030000\n");
	_cleanup_free_ char *hb = tu_read(out, ".powerd-heartbeat");
	assert_non_null(hb);
	/* sysfs_out: the same zones listed flat under class/powercap, no heartbeat (as sysfs). */
	_cleanup_free_ char *powercap = xasprintf("%s/class/powercap", sysfs);
	_cleanup_free_ char *s_energy = tu_read(powercap, "intel-rapl:0/energy_uj");
	assert_string_equal(s_energy, "2030000\n");
	_cleanup_free_ char *s_core = tu_read(powercap, "intel-rapl:0:0/name");
	assert_string_equal(s_core, "core\n");
	_cleanup_free_ char *s_max = tu_read(powercap, "intel-rapl:0:0/max_energy_range_uj");
	assert_string_equal(s_max, "1125899906842624\n");
	_cleanup_free_ char *s_hb = tu_read(powercap, ".powerd-heartbeat");
	assert_null(s_hb);

	assert_int_equal(kill(pid, SIGTERM), 0);
	int status = tu_wait(pid, 5000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	_cleanup_free_ char *text = tu_read(root, "daemon.log");
	assert_non_null(strstr(text, "energy channel"));
	close(host);
}

/* A powercap reader as Kepler (0.10+) reads through the prometheus/procfs library: each zone's
 * energy_uj, where any decrease is a wrap worth (max_energy_range_uj - previous) + current. It
 * polls the trees the whole time, so a value that goes back even for a moment is counted. */
#define KEPLER_ZONES 2
struct kepler {
	pthread_t thread;
	const char *roots[2]; /* directories that hold intel-rapl:0 and intel-rapl:0:0 */
	size_t n_roots;
	bool has_prev[2][KEPLER_ZONES];
	uint64_t prev_uj[2][KEPLER_ZONES];
	uint64_t sum_uj[2][KEPLER_ZONES]; /* energy the reader counted */
	unsigned decreases;
	unsigned reads;
	volatile bool stop;
	pthread_mutex_t lock;
};

static const char *const kepler_zone_dirs[KEPLER_ZONES] = { "intel-rapl:0", "intel-rapl:0:0" };

static int read_u64_at(const char *root, const char *zone, const char *file, uint64_t *ret)
{
	_cleanup_free_ char *rel = xasprintf("%s/%s", zone, file);
	_cleanup_free_ char *text = tu_read(root, rel);

	if (!text)
		return -ENOENT;
	return parse_u64_content(text, strlen(text), ret);
}

static void kepler_poll(struct kepler *k)
{
	pthread_mutex_lock(&k->lock);
	for (size_t r = 0; r < k->n_roots; r++)
		for (size_t z = 0; z < KEPLER_ZONES; z++) {
			uint64_t cur, max;

			if (read_u64_at(k->roots[r], kepler_zone_dirs[z], "energy_uj", &cur) < 0 ||
				read_u64_at(k->roots[r], kepler_zone_dirs[z], "max_energy_range_uj",
					&max) < 0)
				continue;
			if (k->has_prev[r][z] && cur < k->prev_uj[r][z]) {
				k->sum_uj[r][z] += max - k->prev_uj[r][z] + cur;
				k->decreases++;
			} else if (k->has_prev[r][z]) {
				k->sum_uj[r][z] += cur - k->prev_uj[r][z];
			}
			k->prev_uj[r][z] = cur;
			k->has_prev[r][z] = true;
			k->reads++;
		}
	pthread_mutex_unlock(&k->lock);
}

static void *kepler_main(void *arg)
{
	struct kepler *k = arg;

	while (!k->stop) {
		kepler_poll(k);
		struct timespec ts = { 0, 2 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static pid_t daemon_start(char *cfg, const char *log)
{
	char *argv[] = { (char *)POWERD_GUEST_BIN, (char *)"-c", cfg, NULL };

	return spawn(argv, NULL, log);
}

static void daemon_kill(pid_t pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	int status = tu_wait(pid, 5000);
	assert_true(WIFSIGNALED(status));
}

/* The host writes a record of its instance; given counts the energy between two records of the
 * same instance (what the host gave the domain; a new instance's first value is no energy). */
struct host_side {
	int fd;
	uint64_t seq;
	const char *instance;
	uint64_t last_uj;
	uint64_t given_uj;
};

static void host_put(struct host_side *h, const char *instance, uint64_t pkg_uj)
{
	if (h->instance && streq(h->instance, instance) && pkg_uj >= h->last_uj)
		h->given_uj += pkg_uj - h->last_uj;
	h->instance = instance;
	h->last_uj = pkg_uj;
	put_record(h->fd, instance, ++h->seq, pkg_uj);
}

#define J (UINT64_C(1000000))

/* Wait until tree_out's heartbeat has been written n more times (its seq changed n times): the
 * daemon has read what the host wrote before. */
static void wait_writes(const char *out, unsigned n)
{
	uint64_t start = now_ms();
	_cleanup_free_ char *last = tu_read(out, ".powerd-heartbeat");

	while (n > 0) {
		assert_true(now_ms() - start < 5000);
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
		char *hb = tu_read(out, ".powerd-heartbeat");
		if (hb && (!last || !streq(hb, last))) {
			n--;
			free(last);
			last = hb;
		} else {
			free(hb);
		}
	}
}
#define INSTANCE_C "00000000000000000000000000000c0c"

/* powerd-guest killed (SIGKILL) and restarted, stopped and started, with the host instance
 * changing while it runs and while it is down: tree_out never goes back (a reader with Kepler's
 * rule counts no more than the host gave), and the served counter is the tree's value. The same
 * instance across a restart resumes at the host's counter, so its downtime's energy counts. */
static void test_daemon_restarts(void **state)
{
	_cleanup_free_ char *root = xasprintf("%s/restarts", dir);
	_cleanup_free_ char *fifo = xasprintf("%s/restarts/port", dir);
	_cleanup_free_ char *out = xasprintf("%s/restarts/run/powerd/powercap", dir);
	_cleanup_free_ char *sysfs = xasprintf("%s/restarts/run/powerd/sysfs", dir);
	_cleanup_free_ char *powercap = xasprintf("%s/class/powercap", sysfs);
	_cleanup_free_ char *cfg = xasprintf("%s/restarts/guest.yaml", dir);
	_cleanup_free_ char *log = xasprintf("%s/restarts/daemon.log", dir);
	const char *series = "powerd_energy_joules_total{zone=\"package-0\"}";
	uint16_t port = tu_free_port();
	struct host_side h = { 0 };
	struct kepler k = { .roots = { out, powercap }, .n_roots = 2 };

	assert_int_equal(mkdir(root, 0755), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	h.fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(h.fd >= 0);
	tu_writef(root, "guest.yaml",
		"source: %s\ninterval: 100ms\nlisten: 127.0.0.1:%u\nattribution: none\n"
		"tree_out: %s\nsysfs_out: %s\n",
		fifo, port, out, sysfs);
	pthread_mutex_init(&k.lock, NULL);
	assert_int_equal(pthread_create(&k.thread, NULL, kepler_main, &k), 0);

	/* Instance A from 5000 J: the served total starts at the host's counter. */
	host_put(&h, INSTANCE_A, 5000 * J);
	pid_t pid = daemon_start(cfg, log);
	assert_int_equal(tu_wait_port(port, 5000), 0);
	wait_metric(port, series, 5000, 5000);
	host_put(&h, INSTANCE_A, 5010 * J);
	wait_metric(port, series, 5010, 3000);

	/* A migration: instance B, its counter far lower. Rebased, the total goes on. */
	host_put(&h, INSTANCE_B, 1 * J);
	wait_writes(out, 2);
	wait_metric(port, series, 5010, 3000);
	host_put(&h, INSTANCE_B, 4 * J);
	wait_metric(port, series, 5013, 3000);

	/* Killed; the host goes on meanwhile; restarted: it resumes at B's counter. */
	daemon_kill(pid);
	host_put(&h, INSTANCE_B, 6 * J);
	pid = daemon_start(cfg, log);
	wait_metric(port, series, 5015, 5000);
	host_put(&h, INSTANCE_B, 8 * J);
	wait_metric(port, series, 5017, 3000);

	/* Killed, and migrated while it is down: what is laid out stands, the new instance counts
	 * from its next record (the energy of the downtime on the new host is not known). */
	daemon_kill(pid);
	host_put(&h, INSTANCE_C, 100 * J);
	pid = daemon_start(cfg, log);
	wait_metric(port, series, 5017, 5000);
	wait_writes(out, 2);
	host_put(&h, INSTANCE_C, 103 * J);
	wait_metric(port, series, 5020, 3000);

	/* Stopped cleanly and started again: the same. */
	assert_int_equal(tu_stop(pid, 5000), 0);
	host_put(&h, INSTANCE_C, 105 * J);
	pid = daemon_start(cfg, log);
	wait_metric(port, series, 5022, 5000);
	/* The same instance going down (a host daemon that lost its state) while it is down. */
	daemon_kill(pid);
	host_put(&h, INSTANCE_C, 2 * J);
	pid = daemon_start(cfg, log);
	wait_metric(port, series, 5022, 5000);
	wait_writes(out, 2);
	host_put(&h, INSTANCE_C, 7 * J);
	wait_metric(port, series, 5027, 3000);

	k.stop = true;
	assert_int_equal(pthread_join(k.thread, NULL), 0);
	kepler_poll(&k);
	assert_int_equal(tu_stop(pid, 5000), 0);

	_cleanup_free_ char *energy = tu_read(out, "intel-rapl:0/energy_uj");
	assert_string_equal(energy, "5027000000\n");
	assert_true(k.reads > 20); /* polled through every step, even under valgrind */
	assert_int_equal(k.decreases, 0);
	/* The reader's first value was 5000 J, its last 5027 J: all counted was given. */
	assert_true(k.sum_uj[0][0] <= h.given_uj);
	assert_int_equal(k.sum_uj[0][0], 27 * J);
	assert_int_equal(h.given_uj, (10 + 3 + 2 + 2 + 3 + 2 + 5) * J);
	/* core is half the package in every record: it never went back either. */
	assert_true(k.sum_uj[0][1] <= h.given_uj / 2);
	/* sysfs_out, the same. */
	_cleanup_free_ char *s_energy = tu_read(powercap, "intel-rapl:0/energy_uj");
	assert_string_equal(s_energy, "5027000000\n");
	assert_int_equal(k.sum_uj[1][0], 27 * J);
	assert_true(k.sum_uj[1][1] <= h.given_uj / 2);
	pthread_mutex_destroy(&k.lock);
	close(h.fd);
}

/* The value of the first sample whose line starts with prefix, or -1. */
static double sample_starting(const char *body, const char *prefix)
{
	for (const char *line = body; line && *line;) {
		const char *nl = strchr(line, '\n');

		if (startswith(line, prefix)) {
			const char *sp =
				memrchr(line, ' ', nl ? (size_t)(nl - line) : strlen(line));
			return sp ? strtod(sp + 1, NULL) : -1;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -1;
}

/* Debian's node_exporter (1.5, the prometheus/procfs library) pointed at sysfs_out with nothing
 * else, started before the host has written anything (a port hot-plugged after boot): it starts
 * (it refuses a --path.sysfs that does not exist), its rapl collector succeeds without zones, and
 * once records come it reads each zone's energy as powerd-guest serves it. */
static void test_sysfs_out_node_exporter(void **state)
{
	const char *ne_bin = "/usr/bin/prometheus-node-exporter";
	_cleanup_free_ char *root = xasprintf("%s/ne", dir);
	_cleanup_free_ char *fifo = xasprintf("%s/ne/port", dir);
	_cleanup_free_ char *sysfs = xasprintf("%s/ne/run/powerd/sysfs", dir);
	_cleanup_free_ char *cfg = xasprintf("%s/ne/guest.yaml", dir);
	_cleanup_free_ char *log = xasprintf("%s/ne/daemon.log", dir);
	_cleanup_free_ char *ne_log = xasprintf("%s/ne/node_exporter.log", dir);
	uint16_t port = tu_free_port();
	char *body = NULL;

	if (access(ne_bin, X_OK) < 0)
		skip();
	assert_int_equal(mkdir(root, 0755), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	int host = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(host >= 0);
	tu_writef(root, "guest.yaml",
		"source: %s\ninterval: 100ms\nlisten: 127.0.0.1:%u\nattribution: none\n"
		"tree_out: \"\"\nsysfs_out: %s\n",
		fifo, port, sysfs);
	pid_t pid = daemon_start(cfg, log);
	assert_int_equal(tu_wait_port(port, 5000), 0);
	wait_metric(port, "powerd_source_up", 0, 5000);

	uint16_t ne_port = tu_free_port();
	_cleanup_free_ char *path_arg = xasprintf("--path.sysfs=%s", sysfs);
	_cleanup_free_ char *listen_arg = xasprintf("--web.listen-address=127.0.0.1:%u", ne_port);
	char *ne_argv[] = { (char *)ne_bin, path_arg, (char *)"--collector.disable-defaults",
		(char *)"--collector.rapl", listen_arg, NULL };
	pid_t ne = spawn(ne_argv, NULL, ne_log);
	assert_int_equal(tu_wait_port(ne_port, 10000), 0);
	assert_int_equal(tu_http_get(ne_port, "/metrics", &body), 200);
	double ok = -1;
	assert_int_equal(
		tu_metric(body, "node_scrape_collector_success{collector=\"rapl\"}", &ok), 0);
	assert_true(ok == 1);
	assert_true(sample_starting(body, "node_rapl_package_joules_total{") == -1);
	free(body);

	put_record(host, INSTANCE_A, 1, 1234 * J);
	wait_metric(port, "powerd_energy_joules_total{zone=\"package-0\"}", 1234, 5000);
	assert_int_equal(tu_http_get(ne_port, "/metrics", &body), 200);
	ok = -1;
	assert_int_equal(
		tu_metric(body, "node_scrape_collector_success{collector=\"rapl\"}", &ok), 0);
	assert_true(ok == 1);
	assert_true(sample_starting(body, "node_rapl_package_joules_total{") == 1234);
	/* core is half the package (put_record), listed flat as intel-rapl:0:0 */
	assert_true(sample_starting(body, "node_rapl_core_joules_total{") == 617);
	free(body);

	assert_true(tu_stop(ne, 5000) != -1); /* it dies of SIGTERM */
	assert_int_equal(tu_stop(pid, 5000), 0);
	close(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_rebase),
		cmocka_unit_test(test_seed),
		cmocka_unit_test(test_eof),
		cmocka_unit_test(test_port_find),
		cmocka_unit_test(test_auto_hotplug),
		cmocka_unit_test(test_tree_out),
		cmocka_unit_test(test_daemon),
		cmocka_unit_test(test_daemon_restarts),
		cmocka_unit_test(test_sysfs_out_node_exporter),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
