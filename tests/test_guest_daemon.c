/* powerd-guest as a process on a fixture tree in the powerd per-domain layout, with a simulated
 * powerd-host (a thread ticking the heartbeat and, when asked, energy and CPU time), a real
 * NOTIFY_SOCKET, and scrapes over loopback. The tests run in order against one daemon. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "common/powercap.h"
#include "common/strbuf.h"
#include "version.h"

#define INTERVAL_MS 100
#define MAX_RANGE_UJ UINT64_C(100000000) /* 100 J: small, so wraps are easy to reach */
#define PKG "powerd_energy_joules_total{zone=\"package-0\"}"
#define CORE "powerd_energy_joules_total{zone=\"core\"}"
#define PKG_W "powerd_power_watts{zone=\"package-0\"}"
#define UP "powerd_source_up"

struct sim {
	pthread_t thread;
	pthread_mutex_t lock;
	bool stop, is_frozen;
	uint64_t seq;
	double rate_w; /* energy grows at this power while > 0 */
	uint64_t pkg_uj, core_uj, last_ns;
	bool is_cpu_running;
	uint64_t busy_ticks, ticks_100, ticks_200;
};

static char *dir, *tree, *proc, *config, *log_path, *notify_path;
static struct sim sim;
static pid_t daemon_pid;
static uint16_t port;
static struct tu_notify *notify;

static uint64_t now_ms(void)
{
	return now_monotonic_ns() / NSEC_PER_MSEC;
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Replace dir/name atomically, like powerd-host: never creates directories, so writes into a
 * removed tree fail instead of recreating it. */
static int atomic_write(const char *d, const char *name, const char *content)
{
	char tmp[4096], dst[4096];

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", d, name);
	snprintf(dst, sizeof(dst), "%s/%s", d, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, content, strlen(content));
	close(fd);
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	return r;
}

static void write_u64(const char *d, const char *name, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)v);
	atomic_write(d, name, buf);
}

static void sim_write_energy_locked(const char *root)
{
	_cleanup_free_ char *pkg = xasprintf("%s/intel-rapl:0", root);
	_cleanup_free_ char *core = xasprintf("%s/intel-rapl:0/intel-rapl:0:0", root);

	write_u64(pkg, "energy_uj", sim.pkg_uj);
	write_u64(core, "energy_uj", sim.core_uj);
}

static void sim_write_heartbeat_locked(const char *root)
{
	struct heartbeat hb = {
		.seq = sim.seq, .interval_ms = INTERVAL_MS, .time_ms = now_realtime_ms()
	};
	char buf[256];

	heartbeat_format(&hb, buf, sizeof(buf));
	atomic_write(root, POWERCAP_HEARTBEAT_FILE, buf);
}

static void pid_stat(char *buf, size_t size, int pid, const char *comm, uint64_t ticks)
{
	snprintf(buf, size,
		"%d (%s) S 1 %d %d 0 -1 0 0 0 0 0 %llu 0 0 0 20 0 1 0 500 0 0 0 0 0 "
		"0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		pid, comm, pid, pid, (unsigned long long)ticks);
}

static void sim_write_cpu_locked(void)
{
	char buf[512];
	_cleanup_free_ char *p100 = xasprintf("%s/100", proc);
	_cleanup_free_ char *p200 = xasprintf("%s/200", proc);

	pid_stat(buf, sizeof(buf), 100, "busy", sim.ticks_100);
	atomic_write(p100, "stat", buf);
	pid_stat(buf, sizeof(buf), 200, "light one", sim.ticks_200);
	atomic_write(p200, "stat", buf);
	snprintf(buf, sizeof(buf), "cpu  %llu 0 0 100000 0 0 0 0 0 0\n",
		(unsigned long long)sim.busy_ticks);
	atomic_write(proc, "stat", buf);
}

/* The simulated host daemon: ticks every 10 ms like a (fast) powerd-host. */
static void *sim_main(void *arg)
{
	for (;;) {
		pthread_mutex_lock(&sim.lock);
		if (sim.stop) {
			pthread_mutex_unlock(&sim.lock);
			return NULL;
		}
		uint64_t now = now_monotonic_ns();
		if (sim.rate_w > 0) {
			uint64_t add = (uint64_t)(sim.rate_w * (double)(now - sim.last_ns) / 1e3);
			sim.pkg_uj += add;
			sim.core_uj += add / 2;
			sim_write_energy_locked(tree);
		}
		sim.last_ns = now;
		if (sim.is_cpu_running) {
			sim.busy_ticks += 4;
			sim.ticks_100 += 3;
			sim.ticks_200 += 1;
			sim_write_cpu_locked();
		}
		if (!sim.is_frozen) {
			sim.seq++;
			sim_write_heartbeat_locked(tree);
		}
		pthread_mutex_unlock(&sim.lock);
		pause_ms(10);
	}
}

/* A tree as powerd-host writes it: package, a core subzone, the top-level symlink, heartbeat. */
static void build_tree(const char *root)
{
	assert_int_equal(mkdir(root, 0755), 0);
	tu_write(root, "intel-rapl:0/name", "package-0\n");
	tu_writef(root, "intel-rapl:0/max_energy_range_uj", "%llu\n",
		(unsigned long long)MAX_RANGE_UJ);
	tu_write(root, "intel-rapl:0/intel-rapl:0:0/name", "core\n");
	tu_writef(root, "intel-rapl:0/intel-rapl:0:0/max_energy_range_uj", "%llu\n",
		(unsigned long long)MAX_RANGE_UJ);
	_cleanup_free_ char *link = xasprintf("%s/intel-rapl:0:0", root);
	assert_int_equal(symlink("intel-rapl:0/intel-rapl:0:0", link), 0);
	sim_write_energy_locked(root);
	sim_write_heartbeat_locked(root);
}

static void sim_set_energy(uint64_t pkg_uj, uint64_t core_uj)
{
	pthread_mutex_lock(&sim.lock);
	sim.pkg_uj = pkg_uj;
	sim.core_uj = core_uj;
	sim_write_energy_locked(tree);
	pthread_mutex_unlock(&sim.lock);
}

static void sim_set_frozen(bool is_frozen)
{
	pthread_mutex_lock(&sim.lock);
	sim.is_frozen = is_frozen;
	pthread_mutex_unlock(&sim.lock);
}

static size_t count_in(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The value of series now; NAN when absent or the scrape failed. */
static double metric_at(uint16_t p, const char *series)
{
	char *body = NULL;
	double v = NAN;

	int status = tu_http_get(p, "/metrics", &body);

	if (status != 200)
		print_message("scrape of port %u: %d\n", p, status);
	if (status == 200 && tu_metric(body, series, &v) < 0)
		v = NAN;
	free(body);
	return v;
}

static double metric(const char *series)
{
	return metric_at(port, series);
}

#define EPS 1e-9

/* Poll until lo <= series <= hi; returns the milliseconds it took, or fails the test. */
static uint64_t wait_metric(const char *series, double lo, double hi, int timeout_ms)
{
	uint64_t start = now_ms();
	double v = NAN;

	while (now_ms() - start <= (uint64_t)timeout_ms) {
		v = metric(series);
		if (v >= lo && v <= hi)
			return now_ms() - start;
		pause_ms(5);
	}
	fail_msg("%s is %.9g after %d ms, wanted [%.9g, %.9g]", series, v, timeout_ms, lo, hi);
	return 0;
}

static void write_config(const char *extra)
{
	_cleanup_free_ char *cg = xasprintf("%s/cgroup", dir);

	tu_writef(dir, "guest.yaml",
		"source: %s\ninterval: %dms\nlisten: 127.0.0.1:%u\n"
		"attribution: processes\nproc_root: %s\ncgroup_root: %s\nlog_level: info\n%s",
		tree, INTERVAL_MS, port, proc, cg, extra);
}

static int group_setup(void **state)
{
	/* The abuse test writes into connections the server may close first. */
	signal(SIGPIPE, SIG_IGN);
	dir = tu_mkdtemp("test_guest_daemon");
	tree = xasprintf("%s/tree", dir);
	proc = xasprintf("%s/proc", dir);
	config = xasprintf("%s/guest.yaml", dir);
	log_path = xasprintf("%s/daemon.log", dir);
	notify_path = xasprintf("%s/notify.sock", dir);

	sim.pkg_uj = 10000000;
	sim.core_uj = 4000000;
	sim.seq = 1;
	sim.last_ns = now_monotonic_ns();
	pthread_mutex_init(&sim.lock, NULL);
	build_tree(tree);
	assert_int_equal(mkdir(proc, 0755), 0);
	for (int pid = 100; pid <= 200; pid += 100) {
		_cleanup_free_ char *p = xasprintf("%s/%d", proc, pid);
		assert_int_equal(mkdir(p, 0755), 0);
	}
	sim.busy_ticks = 1000;
	sim_write_cpu_locked();
	assert_int_equal(pthread_create(&sim.thread, NULL, sim_main, NULL), 0);

	notify = tu_notify_start(notify_path);

	port = tu_free_port();
	write_config("");
	char *argv[] = { (char *)POWERD_GUEST_BIN, (char *)"-c", config, NULL };
	char *env_notify = xasprintf("NOTIFY_SOCKET=%s", notify_path);
	char *env[] = { env_notify, (char *)"WATCHDOG_USEC=400000", NULL };
	daemon_pid = tu_spawn(argv, env, log_path);
	free(env_notify);
	return 0;
}

static int group_teardown(void **state)
{
	if (daemon_pid > 0)
		tu_stop(daemon_pid, 5000);
	pthread_mutex_lock(&sim.lock);
	sim.stop = true;
	pthread_mutex_unlock(&sim.lock);
	pthread_join(sim.thread, NULL);
	tu_notify_stop(notify);
	/* TEST_KEEP=1 leaves the fixture and the daemon's log for a post-mortem. */
	if (!getenv("TEST_KEEP"))
		tu_rm_rf(dir);
	else
		print_message("kept %s\n", dir);
	free(dir);
	free(tree);
	free(proc);
	free(config);
	free(log_path);
	free(notify_path);
	return 0;
}

static void test_ready(void **state)
{
	assert_true(tu_notify_wait(notify, "READY=1", 0, 10000));
	/* READY only once listening and sampled: the port must answer right away. */
	assert_int_equal(tu_wait_port(port, 0), 0);
	assert_true(tu_notify_wait(notify, "STATUS=reading ", 0, 2000));
	assert_true(tu_notify_wait(notify, " W", 0, 2000));
	assert_true(tu_notify_wait(notify, "WATCHDOG=1", 0, 2000));
	assert_int_equal(metric(UP), 1);
	assert_int_equal(metric("powerd_source_estimated"), 0);
	assert_int_equal(metric("powerd_build_info{version=\"" POWERD_VERSION "\"}"), 1);
}

/* Energy is served in joules, from the first sample on: energy_uj/1e6 deltas. */
static void test_energy_values(void **state)
{
	/* The served counters are the tree's own (10 J and 4 J when the daemon started), as any
	 * other powercap reader of the share reports them. */
	assert_true(metric(PKG) == 10.0);
	assert_true(metric(CORE) == 4.0);
	sim_set_energy(15000000, 6000000);
	wait_metric(PKG, 15.0, 15.0, 3000);
	wait_metric(CORE, 6.0, 6.0, 3000);
	/* Nothing more happens: the next interval's power is 0. */
	wait_metric(PKG_W, 0, 0, 3000);
	sim_set_energy(15000001, 6000000);
	wait_metric(PKG, 15.000001, 15.000001, 3000);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* At a steady 10 W the served power is 10 W give or take one 10 ms host tick per interval, and
 * the processes share the energy by their CPU time (3:1, all of the busy time). */
static void test_power_and_processes(void **state)
{
	pthread_mutex_lock(&sim.lock);
	sim.rate_w = 10;
	sim.is_cpu_running = true;
	pthread_mutex_unlock(&sim.lock);

	wait_metric(PKG_W, 7, 13, 3000);
	double w[21];
	for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
		w[i] = metric(PKG_W);
		pause_ms(25);
	}
	qsort(w, ARRAY_SIZE(w), sizeof(w[0]), cmp_double);
	print_message("power at a steady 10 W: %.2f .. %.2f W, median %.2f W\n", w[0],
		w[ARRAY_SIZE(w) - 1], w[ARRAY_SIZE(w) / 2]);
	/* The median: a simulator thread stalled by a loaded machine skews single intervals. */
	assert_true(w[ARRAY_SIZE(w) / 2] >= 8 && w[ARRAY_SIZE(w) / 2] <= 12);
	assert_true(w[0] >= 0 && w[ARRAY_SIZE(w) - 1] < 100);

	pthread_mutex_lock(&sim.lock);
	sim.rate_w = 0;
	sim.is_cpu_running = false;
	uint64_t pkg = sim.pkg_uj;
	pthread_mutex_unlock(&sim.lock);
	wait_metric(PKG, (double)pkg / 1e6 - EPS, (double)pkg / 1e6 + EPS, 3000);

	char *body = NULL;
	double e100, e200, w100;
	assert_int_equal(tu_http_get(port, "/metrics", &body), 200);
	assert_int_equal(
		tu_metric(body, "powerd_process_energy_joules_total{pid=\"100\",comm=\"busy\"}",
			&e100),
		0);
	assert_int_equal(
		tu_metric(body,
			"powerd_process_energy_joules_total{pid=\"200\",comm=\"light one\"}",
			&e200),
		0);
	assert_int_equal(
		tu_metric(body, "powerd_process_power_watts{pid=\"100\",comm=\"busy\"}", &w100), 0);
	free(body);
	print_message("processes: %.3f J and %.3f J of %.3f J\n", e100, e200,
		(double)(pkg - 15000001) / 1e6);
	assert_true(e100 + e200 <= (double)(pkg - 10000000) / 1e6);
	assert_true(e200 > 0 && e100 / e200 > 2.0 && e100 / e200 < 4.5);
	assert_true(e100 + e200 > 0.5 * (double)(pkg - 15000001) / 1e6);
}

static void test_wrap(void **state)
{
	double before = metric(PKG);
	uint64_t raw = sim.pkg_uj; /* the simulator no longer changes it on its own */

	/* Up to just below the range... */
	sim_set_energy(MAX_RANGE_UJ - 1000000, sim.core_uj);
	before += (double)(MAX_RANGE_UJ - 1000000 - raw) / 1e6;
	wait_metric(PKG, before - 1e-6, before + 1e-6, 3000);
	before = metric(PKG);
	/* ...and past it: 1 J to the wrap, 2 J after it. */
	sim_set_energy(2000000, sim.core_uj);
	wait_metric(PKG, before + 3.0 - EPS, before + 3.000001 + EPS, 3000);
	wait_metric(UP, 1, 1, 1000);
}

static void test_heartbeat_frozen(void **state)
{
	size_t log_mark;
	uint64_t took;

	sim_set_frozen(true);
	took = wait_metric(UP, 0, 0, 3 * INTERVAL_MS + 400);
	print_message("frozen heartbeat noticed after %llu ms (interval %d ms)\n",
		(unsigned long long)took, INTERVAL_MS);
	assert_true(tu_notify_wait(notify, "STATUS=", tu_notify_len(notify), 2000));
	/* Several more samples while it stays frozen: still logged once. */
	for (int i = 0; i < 5; i++)
		assert_true(tu_notify_wait(notify, "STATUS=", tu_notify_len(notify), 2000));
	assert_true(tu_notify_wait(notify, "unchanged", 0, 1000));
	_cleanup_free_ char *log = tu_read(dir, "daemon.log");
	assert_int_equal(count_in(log, "unchanged"), 1);
	log_mark = strlen(log);

	sim_set_frozen(false);
	took = wait_metric(UP, 1, 1, 3 * INTERVAL_MS + 400);
	print_message("moving heartbeat noticed after %llu ms\n", (unsigned long long)took);
	_cleanup_free_ char *log2 = tu_read(dir, "daemon.log");
	assert_int_equal(count_in(log2 + log_mark, "readable again"), 1);
}

static void test_tree_removed(void **state)
{
	_cleanup_free_ char *gone = xasprintf("%s/tree.gone", dir);
	_cleanup_free_ char *fresh = xasprintf("%s/tree.new", dir);
	double before = metric(PKG);

	assert_false(isnan(before));
	pthread_mutex_lock(&sim.lock);
	assert_int_equal(rename(tree, gone), 0);
	pthread_mutex_unlock(&sim.lock);
	tu_rm_rf(gone);
	wait_metric(UP, 0, 0, 3000);
	assert_true(metric(PKG) >= before);

	/* The host comes back with the counter 1 J further. */
	pthread_mutex_lock(&sim.lock);
	sim.pkg_uj += 1000000;
	build_tree(fresh);
	assert_int_equal(rename(fresh, tree), 0);
	pthread_mutex_unlock(&sim.lock);
	wait_metric(UP, 1, 1, 3000);
	wait_metric(PKG, before + 1.0 - EPS, before + 1.0 + EPS, 3000);
}

static void test_garbage(void **state)
{
	_cleanup_free_ char *pkg_dir = xasprintf("%s/intel-rapl:0", tree);
	double before = metric(PKG);

	pthread_mutex_lock(&sim.lock);
	assert_int_equal(atomic_write(pkg_dir, "energy_uj", "12x34\n"), 0);
	pthread_mutex_unlock(&sim.lock);
	wait_metric(UP, 0, 0, 3000);
	assert_int_equal(kill(daemon_pid, 0), 0);
	assert_true(tu_notify_wait(notify, "energy_uj", 0, 2000));

	pthread_mutex_lock(&sim.lock);
	assert_int_equal(atomic_write(pkg_dir, "energy_uj", ""), 0);
	pthread_mutex_unlock(&sim.lock);
	assert_true(tu_notify_wait(notify, "STATUS=", tu_notify_len(notify), 2000));
	assert_true(tu_notify_wait(notify, "STATUS=", tu_notify_len(notify), 2000));
	assert_int_equal(metric(UP), 0);

	sim_set_energy(sim.pkg_uj + 500000, sim.core_uj);
	wait_metric(UP, 1, 1, 3000);
	wait_metric(PKG, before + 0.5 - EPS, before + 0.5 + EPS, 3000);
}

static int connect_nb(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* 500 clients at once, each sending a scrape as soon as it is connected. */
static unsigned parallel_scrapes(unsigned n)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct pollfd *pfd = xcalloc(n, sizeof(*pfd));
	bool *sent = xcalloc(n, sizeof(*sent));
	char **resp = xcalloc(n, sizeof(*resp));
	size_t *len = xcalloc(n, sizeof(*len));
	unsigned ok = 0, open_n = 0;
	uint64_t deadline = now_ms() + 20000;

	for (unsigned i = 0; i < n; i++) {
		pfd[i].fd = connect_nb();
		pfd[i].events = POLLOUT;
		open_n += pfd[i].fd >= 0;
		resp[i] = xcalloc(1, 1);
	}
	while (open_n > 0 && now_ms() < deadline) {
		if (poll(pfd, n, 200) < 0)
			break;
		for (unsigned i = 0; i < n; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			if (!sent[i] && (pfd[i].revents & POLLOUT)) {
				sent[i] = write(pfd[i].fd, req, sizeof(req) - 1) == sizeof(req) - 1;
				pfd[i].events = POLLIN;
				continue;
			}
			char buf[16384];
			ssize_t r = read(pfd[i].fd, buf, sizeof(buf));
			if (r > 0) {
				resp[i] = xrealloc(resp[i], len[i] + (size_t)r + 1);
				memcpy(resp[i] + len[i], buf, (size_t)r);
				len[i] += (size_t)r;
				resp[i][len[i]] = '\0';
				continue;
			}
			if (r < 0 && errno == EAGAIN)
				continue;
			ok += strncmp(resp[i], "HTTP/1.1 200", 12) == 0 && strstr(resp[i], UP " ");
			close(pfd[i].fd);
			pfd[i].fd = -1;
			open_n--;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
		free(resp[i]);
	}
	free(pfd);
	free(sent);
	free(resp);
	free(len);
	return ok;
}

static void test_http_abuse(void **state)
{
	size_t big = 64 * 1024;
	char *req = xmalloc(big + 128);
	int n = sprintf(req, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + n, 'a', big);
	n += (int)big;
	n += sprintf(req + n, "\r\n\r\n");
	int status = tu_http_raw(port, req, (size_t)n, NULL);
	free(req);
	print_message("64 KiB header: %d\n", status);
	assert_true(status < 0 || (status >= 400 && status < 500));

	static const char garbage[] = "\x01\x02 BLAH\r\n\r\n";
	status = tu_http_raw(port, garbage, sizeof(garbage) - 1, NULL);
	assert_true(status < 0 || (status >= 400 && status < 500));
	static const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(tu_http_raw(port, post, sizeof(post) - 1, NULL), 405);
	assert_int_equal(tu_http_get(port, "/nope", NULL), 404);
	assert_int_equal(tu_http_get(port, "/", NULL), 200);

	uint64_t start = now_ms();
	unsigned ok = parallel_scrapes(500);
	print_message("500 parallel scrapes: %u answered in full in %llu ms\n", ok,
		(unsigned long long)(now_ms() - start));
	assert_int_equal(ok, 500);
	assert_int_equal(tu_http_get(port, "/metrics", NULL), 200);
	assert_int_equal(metric(UP), 1);
}

/* Runs sh -c cmd; its exit status, the output into *ret_out. */
static int sh(const char *cmd, char **ret_out)
{
	_cleanup_free_ char *out = xasprintf("%s/sh.out", dir);
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL };

	unlink(out);
	int status = tu_wait(tu_spawn(argv, NULL, out), 30000);
	assert_true(status != -1 && WIFEXITED(status));
	*ret_out = tu_read(dir, "sh.out");
	if (!*ret_out)
		*ret_out = xstrdup("");
	return WEXITSTATUS(status);
}

static bool have(const char *tool)
{
	_cleanup_free_ char *cmd = xasprintf("command -v %s", tool);
	char *out;
	int r = sh(cmd, &out);

	free(out);
	return r == 0;
}

static void test_curl_and_promtool(void **state)
{
	char *out;

	if (!have("curl") || !have("promtool"))
		skip();
	_cleanup_free_ char *cmd = xasprintf("curl -sSf --compressed -o %s/native.prom "
					     "http://127.0.0.1:%u/metrics",
		dir, port);
	assert_int_equal(sh(cmd, &out), 0);
	free(out);
	_cleanup_free_ char *body = tu_read(dir, "native.prom");
	double v;
	assert_int_equal(tu_metric(body, UP, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(tu_metric(body, PKG, &v), 0);

	_cleanup_free_ char *check = xasprintf("promtool check metrics < %s/native.prom", dir);
	int r = sh(check, &out);
	if (r != 0)
		fail_msg("promtool on the native exposition: %s", out);
	free(out);
}

static void test_reload(void **state)
{
	size_t mark = tu_notify_len(notify);
	char *out;

	/* A broken file keeps the running configuration. */
	tu_write(dir, "guest.yaml", "interval: often\n");
	assert_int_equal(kill(daemon_pid, SIGHUP), 0);
	assert_true(tu_notify_wait(notify, "RELOADING=1", mark, 3000));
	assert_true(tu_notify_wait(notify, "READY=1", mark, 3000));
	assert_int_equal(tu_http_get(port, "/metrics", NULL), 200);
	wait_metric(UP, 1, 1, 3000);
	_cleanup_free_ char *log = tu_read(dir, "daemon.log");
	assert_non_null(strstr(log, "guest.yaml:1:"));

	/* Scaphandre names on another port. */
	uint16_t old_port = port;
	port = tu_free_port();
	write_config("metric_names: scaphandre\n");
	mark = tu_notify_len(notify);
	assert_int_equal(kill(daemon_pid, SIGHUP), 0);
	assert_true(tu_notify_wait(notify, "READY=1", mark, 3000));
	assert_int_equal(tu_wait_port(port, 3000), 0);
	assert_true(tu_wait_port(old_port, 0) < 0);
	wait_metric("scaph_host_energy_microjoules", 1, 1e12, 3000);
	assert_false(isnan(metric("scaph_host_power_microwatts")));
	assert_false(isnan(metric("scaph_socket_power_microwatts{socket_id=\"0\"}")));
	assert_false(isnan(metric("scaph_domain_power_microwatts{domain_name=\"core\","
				  "socket_id=\"0\",domain_id=\"0\"}")));
	assert_true(isnan(metric(PKG)));
	/* Processes under Scaphandre's name and labels; no exe link in the fixture: exe is comm. */
	assert_true(metric("scaph_process_power_consumption_microwatts{pid=\"100\",exe=\"busy\","
			   "cmdline=\"\"}") >= 0);

	/* An address that cannot be bound keeps the running configuration and address. */
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sa_len = sizeof(sa);
	_cleanup_close_ int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(busy, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(busy, 1), 0);
	assert_int_equal(getsockname(busy, (struct sockaddr *)&sa, &sa_len), 0);
	uint16_t good_port = port;
	port = ntohs(sa.sin_port);
	write_config("metric_names: native\n");
	port = good_port;
	mark = tu_notify_len(notify);
	assert_int_equal(kill(daemon_pid, SIGHUP), 0);
	assert_true(tu_notify_wait(notify, "READY=1", mark, 3000));
	_cleanup_free_ char *log3 = tu_read(dir, "daemon.log");
	assert_non_null(strstr(log3, "cannot listen on"));
	wait_metric("scaph_host_energy_microjoules", 1, 1e12, 3000);

	/* Another source re-opens: a missing one is down, the old one back continues its totals. */
	double total = metric("scaph_host_energy_microjoules");
	_cleanup_free_ char *cg = xasprintf("%s/cgroup", dir);
	tu_writef(dir, "guest.yaml",
		"source: %s/elsewhere\ninterval: %dms\nlisten: 127.0.0.1:%u\n"
		"attribution: processes\nproc_root: %s\ncgroup_root: %s\nmetric_names: "
		"scaphandre\n",
		dir, INTERVAL_MS, port, proc, cg);
	mark = tu_notify_len(notify);
	assert_int_equal(kill(daemon_pid, SIGHUP), 0);
	assert_true(tu_notify_wait(notify, "READY=1", mark, 3000));
	wait_metric(UP, 0, 0, 3000);
	assert_true(tu_notify_wait(notify, "elsewhere: missing", mark, 3000));
	write_config("metric_names: scaphandre\n");
	mark = tu_notify_len(notify);
	assert_int_equal(kill(daemon_pid, SIGHUP), 0);
	assert_true(tu_notify_wait(notify, "READY=1", mark, 3000));
	wait_metric(UP, 1, 1, 3000);
	assert_true(metric("scaph_host_energy_microjoules") >= total);

	if (!have("curl") || !have("promtool"))
		return;
	_cleanup_free_ char *cmd =
		xasprintf("curl -sSf -o %s/scaph.prom "
			  "http://127.0.0.1:%u/metrics && promtool check metrics < %s/scaph.prom",
			dir, port, dir);
	int r = sh(cmd, &out);
	/* Scaphandre's own names break two lint rules (µ units, counters without _total): that
	 * is the point of the mode, anything else is a real problem. */
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
		if (!strstr(line, "should have \"_total\" suffix") && !strstr(line, "base unit"))
			fail_msg("promtool on the scaphandre exposition (%d): %s", r, line);
	assert_true(r == 0 || r == 3);
	free(out);
}

/* Socket activation: systemd keeps its own copy of the listening socket. A reload to an address
 * that cannot be bound must keep serving on systemd's socket (it exited: it had closed that
 * socket, and the configured address, still held by systemd, could not be bound again). */
static void test_socket_activation_reload(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sa_len = sizeof(sa);
	_cleanup_close_ int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	_cleanup_close_ int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	_cleanup_free_ char *cfg = xasprintf("%s/act.yaml", dir);
	_cleanup_free_ char *act_log = xasprintf("%s/act.log", dir);

	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sa_len), 0);
	uint16_t act_port = ntohs(sa.sin_port);
	sa.sin_port = 0;
	assert_int_equal(bind(busy, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(busy, 1), 0);
	sa_len = sizeof(sa);
	assert_int_equal(getsockname(busy, (struct sockaddr *)&sa, &sa_len), 0);
	uint16_t busy_port = ntohs(sa.sin_port);

	tu_writef(dir, "act.yaml",
		"source: %s\ninterval: %dms\nlisten: 127.0.0.1:%u\n"
		"attribution: none\n",
		tree, INTERVAL_MS, act_port);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char pid_str[32];
		int log_fd = open(act_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (log_fd < 0 || dup2(log_fd, STDERR_FILENO) < 0 || dup2(lfd, 3) < 0 ||
			fcntl(3, F_SETFD, 0) < 0)
			_exit(127);
		snprintf(pid_str, sizeof(pid_str), "%d", (int)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pid_str, 1);
		unsetenv("NOTIFY_SOCKET");
		execl(POWERD_GUEST_BIN, POWERD_GUEST_BIN, "-c", cfg, (char *)NULL);
		_exit(127);
	}
	int code = 0;
	for (int i = 0; i < 300 && code != 200; i++) {
		code = tu_http_get(act_port, "/metrics", NULL);
		poll(NULL, 0, 10);
	}
	assert_int_equal(code, 200);

	tu_writef(dir, "act.yaml",
		"source: %s\ninterval: %dms\nlisten: 127.0.0.1:%u\n"
		"attribution: none\n",
		tree, INTERVAL_MS, busy_port);
	assert_int_equal(kill(pid, SIGHUP), 0);
	poll(NULL, 0, 500);
	int status = tu_wait(pid, 0);
	if (status != -1) {
		_cleanup_free_ char *log = tu_read(dir, "act.log");
		fail_msg("the daemon exited on a reload (status 0x%x):\n%s", status, log);
	}
	assert_int_equal(tu_http_get(act_port, "/metrics", NULL), 200);
	status = tu_stop(pid, 5000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_sigterm(void **state)
{
	size_t mark = tu_notify_len(notify);
	int status = tu_stop(daemon_pid, 5000);

	daemon_pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(tu_notify_wait(notify, "STOPPING=1", mark, 1000));
}

static void test_once(void **state)
{
	_cleanup_free_ char *cfg = xasprintf("%s/once.yaml", dir);
	_cleanup_free_ char *out_path = xasprintf("%s/once.out", dir);
	char *argv[] = { (char *)POWERD_GUEST_BIN, (char *)"-c", cfg, (char *)"--once", NULL };
	double v;

	tu_writef(dir, "once.yaml", "source: %s\ninterval: 100ms\nattribution: none\n", tree);
	int status = tu_wait(tu_spawn(argv, NULL, out_path), 10000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	_cleanup_free_ char *out = tu_read(dir, "once.out");
	assert_int_equal(tu_metric(out, UP, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(tu_metric(out, PKG, &v), 0);

	/* Attribution over services, on a fixture cgroup v2 tree. */
	_cleanup_free_ char *cg = xasprintf("%s/cg2", dir);
	tu_write(cg, "cgroup.controllers", "cpu\n");
	tu_write(cg, "system.slice/web.service/cpu.stat", "usage_usec 100\n");
	tu_writef(dir, "once.yaml",
		"source: %s\ninterval: 100ms\nattribution: units\n"
		"proc_root: %s\ncgroup_root: %s\n",
		tree, proc, cg);
	unlink(out_path);
	status = tu_wait(tu_spawn(argv, NULL, out_path), 10000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	_cleanup_free_ char *out_units = tu_read(dir, "once.out");
	assert_int_equal(
		tu_metric(out_units, "powerd_unit_energy_joules_total{unit=\"web.service\"}", &v),
		0);
	assert_int_equal(
		tu_metric(out_units, "powerd_unit_power_watts{unit=\"web.service\"}", &v), 0);

	tu_writef(
		dir, "once.yaml", "source: %s/nowhere\ninterval: 100ms\nattribution: none\n", dir);
	unlink(out_path);
	status = tu_wait(tu_spawn(argv, NULL, out_path), 10000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	_cleanup_free_ char *out2 = tu_read(dir, "once.out");
	assert_int_equal(tu_metric(out2, UP, &v), 0);
	assert_int_equal(v, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready),
		cmocka_unit_test(test_energy_values),
		cmocka_unit_test(test_power_and_processes),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_heartbeat_frozen),
		cmocka_unit_test(test_tree_removed),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_http_abuse),
		cmocka_unit_test(test_curl_and_promtool),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_socket_activation_reload),
		cmocka_unit_test(test_sigterm),
		cmocka_unit_test(test_once),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
