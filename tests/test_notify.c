/* notify: the datagrams a real AF_UNIX NOTIFY_SOCKET receives, and the watchdog timer. */
#include "tests/testutil.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include <event2/event.h>

#include "common/notify.h"

struct fixture {
	char *dir;
	char *path;
	int fd;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	f->dir = tu_mkdtemp("test_notify");
	f->path = xasprintf("%s/notify.sock", f->dir);
	assert_true(strlen(f->path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, f->path);
	f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->fd >= 0);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", f->path, 1);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->fd);
	tu_rm_rf(f->dir);
	free(f->path);
	free(f->dir);
	free(f);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return 0;
}

/* The next datagram, waiting up to timeout_ms; NULL if none came. */
static char *recv_msg(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[4096];

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return NULL;
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return xstrdup(buf);
}

static void set_watchdog(const char *usec)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_USEC", usec, 1);
	setenv("WATCHDOG_PID", pid, 1);
}

/* Datagrams read from within the loop: a unix datagram socket queues only max_dgram_qlen (10)
 * messages before the sender blocks, so the test must drain it while the watchdog runs. */
struct inbox {
	int fd;
	char *msgs[256];
	size_t n;
};

static void inbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct inbox *in = arg;

	for (char *m; (m = recv_msg(fd, 0));) {
		assert_true(in->n < ARRAY_SIZE(in->msgs));
		in->msgs[in->n++] = m;
	}
}

static void inbox_done(struct inbox *in)
{
	for (size_t i = 0; i < in->n; i++)
		free(in->msgs[i]);
	in->n = 0;
}

/* Run base for ms while collecting datagrams into in. */
static void run_loop_ms(struct event_base *base, int ms, struct inbox *in)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *ev = event_new(base, in->fd, EV_READ | EV_PERSIST, inbox_cb, in);

	assert_non_null(ev);
	assert_int_equal(event_add(ev, NULL), 0);
	assert_int_equal(event_base_loopexit(base, &tv), 0);
	assert_true(event_base_dispatch(base) >= 0);
	event_free(ev);
	inbox_cb(in->fd, EV_READ, in);
}

static void test_ready_watchdog_reloading_stopping(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct notify *n = NULL;
	unsigned watchdogs = 0;
	bool has_ready = false, has_reloading = false, has_stopping = false;
	bool has_reload_done = false, has_status = false;
	struct inbox in = { .fd = f->fd };
	struct timespec ts;

	set_watchdog("100000");
	assert_int_equal(notify_new(base, &n), 0);
	assert_int_equal(notify_watchdog_usec(n), 100000);

	notify_ready("serving %d domains\non two lines", 3);
	run_loop_ms(base, 1000, &in);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t before_us = (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
	notify_reloading();
	notify_reload_done();
	notify_status("tick %s", "slow");
	notify_stopping();
	inbox_cb(f->fd, EV_READ, &in);

	for (size_t i = 0; i < in.n; i++) {
		const char *m = in.msgs[i];

		if (streq(m, "WATCHDOG=1")) {
			watchdogs++;
		} else if (streq(m, "READY=1\nSTATUS=serving 3 domains on two lines")) {
			assert_false(has_ready);
			assert_int_equal(watchdogs, 0); /* READY came first, before the loop ran */
			has_ready = true;
		} else if (startswith(m, "RELOADING=1\nMONOTONIC_USEC=")) {
			const char *v = m + strlen("RELOADING=1\nMONOTONIC_USEC=");
			uint64_t us;
			assert_int_equal(parse_u64(v, &us), 0);
			assert_true(us >= before_us && us < before_us + 5 * USEC_PER_SEC);
			has_reloading = true;
		} else if (streq(m, "READY=1")) {
			assert_true(has_reloading);
			has_reload_done = true;
		} else if (streq(m, "STATUS=tick slow")) {
			has_status = true;
		} else if (streq(m, "STOPPING=1")) {
			assert_true(has_status);
			has_stopping = true;
		} else {
			fail_msg("unexpected datagram \"%s\"", m);
		}
	}
	assert_true(has_ready);
	/* Every 50 ms for a second: about 20; a loaded machine still manages 3. */
	assert_true(watchdogs >= 3);
	assert_true(watchdogs <= 25);
	assert_true(has_reloading && has_reload_done && has_status && has_stopping);

	inbox_done(&in);
	notify_free(n);
	event_base_free(base);
}

static void test_watchdog_for_another_pid(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct notify *n = NULL;
	struct inbox in = { .fd = f->fd };

	set_watchdog("100000");
	setenv("WATCHDOG_PID", "1", 1); /* meant for someone else */
	assert_int_equal(notify_new(base, &n), 0);
	assert_int_equal(notify_watchdog_usec(n), 0);
	run_loop_ms(base, 200, &in);
	assert_int_equal(in.n, 0);
	notify_free(n);
	event_base_free(base);
}

static void test_no_watchdog(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct notify *n = NULL;
	struct inbox in = { .fd = f->fd };

	assert_int_equal(notify_new(base, &n), 0);
	assert_int_equal(notify_watchdog_usec(n), 0);
	/* Nothing is pending: the loop returns at once rather than serving a timer. */
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	notify_ready("up");
	char *m = recv_msg(f->fd, 1000);
	assert_non_null(m);
	assert_string_equal(m, "READY=1\nSTATUS=up");
	free(m);
	run_loop_ms(base, 300, &in);
	assert_int_equal(in.n, 0);
	notify_free(n);
	event_base_free(base);
}

static void test_no_notify_socket(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct notify *n = NULL;

	unsetenv("NOTIFY_SOCKET");
	set_watchdog("100000");
	assert_int_equal(notify_new(base, &n), 0);
	assert_int_equal(notify_watchdog_usec(n), 0);
	notify_ready("up %d", 1);
	notify_status("x");
	notify_reloading();
	notify_reload_done();
	notify_stopping();
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	char *m = recv_msg(f->fd, 0);
	assert_null(m);
	notify_free(n);
	notify_free(NULL);
	assert_int_equal(notify_watchdog_usec(NULL), 0);
	event_base_free(base);
}

/* systemd busy (PID 1 not reading its notification socket): the queue fills after
 * max_dgram_qlen datagrams, and a STATUS= sent at every tick must then be dropped, not block the
 * event loop (and with it every scrape) until systemd reads again. */
static void test_full_socket_does_not_block(void **state)
{
	struct fixture *f = *state;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 1000; i++)
			notify_status("tick %d", i);
		_exit(0);
	}
	int status = tu_wait(pid, 5000);
	if (status == -1) {
		kill(pid, SIGKILL);
		tu_wait(pid, 5000);
		fail_msg("notify blocked on a full notification socket");
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* What got through is intact. */
	char *m = recv_msg(f->fd, 1000);
	assert_non_null(m);
	assert_string_equal(m, "STATUS=tick 0");
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_ready_watchdog_reloading_stopping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watchdog_for_another_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_watchdog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_notify_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_socket_does_not_block, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
