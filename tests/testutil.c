/* Helpers shared by the tests. */
#include "tests/testutil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include <event2/event.h>

#include "common/strbuf.h"

char *tu_mkdtemp(const char *prefix)
{
	const char *tmp = getenv("TMPDIR");
	char *path = xasprintf("%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);

	assert_non_null(mkdtemp(path));
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void tu_rm_rf(const char *path)
{
	if (path)
		nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void mkdir_parents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
}

void tu_write(const char *dir, const char *relpath, const char *content)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, relpath);

	mkdir_parents(path);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, content, strlen(content)), 0);
}

void tu_writef(const char *dir, const char *relpath, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	tu_write(dir, relpath, s);
	free(s);
}

char *tu_read(const char *dir, const char *relpath)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, relpath);
	char *buf = xmalloc(1 << 20);
	size_t len;

	if (read_file_at(AT_FDCWD, path, buf, 1 << 20, &len) < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

pid_t tu_spawn(char *const argv[], char *const env[], const char *log_path)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (log_path) {
			int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (fd >= 0) {
				dup2(fd, STDOUT_FILENO);
				dup2(fd, STDERR_FILENO);
			}
		}
		for (size_t i = 0; env && env[i]; i++)
			putenv(env[i]);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int tu_wait(pid_t pid, int timeout_ms)
{
	for (int waited = 0;; waited += 10) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (waited >= timeout_ms)
			return -1;
		/* Polling a child's exit: there is no event to wait on without a SIGCHLD handler.
		 */
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

int tu_stop(pid_t pid, int timeout_ms)
{
	kill(pid, SIGTERM);
	int status = tu_wait(pid, timeout_ms);
	if (status == -1) {
		kill(pid, SIGKILL);
		status = tu_wait(pid, 5000);
	}
	return status;
}

uint16_t tu_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	return ntohs(sa.sin_port);
}

static int connect_loopback(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int tu_wait_port(uint16_t port, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		int fd = connect_loopback(port);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

int tu_http_raw(uint16_t port, const char *raw, size_t raw_len, char **ret_response)
{
	_cleanup_close_ int fd = connect_loopback(port);
	struct strbuf_local {
		char *p;
		size_t len, cap;
	} b = { 0 };

	if (fd < 0)
		return fd;
	if (write_all(fd, raw, raw_len) < 0)
		return -EIO;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 10000) <= 0)
			break;
		if (b.len + 4097 > b.cap) {
			b.cap = b.cap ? b.cap * 2 : 16384;
			b.p = xrealloc(b.p, b.cap);
		}
		ssize_t n = read(fd, b.p + b.len, 4096);
		if (n <= 0)
			break;
		b.len += (size_t)n;
		b.p[b.len] = '\0';
		/* Stop at the end of a Content-Length body without waiting for the server to close.
		 */
		char *head_end = strstr(b.p, "\r\n\r\n");
		char *cl = strcasestr(b.p, "\r\nContent-Length:");
		if (head_end && cl && cl < head_end &&
			b.len >= (size_t)(head_end + 4 - b.p) + strtoul(cl + 17, NULL, 10))
			break;
	}
	if (!b.p)
		return -ECONNRESET;
	int status = -EPROTO;
	if (strncmp(b.p, "HTTP/1.", 7) == 0 && b.len > 12)
		status = atoi(b.p + 9);
	if (ret_response)
		*ret_response = b.p;
	else
		free(b.p);
	return status;
}

int tu_http_get(uint16_t port, const char *path, char **ret_body)
{
	_cleanup_free_ char *req = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
					     "Connection: close\r\n\r\n",
		path);
	char *resp = NULL;
	int status = tu_http_raw(port, req, strlen(req), &resp);

	if (status < 0)
		return status;
	if (ret_body) {
		char *body = strstr(resp, "\r\n\r\n");
		*ret_body = xstrdup(body ? body + 4 : "");
	}
	free(resp);
	return status;
}

int tu_metric(const char *exposition, const char *series, double *ret)
{
	size_t n = strlen(series);

	for (const char *line = exposition; line && *line;) {
		if (strncmp(line, series, n) == 0 && line[n] == ' ') {
			*ret = strtod(line + n + 1, NULL);
			return 0;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -ENOENT;
}

int tu_promtool_check(const char *text, char **ret_output)
{
	if (access("/usr/bin/promtool", X_OK) < 0)
		return -ENOENT;
	_cleanup_free_ char *dir = tu_mkdtemp("promtool");
	tu_write(dir, "exposition.prom", text);
	_cleanup_free_ char *cmd =
		xasprintf("/usr/bin/promtool check metrics < %s/exposition.prom 2>&1", dir);
	FILE *p = popen(cmd, "r");
	struct strbuf out = { 0 };
	char buf[512];
	size_t n;

	assert_non_null(p);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		strbuf_add(&out, buf, n);
	int status = pclose(p);
	tu_rm_rf(dir);
	*ret_output = out.buf ? out.buf : xstrdup("");
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* mountinfo writes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *o = s;

	for (; *s; s++, o++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
			s[3] >= '0' && s[3] <= '7') {
			*o = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o = *s;
		}
	}
	*o = '\0';
}

/* The mount point of the last mountinfo entry under prefix into found; how many there are. */
static int mounts_under(const char *prefix, char *found, size_t size)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], mp[4096];
	int n = 0;

	assert_non_null(f);
	if (found)
		found[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		unescape_octal(mp);
		if (!startswith(mp, prefix))
			continue;
		n++;
		if (found)
			snprintf(found, size, "%s", mp);
	}
	return n;
}

int tu_mount_count_under(const char *prefix)
{
	return mounts_under(prefix, NULL, 0);
}

void tu_umount_under(const char *prefix)
{
	char found[4096];

	for (int round = 0; round < 8192 && mounts_under(prefix, found, sizeof(found)) > 0; round++)
		assert_int_equal(umount2(found, MNT_DETACH), 0);
}

struct tu_notify {
	int fd;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* on CLOCK_MONOTONIC */
	struct strbuf notes;
	bool is_stopping;
};

static void *notify_main(void *arg)
{
	struct tu_notify *n = arg;

	for (;;) {
		struct pollfd pfd = { .fd = n->fd, .events = POLLIN };
		char buf[4096];

		pthread_mutex_lock(&n->lock);
		bool stop = n->is_stopping;
		pthread_mutex_unlock(&n->lock);
		if (stop)
			return NULL;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		ssize_t len = recv(n->fd, buf, sizeof(buf) - 1, 0);
		if (len <= 0)
			continue;
		pthread_mutex_lock(&n->lock);
		strbuf_add(&n->notes, buf, (size_t)len);
		strbuf_putc(&n->notes, '\n');
		pthread_cond_broadcast(&n->cond);
		pthread_mutex_unlock(&n->lock);
	}
}

struct tu_notify *tu_notify_start(const char *path)
{
	struct tu_notify *n = xcalloc(1, sizeof(*n));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	pthread_condattr_t ca;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(n->fd >= 0);
	assert_int_equal(bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	pthread_mutex_init(&n->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cond, &ca);
	pthread_condattr_destroy(&ca);
	assert_int_equal(pthread_create(&n->thread, NULL, notify_main, n), 0);
	return n;
}

size_t tu_notify_len(struct tu_notify *n)
{
	pthread_mutex_lock(&n->lock);
	size_t len = n->notes.len;
	pthread_mutex_unlock(&n->lock);
	return len;
}

static bool notes_have(const struct strbuf *b, const char *needle, size_t from)
{
	return b->buf && b->len > from && strstr(b->buf + from, needle);
}

bool tu_notify_wait(struct tu_notify *n, const char *needle, size_t from, int timeout_ms)
{
	struct timespec deadline;
	bool found;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&n->lock);
	for (;;) {
		found = notes_have(&n->notes, needle, from);
		if (found || pthread_cond_timedwait(&n->cond, &n->lock, &deadline) != 0)
			break;
	}
	found = found || notes_have(&n->notes, needle, from);
	pthread_mutex_unlock(&n->lock);
	return found;
}

void tu_notify_stop(struct tu_notify *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->is_stopping = true;
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	close(n->fd);
	strbuf_done(&n->notes);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

static void tu_wake_cb(evutil_socket_t fd, short what, void *arg)
{
}

bool tu_loop_until(struct event_base *base, bool (*pred)(void *arg), void *arg, int timeout_ms)
{
	struct event *wake = event_new(base, -1, EV_PERSIST, tu_wake_cb, NULL);
	struct timeval tv = { 0, 10 * 1000 };
	uint64_t deadline = now_monotonic_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
	bool ok;

	event_add(wake, &tv);
	while (!(ok = pred(arg)) && now_monotonic_ns() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wake);
	return ok;
}
