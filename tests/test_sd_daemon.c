/* common/sd_daemon.c: systemd's service protocol spoken without libsystemd. Socket activation's
 * variables (ours, another process's, malformed) on real listening and non-listening sockets; the
 * watchdog variables; notifications received on a real datagram socket, by path and abstract
 * name, and a full queue that drops instead of blocking. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/sd_daemon.h"

static void set_listen_env(const char *pid, const char *fds)
{
	char self[32];

	snprintf(self, sizeof(self), "%d", (int)getpid());
	setenv("LISTEN_PID", pid ? pid : self, 1);
	setenv("LISTEN_FDS", fds, 1);
	setenv("LISTEN_FDNAMES", "x", 1);
}

/* Descriptors 3 and 4: a listening TCP socket and a pipe's read end, as systemd would pass
 * them (not close-on-exec). */
static void pass_fds(int *ret_saved3, int *ret_saved4)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int p[2];

	/* Whatever 3 and 4 are now (ctest's, cmocka's) is kept aside and given back after. */
	*ret_saved3 = fcntl(SD_LISTEN_FDS_START, F_DUPFD_CLOEXEC, 100);
	*ret_saved4 = fcntl(SD_LISTEN_FDS_START + 1, F_DUPFD_CLOEXEC, 100);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(pipe(p), 0);
	int hl = fcntl(l, F_DUPFD, 200), hp = fcntl(p[0], F_DUPFD, 200);
	assert_true(hl >= 200 && hp >= 200);
	close(l);
	close(p[0]);
	close(p[1]);
	assert_int_equal(dup2(hl, 3), 3);
	assert_int_equal(dup2(hp, 4), 4);
	close(hl);
	close(hp);
	assert_false(fcntl(3, F_GETFD) & FD_CLOEXEC);
}

static void restore_fds(int saved3, int saved4)
{
	if (saved3 >= 0)
		dup2(saved3, 3), close(saved3);
	else
		close(3);
	if (saved4 >= 0)
		dup2(saved4, 4), close(saved4);
	else
		close(4);
}

static void test_listen_fds(void **state)
{
	int s3, s4;

	pass_fds(&s3, &s4);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	assert_int_equal(sd_daemon_listen_fds(), 0);

	set_listen_env("1", "2"); /* for someone else: not ours, and unset */
	assert_int_equal(sd_daemon_listen_fds(), 0);
	assert_null(getenv("LISTEN_FDS"));

	set_listen_env(NULL, "2x");
	assert_int_equal(sd_daemon_listen_fds(), -EINVAL);
	assert_null(getenv("LISTEN_PID"));

	set_listen_env(NULL, "2");
	assert_int_equal(sd_daemon_listen_fds(), 2);
	assert_null(getenv("LISTEN_PID"));
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_FDNAMES"));
	assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(4, F_GETFD) & FD_CLOEXEC);
	/* Only the listening stream socket is one. */
	assert_int_equal(sd_daemon_is_listening_stream(3), 1);
	assert_int_equal(sd_daemon_is_listening_stream(4), 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(sd_daemon_is_listening_stream(c), 0);
	close(c);
	c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_int_equal(sd_daemon_is_listening_stream(c), 0);
	close(c);
	restore_fds(s3, s4);
}

static void test_watchdog(void **state)
{
	char self[32];
	uint64_t usec = 0;

	snprintf(self, sizeof(self), "%d", (int)getpid());
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sd_daemon_watchdog_usec(&usec), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(sd_daemon_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 30000000);
	setenv("WATCHDOG_PID", self, 1);
	usec = 0;
	assert_int_equal(sd_daemon_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 30000000);
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(sd_daemon_watchdog_usec(&usec), 0);
	setenv("WATCHDOG_PID", self, 1);
	setenv("WATCHDOG_USEC", "0", 1);
	assert_int_equal(sd_daemon_watchdog_usec(&usec), -EINVAL);
	setenv("WATCHDOG_USEC", "-5", 1);
	assert_int_equal(sd_daemon_watchdog_usec(&usec), -EINVAL);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

static int bind_dgram(struct sockaddr_un *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)sa, len), 0);
	return fd;
}

static void expect_datagram(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void test_notify(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("test_sd_daemon");
	_cleanup_free_ char *path = xasprintf("%s/notify", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sd_daemon_notify("READY=1", true), 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	_cleanup_close_ int fd = bind_dgram(&sa, sizeof(sa));
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(sd_daemon_notify("READY=1", true), 1);
	expect_datagram(fd, "READY=1");
	assert_int_equal(sd_daemon_notify("STATUS=hello", false), 1);
	expect_datagram(fd, "STATUS=hello");

	/* A full queue: the droppable message is refused at once instead of blocking. */
	int sent = 0, r;
	while ((r = sd_daemon_notify("STATUS=filling the queue", false)) == 1 && sent < 100000)
		sent++;
	assert_int_equal(r, -EAGAIN);
	assert_true(sent > 0);

	/* An abstract name. */
	char name[64];
	snprintf(name, sizeof(name), "@powerd-test-%d", (int)getpid());
	struct sockaddr_un asa = { .sun_family = AF_UNIX };
	memcpy(asa.sun_path + 1, name + 1, strlen(name) - 1);
	_cleanup_close_ int afd = bind_dgram(
		&asa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name)));
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(sd_daemon_notify("STOPPING=1", true), 1);
	expect_datagram(afd, "STOPPING=1");

	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	assert_int_equal(sd_daemon_notify("READY=1", true), -EAFNOSUPPORT);
	setenv("NOTIFY_SOCKET", "/", 1);
	assert_int_equal(sd_daemon_notify("READY=1", true), -EINVAL);
	unsetenv("NOTIFY_SOCKET");
	tu_rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_fds),
		cmocka_unit_test(test_watchdog),
		cmocka_unit_test(test_notify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
