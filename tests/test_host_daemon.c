/* The real powerd-host binary as a process: libvirt's test driver (in the daemon's own process,
 * with its stock running domain "test"), a fixture powercap tree, a temporary share_dir, metrics
 * over loopback HTTP and a real NOTIFY_SOCKET. The test runs in a mount namespace of its own,
 * which the daemon inherits, and unmounts whatever is left under its directory at the end. */
#include "tests/testutil.h"

#include <fcntl.h>

#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "common/tree.h"

struct fx {
	char *tmp;
	char *share;
	char *pc;
	char *cfg;
	char *log;
	char *notify_path;
	int notify_fd;
	uint16_t port;
	uint64_t raw_uj;
	char *notes; /* every notify datagram received, concatenated */
};

static const char *mount_prefix; /* the current test's directory */

static int count_mounts(void)
{
	assert_non_null(mount_prefix);
	return tu_mount_count_under(mount_prefix);
}

/* Short pause of a polling loop that waits for a state with a deadline. */
static void pause_ms(int ms)
{
	struct timespec ts = { 0, (long)ms * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

/* Receive notify datagrams until one contains what, or timeout_ms passes. */
static bool notified(struct fx *f, const char *what, int timeout_ms)
{
	uint64_t deadline = now_monotonic_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;

	for (;;) {
		struct pollfd pfd = { .fd = f->notify_fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - now_monotonic_ns()) / (int64_t)NSEC_PER_MSEC;
		char buf[4096];

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		ssize_t n = recv(f->notify_fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		char *all = xasprintf("%s%s\n--\n", f->notes ? f->notes : "", buf);
		free(f->notes);
		f->notes = all;
		if (strstr(buf, what))
			return true;
	}
}

static void write_counter(struct fx *f)
{
	tu_writef(f->pc, "intel-rapl:0/energy_uj", "%" PRIu64 "\n", f->raw_uj);
}

static void write_config(struct fx *f, const char *uri, const char *extra)
{
	tu_writef(f->tmp, "host.yaml",
		"libvirt_uri: %s\n"
		"interval: 200ms\n"
		"share_dir: %s\n"
		"tmpfs_size: 1m\n"
		"powercap_root: %s\n"
		"metrics_listen: 127.0.0.1:%u\n"
		"log_level: debug\n%s",
		uri, f->share, f->pc, f->port, extra ? extra : "");
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	f->tmp = tu_mkdtemp("powerd-daemon");
	mount_prefix = f->tmp;
	f->share = xasprintf("%s/share", f->tmp);
	f->pc = xasprintf("%s/powercap", f->tmp);
	f->cfg = xasprintf("%s/host.yaml", f->tmp);
	f->log = xasprintf("%s/daemon.log", f->tmp);
	f->notify_path = xasprintf("%s/notify.sock", f->tmp);
	tu_write(f->pc, "intel-rapl:0/name", "package-0\n");
	tu_write(f->pc, "intel-rapl:0/max_energy_range_uj", "262143328850\n");
	f->raw_uj = 1000000;
	write_counter(f);
	f->port = tu_free_port();
	write_config(f, "test:///default", NULL);

	f->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->notify_fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->notify_path);
	assert_int_equal(bind(f->notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tu_umount_under(f->tmp);
	assert_int_equal(count_mounts(), 0);
	mount_prefix = NULL;
	close(f->notify_fd);
	if (f->notes && getenv("POWERD_TEST_VERBOSE"))
		fprintf(stderr, "notify:\n%s", f->notes);
	tu_rm_rf(f->tmp);
	free(f->tmp);
	free(f->share);
	free(f->pc);
	free(f->cfg);
	free(f->log);
	free(f->notify_path);
	free(f->notes);
	free(f);
	return 0;
}

static int group_setup(void **state)
{
	if (unshare(CLONE_NEWNS) == 0)
		/* "none": valgrind checks the type string even where the kernel ignores it. */
		mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static pid_t start_daemon(struct fx *f)
{
	char *argv[] = { POWERD_HOST_BIN, "-c", f->cfg, NULL };
	_cleanup_free_ char *ns = xasprintf("NOTIFY_SOCKET=%s", f->notify_path);
	char *env[] = { ns, "WATCHDOG_USEC=400000", NULL };

	/* putenv keeps the pointer: the child gets its own copy of memory at fork. */
	return tu_spawn(argv, env, f->log);
}

static void dump_log(struct fx *f)
{
	_cleanup_free_ char *log = tu_read(f->tmp, "daemon.log");
	fprintf(stderr, "--- daemon log ---\n%s\n--- notify ---\n%s\n", log ? log : "(none)",
		f->notes ? f->notes : "(none)");
}

static uint64_t read_energy(struct fx *f, const char *domain)
{
	_cleanup_free_ char *rel = xasprintf("%s/intel-rapl:0/energy_uj", domain);
	_cleanup_free_ char *v = tu_read(f->share, rel);
	return v ? strtoull(v, NULL, 10) : 0;
}

/* Advance the fixture counter until the domain's energy exceeds above (bounded). */
static uint64_t wait_energy_above(struct fx *f, const char *domain, uint64_t above)
{
	uint64_t e = 0;

	for (int i = 0; i < 500; i++) {
		f->raw_uj += 200000;
		write_counter(f);
		e = read_energy(f, domain);
		if (e > above)
			return e;
		pause_ms(20);
	}
	return e;
}

static bool is_readonly_mount(const char *path)
{
	struct statvfs sv;
	return statvfs(path, &sv) == 0 && (sv.f_flag & ST_RDONLY);
}

static void test_daemon_lifecycle(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *exp = xasprintf("%s/test", f->share);
	int n0 = count_mounts();
	double v;

	pid_t pid = start_daemon(f);
	if (!notified(f, "READY=1", 10000))
		dump_log(f);
	assert_non_null(strstr(f->notes, "READY=1"));
	assert_true(notified(f, "STATUS=1 domains", 5000));
	assert_true(notified(f, "libvirt connected", 5000));
	assert_true(notified(f, "WATCHDOG=1", 5000));

	/* The stock running domain got its read-only share and a tree whose energy rises. */
	assert_true(is_readonly_mount(exp));
	assert_int_equal(count_mounts(), n0 + 2);
	uint64_t e1 = wait_energy_above(f, "test", 0);
	assert_true(e1 > 0);
	uint64_t e2 = wait_energy_above(f, "test", e1);
	assert_true(e2 > e1);

	/* Metrics over loopback. */
	_cleanup_free_ char *body = NULL;
	assert_int_equal(tu_http_get(f->port, "/metrics", &body), 200);
	assert_int_equal(
		tu_metric(body, "powerd_host_energy_joules_total{zone=\"package-0\"}", &v), 0);
	assert_true(v > 0);
	assert_int_equal(
		tu_metric(body,
			"powerd_domain_energy_joules_total{domain=\"test\",zone=\"package-0\"}",
			&v),
		0);
	assert_true(v > 0);
	assert_int_equal(tu_metric(body, "powerd_domains", &v), 0);
	assert_true(v == 1);
	assert_int_equal(tu_metric(body, "powerd_libvirt_connected", &v), 0);
	assert_true(v == 1);

	/* SIGTERM: STOPPING=1, exit 0, the share stays mounted. */
	int status = tu_stop(pid, 10000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(notified(f, "STOPPING=1", 2000));
	assert_int_equal(count_mounts(), n0 + 2);
	assert_true(is_readonly_mount(exp));
	uint64_t before = read_energy(f, "test");
	assert_true(before >= e2);

	/* Restart: adopts the mounts (no new ones) and continues the counter. */
	pid = start_daemon(f);
	assert_true(notified(f, "READY=1", 10000));
	assert_int_equal(count_mounts(), n0 + 2);
	assert_true(read_energy(f, "test") >= before);
	uint64_t e3 = wait_energy_above(f, "test", before);
	assert_true(e3 > before);
	status = tu_stop(pid, 10000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(count_mounts(), n0 + 2);

	tu_umount_under(f->tmp);
	assert_int_equal(count_mounts(), n0);
}

static void test_reload(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *exp = xasprintf("%s/test", f->share);
	int n0 = count_mounts();

	pid_t pid = start_daemon(f);
	assert_true(notified(f, "READY=1", 10000));
	assert_int_equal(count_mounts(), n0 + 2);

	/* A bad config on SIGHUP: logged, the old one stays, READY=1 again. */
	tu_write(f->tmp, "host.yaml", "interval: [\n");
	free(f->notes);
	f->notes = NULL;
	kill(pid, SIGHUP);
	assert_true(notified(f, "RELOADING=1", 5000));
	assert_true(notified(f, "READY=1", 5000));
	assert_int_equal(count_mounts(), n0 + 2);

	/* Excluding the domain: no longer tracked, but it runs, so its share stays (qemu holds
	 * it) until it stops. */
	write_config(f, "test:///default", "domains: { exclude: [\"test\"] }\n");
	kill(pid, SIGHUP);
	assert_true(notified(f, "RELOADING=1", 5000));
	assert_true(notified(f, "READY=1", 5000));
	assert_true(notified(f, "STATUS=0 domains", 5000));
	assert_int_equal(count_mounts(), n0 + 2);
	assert_int_equal(access(exp, F_OK), 0);
	assert_int_equal(kill(pid, 0), 0);

	int status = tu_stop(pid, 10000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_ready_without_libvirt(void **state)
{
	struct fx *f = *state;

	write_config(f, "test:///nonexistent/powerd-no-such-file.xml", NULL);
	pid_t pid = start_daemon(f);
	assert_true(notified(f, "READY=1", 10000));
	assert_true(notified(f, "libvirt disconnected (retrying)", 5000));
	_cleanup_free_ char *body = NULL;
	double v;
	assert_int_equal(tu_wait_port(f->port, 5000), 0);
	assert_int_equal(tu_http_get(f->port, "/metrics", &body), 200);
	assert_int_equal(tu_metric(body, "powerd_libvirt_connected", &v), 0);
	assert_true(v == 0);
	int status = tu_stop(pid, 10000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int run_cmd(char *const argv[], char *const env[], const char *log)
{
	int status = tu_wait(tu_spawn(argv, env, log), 20000);
	assert_true(status != -1);
	return status;
}

static void test_check_config(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *bad = xasprintf("%s/bad.yaml", f->tmp);
	_cleanup_free_ char *out = xasprintf("%s/check.log", f->tmp);

	tu_write(f->tmp, "bad.yaml", "interval: 1s\nno_such_key: 3\n");
	char *argv[] = { POWERD_HOST_BIN, "-c", bad, "--check-config", NULL };
	int status = run_cmd(argv, NULL, out);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 2);
	_cleanup_free_ char *msg = tu_read(f->tmp, "check.log");
	assert_non_null(msg);
	_cleanup_free_ char *where = xasprintf("%s:2", bad);
	assert_non_null(strstr(msg, where));
	assert_non_null(strstr(msg, "no_such_key"));

	/* A given file that does not exist is an error too; the good one passes. */
	_cleanup_free_ char *missing = xasprintf("%s/missing.yaml", f->tmp);
	char *argv2[] = { POWERD_HOST_BIN, "-c", missing, "--check-config", NULL };
	status = run_cmd(argv2, NULL, out);
	assert_int_equal(WEXITSTATUS(status), 2);
	/* qemu's user must reach share_dir: mkdtemp made its parent 0700 */
	assert_int_equal(chmod(f->tmp, 0755), 0);
	char *argv3[] = { POWERD_HOST_BIN, "-c", f->cfg, "--check-config", NULL };
	status = run_cmd(argv3, NULL, out);
	assert_int_equal(WEXITSTATUS(status), 0);
	char *argv4[] = { POWERD_HOST_BIN, "--no-such-option", NULL };
	status = run_cmd(argv4, NULL, out);
	assert_int_equal(WEXITSTATUS(status), 2);
}

static void test_hook_prepare(void **state)
{
	struct fx *f = *state;
	int n0 = count_mounts();

	/* POWERD_HOST points at a wrapper that adds our config. */
	tu_writef(f->tmp, "powerd-host-wrapper", "#!/bin/sh\nexec %s -c %s \"$@\"\n",
		POWERD_HOST_BIN, f->cfg);
	_cleanup_free_ char *wrapper = xasprintf("%s/powerd-host-wrapper", f->tmp);
	assert_int_equal(chmod(wrapper, 0755), 0);
	_cleanup_free_ char *envh = xasprintf("POWERD_HOST=%s", wrapper);
	char *env[] = { envh, NULL };
	_cleanup_free_ char *out = xasprintf("%s/hook.log", f->tmp);
	char *hook = POWERD_SOURCE_DIR "/units/powerd-libvirt-hook";

	char *release[] = { "/bin/sh", hook, "hook vm", "release", "end", "-", NULL };
	assert_int_equal(WEXITSTATUS(run_cmd(release, env, out)), 0);
	assert_int_equal(count_mounts(), n0);

	char *prep[] = { "/bin/sh", hook, "hook vm", "prepare", "begin", "-", NULL };
	int status = run_cmd(prep, env, out);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	_cleanup_free_ char *exp = xasprintf("%s/hook vm", f->share);
	assert_true(is_readonly_mount(exp));
	assert_int_equal(count_mounts(), n0 + 2);
	_cleanup_free_ char *name = tu_read(f->share, "hook vm/intel-rapl:0/name");
	assert_non_null(name);
	assert_string_equal(name, "package-0\n");
	_cleanup_free_ char *energy = tu_read(f->share, "hook vm/intel-rapl:0/energy_uj");
	assert_non_null(energy);

	/* Again (libvirt restarts the domain): adopted, not mounted twice. */
	assert_int_equal(WEXITSTATUS(run_cmd(prep, env, out)), 0);
	assert_int_equal(count_mounts(), n0 + 2);

	/* An unsafe name fails the prepare with a message; nothing is mounted, and the hook still
	 * lets libvirt start the domain. */
	char *bad[] = { "/bin/sh", hook, ".powerd", "prepare", "begin", "-", NULL };
	assert_int_equal(WEXITSTATUS(run_cmd(bad, env, out)), 0);
	assert_int_equal(count_mounts(), n0 + 2);
	_cleanup_free_ char *msg = tu_read(f->tmp, "hook.log");
	assert_non_null(strstr(msg, "not a safe directory name"));
	assert_non_null(strstr(msg, "starting it anyway"));

	tu_umount_under(f->tmp);
	assert_int_equal(count_mounts(), n0);
}

/* The daemon's part: write the tree in the private share dir as fast as it goes for ms; before
 * each write check that energy_uj still holds what this process wrote last. How many times it
 * did not (or a write failed). */
static int daemon_like_writer(const char *dir, uint64_t ms)
{
	static const char *const names[] = { "package-0" };
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct tree *t;
	uint64_t total = 0, t0 = now_monotonic_ns();
	int bad = 0;

	if (fd < 0 || tree_open(fd, names, 1, &t) < 0)
		return 100;
	total = tree_adopted_uj(t, 0);
	while (now_monotonic_ns() - t0 < ms * NSEC_PER_MSEC) {
		_cleanup_free_ char *have = tu_read(dir, "intel-rapl:0/energy_uj");
		uint64_t v;
		if (!have || parse_u64_content(have, strlen(have), &v) < 0 || v != total)
			bad++;
		total += 1000;
		if (tree_write(t, &total, NULL) < 0)
			bad++;
	}
	tree_free(t);
	return bad;
}

/* Issue 10 #4: the hook's --prepare beside a daemon that writes the domain's tree (two real
 * processes): prepare must not write an older energy_uj over the daemon's, nor take away its
 * temporaries. It lays out a tree only in a share it has just mounted. */
static void test_prepare_beside_daemon(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *out = xasprintf("%s/prepare.log", f->tmp);
	_cleanup_free_ char *priv = xasprintf("%s/.powerd/pv", f->share);
	char *prep[] = { POWERD_HOST_BIN, "-c", f->cfg, "--prepare", "pv", NULL };
	int n0 = count_mounts();

	assert_int_equal(WEXITSTATUS(run_cmd(prep, NULL, out)), 0);
	assert_int_equal(count_mounts(), n0 + 2);
	_cleanup_free_ char *e0 = tu_read(f->share, "pv/intel-rapl:0/energy_uj");
	assert_non_null(e0);
	assert_string_equal(e0, "0\n");

	pid_t writer = fork();
	assert_true(writer >= 0);
	if (writer == 0)
		_exit(MIN(daemon_like_writer(priv, 3000), 255));
	for (int i = 0; i < 15; i++)
		assert_int_equal(WEXITSTATUS(run_cmd(prep, NULL, out)), 0);
	int status;
	assert_int_equal(waitpid(writer, &status, 0), writer);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	_cleanup_free_ char *msg = tu_read(f->tmp, "prepare.log");
	assert_non_null(strstr(msg, "its tree left to the daemon"));
	assert_int_equal(count_mounts(), n0 + 2);
	tu_umount_under(f->tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_daemon_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_without_libvirt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hook_prepare, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_beside_daemon, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
