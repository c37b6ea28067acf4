/* The privileged side of powerd-host's privilege separation (privsep.h): the sockets, the server
 * process's life (fork, SIGCHLD, heartbeat watchdog, restart with backoff) and the hand-over of
 * each tick's messages, written without ever blocking on the server. */
#include "hostd/privsep.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "common/http.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "hostd/server.h"

struct privsep {
	struct event_base *base;
	int http_fds[PRIVSEP_LISTEN_MAX];
	size_t n_http;
	bool is_activated;
	int status_fd;
	char *status_path; /* NULL when there is no status socket */
	ino_t status_ino;  /* of the socket bound there */
	bool is_started_logged;
	struct sandbox_user user;
	/* The server process. */
	pid_t pid;
	int sock;
	uint64_t started_ns;
	uint64_t heartbeat_ns;
	unsigned backoff_ms;
	unsigned restarts;
	struct event *read_ev;
	struct event *write_ev;
	struct event *sigchld_ev;
	struct event *restart_ev;
	struct event *watchdog_ev;
	/* The latest framed message of each type (kept for a restarted server), which of them the
	 * server has not been sent yet, and the one being written. */
	struct strbuf latest[PRIVSEP_MSG_TYPES + 1];
	bool is_pending[PRIVSEP_MSG_TYPES + 1];
	struct strbuf out;
	size_t out_off;
	bool is_too_big_logged;
};

static void close_listeners(struct privsep *p)
{
	for (size_t i = 0; i < p->n_http; i++)
		close(p->http_fds[i]);
	p->n_http = 0;
}

static int take_activated(struct privsep *p, int n)
{
	if (n > PRIVSEP_LISTEN_MAX) {
		log_err("socket activation: %d sockets, at most %d", n, PRIVSEP_LISTEN_MAX);
		return -EINVAL;
	}
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		int flags;

		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			log_err("socket activation: fd %d is not a listening stream socket", fd);
			return -EINVAL;
		}
		flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
			fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
			log_err("socket activation: fd %d: %s", fd, strerror(errno));
			return -errno;
		}
		p->http_fds[p->n_http++] = fd;
	}
	p->is_activated = true;
	return 0;
}

static int open_listen(const char *listen, int *ret_fd)
{
	char err[256] = "";
	int r = http_listen_open(listen, ret_fd, err, sizeof(err));

	if (r < 0)
		log_err("metrics_listen %s: %s", listen, err[0] ? err : strerror(-r));
	return r;
}

static int open_metrics(struct privsep *p, const char *listen)
{
	int n = sd_listen_fds(1);
	int fd;

	if (n < 0) {
		log_err("socket activation: %s", strerror(-n));
		return n;
	}
	if (n > 0)
		return take_activated(p, n);
	if (!listen || !*listen)
		return 0;
	int r = open_listen(listen, &fd);
	if (r < 0)
		return r;
	p->http_fds[p->n_http++] = fd;
	return 0;
}

/* Whether a process answers on the unix socket at sa. */
static bool is_answering(const struct sockaddr_un *sa)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	return fd >= 0 && connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
}

/* The status socket: any local user may connect (it shows what /metrics shows). A socket left
 * by an earlier run is replaced, one another daemon answers on is left to it; anything else at
 * the path is an error. */
static int open_status(struct privsep *p, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("status socket %s: path too long", path);
		return -ENAMETOOLONG;
	}
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			log_err("status socket: cannot make %s: %s", dir, strerror(errno));
			return -errno;
		}
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_err("status socket %s: exists and is not a socket", path);
			return -EEXIST;
		}
		if (is_answering(&sa)) {
			log_err("status socket %s: another powerd-host answers there; running "
				"without",
				path);
			return -EADDRINUSE;
		}
		unlink(path);
	}
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 ||
		listen(fd, SERVER_STATUS_CONNS_MAX) < 0 || lstat(path, &st) < 0) {
		int r = -errno;
		log_err("status socket %s: %s", path, strerror(-r));
		return r;
	}
	p->status_fd = TAKE_FD(fd);
	p->status_path = xstrdup(path);
	p->status_ino = st.st_ino;
	return 0;
}

/* Remove the status socket if it is still the one bound here (another daemon may have taken the
 * path since). */
static void remove_status(struct privsep *p)
{
	struct stat st;

	if (p->status_path && lstat(p->status_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		st.st_ino == p->status_ino)
		unlink(p->status_path);
}

static bool has_work(const struct privsep *p)
{
	return p->n_http > 0 || p->status_fd >= 0;
}

static void flush(struct privsep *p);

static void queue_all(struct privsep *p)
{
	for (size_t t = 1; t <= PRIVSEP_MSG_TYPES; t++)
		p->is_pending[t] = p->latest[t].len > 0;
}

static int spawn(struct privsep *p)
{
	struct server_params sp = {
		.http_fds = p->http_fds,
		.n_http = p->n_http,
		.status_fd = p->status_fd,
		.parent = getpid(),
		.user = p->user,
	};
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	sp.sock = sv[1];
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0)
		server_run(&sp);
	close(sv[1]);
	p->pid = pid;
	p->sock = sv[0];
	p->started_ns = p->heartbeat_ns = now_monotonic_ns();
	return 0;
}

static void read_cb(evutil_socket_t fd, short what, void *arg);
static void write_cb(evutil_socket_t fd, short what, void *arg);

static int start_server(struct privsep *p)
{
	int r = spawn(p);

	if (r < 0) {
		log_err("cannot start the http server process: %s", strerror(-r));
		return r;
	}
	p->read_ev = event_new(p->base, p->sock, EV_READ, read_cb, p);
	p->write_ev = event_new(p->base, p->sock, EV_WRITE, write_cb, p);
	if (!p->read_ev || !p->write_ev)
		abort();
	event_add(p->read_ev, NULL);
	if (!p->is_started_logged)
		log_info("http server process %d: user %s (%u:%u), no capabilities, seccomp",
			(int)p->pid, p->user.name, (unsigned)p->user.uid, (unsigned)p->user.gid);
	else
		log_debug("http server process %d started as %s", (int)p->pid, p->user.name);
	p->is_started_logged = true;
	queue_all(p);
	flush(p);
	return 0;
}

/* The server is gone (reaped): forget its end of the conversation. */
static void server_gone(struct privsep *p)
{
	if (p->read_ev)
		event_free(p->read_ev);
	if (p->write_ev)
		event_free(p->write_ev);
	p->read_ev = p->write_ev = NULL;
	if (p->sock >= 0)
		close(p->sock);
	p->sock = -1;
	p->pid = 0;
	strbuf_reset(&p->out);
	p->out_off = 0;
}

static void schedule_restart(struct privsep *p)
{
	uint64_t lived_ms = (now_monotonic_ns() - p->started_ns) / NSEC_PER_MSEC;
	struct timeval tv;

	if (lived_ms >= PRIVSEP_STABLE_MS || p->backoff_ms == 0)
		p->backoff_ms = PRIVSEP_BACKOFF_MIN_MS;
	else
		p->backoff_ms = MIN(p->backoff_ms * 2, PRIVSEP_BACKOFF_MAX_MS);
	tv.tv_sec = p->backoff_ms / 1000;
	tv.tv_usec = (p->backoff_ms % 1000) * 1000;
	event_add(p->restart_ev, &tv);
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct privsep *p = arg;

	p->restarts++;
	if (start_server(p) < 0)
		schedule_restart(p);
}

static void log_exit(pid_t pid, int status, unsigned next_ms)
{
	if (WIFSIGNALED(status))
		log_warn("http server process %d killed by signal %d (%s); restarting in %u ms",
			(int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)), next_ms);
	else
		log_warn("http server process %d exited with status %d; restarting in %u ms",
			(int)pid, WEXITSTATUS(status), next_ms);
}

static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct privsep *p = arg;
	int status;

	/* Only ours: other children (if a library ever makes some) are not ours to reap. */
	if (p->pid <= 0 || waitpid(p->pid, &status, WNOHANG) != p->pid)
		return;
	pid_t pid = p->pid;
	server_gone(p);
	schedule_restart(p);
	log_exit(pid, status, p->backoff_ms);
}

/* Heartbeats: at most one read a second (the watchdog re-arms it), whatever the server sends,
 * so that a server that floods its socket costs this loop nothing. The bytes are not looked at. */
static void drain_heartbeat(struct privsep *p)
{
	char buf[64];

	/* 0 (closed) or an error: the server is going, SIGCHLD follows. */
	if (p->sock >= 0 && read(p->sock, buf, sizeof(buf)) > 0)
		p->heartbeat_ns = now_monotonic_ns();
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	drain_heartbeat(arg);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct privsep *p = arg;

	if (p->pid <= 0)
		return;
	/* What arrived while this loop itself was held up counts: a stall here is not the
	 * server's. */
	drain_heartbeat(p);
	if (now_monotonic_ns() - p->heartbeat_ns > PRIVSEP_HANG_MS * NSEC_PER_MSEC) {
		log_warn("http server process %d sent no heartbeat for %d ms: killing it",
			(int)p->pid, PRIVSEP_HANG_MS);
		kill(p->pid, SIGKILL);
		p->heartbeat_ns = now_monotonic_ns(); /* once: SIGCHLD does the rest */
		return;
	}
	if (p->read_ev && !event_pending(p->read_ev, EV_READ, NULL))
		event_add(p->read_ev, NULL);
}

static bool next_message(struct privsep *p)
{
	for (size_t t = 1; t <= PRIVSEP_MSG_TYPES; t++) {
		if (!p->is_pending[t])
			continue;
		p->is_pending[t] = false;
		strbuf_reset(&p->out);
		strbuf_add(&p->out, p->latest[t].buf, p->latest[t].len);
		p->out_off = 0;
		return true;
	}
	return false;
}

static void flush(struct privsep *p)
{
	if (p->pid <= 0 || p->sock < 0)
		return;
	for (;;) {
		if (p->out_off == p->out.len && !next_message(p))
			return;
		ssize_t n = write(p->sock, p->out.buf + p->out_off, p->out.len - p->out_off);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				event_add(p->write_ev, NULL);
				return;
			}
			/* EPIPE and the like: the server is going, SIGCHLD restarts it. */
			strbuf_reset(&p->out);
			p->out_off = 0;
			return;
		}
		p->out_off += (size_t)n;
	}
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	flush(arg);
}

void privsep_send(struct privsep *p, enum privsep_msg_type type, const char *payload, size_t len)
{
	uint8_t hdr[PRIVSEP_HEADER_SIZE];

	if (!p || type < 1 || type > PRIVSEP_MSG_TYPES)
		return;
	if (len > PRIVSEP_MSG_MAX) {
		if (!p->is_too_big_logged)
			log_err("http server: a message of %zu bytes is over the limit of %u; the "
				"server keeps the previous one",
				len, (unsigned)PRIVSEP_MSG_MAX);
		p->is_too_big_logged = true;
		return;
	}
	p->is_too_big_logged = false;
	privsep_msg_header(hdr, type, (uint32_t)len);
	strbuf_reset(&p->latest[type]);
	strbuf_add(&p->latest[type], (const char *)hdr, sizeof(hdr));
	strbuf_add(&p->latest[type], payload, len);
	p->is_pending[type] = true;
	flush(p);
}

static void stop_server(struct privsep *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	server_gone(p);
	if (p->restart_ev)
		event_del(p->restart_ev);
}

int privsep_set_listen(struct privsep *p, const char *listen)
{
	int fd = -1, r;

	if (p->is_activated) {
		log_info("metrics_listen is not used: serving on the sockets systemd passed");
		return 0;
	}
	if (listen && *listen) {
		r = open_listen(listen, &fd);
		if (r < 0)
			return r;
	}
	close_listeners(p);
	if (fd >= 0)
		p->http_fds[p->n_http++] = fd;
	stop_server(p);
	p->backoff_ms = 0;
	if (has_work(p) && start_server(p) < 0)
		schedule_restart(p);
	return 0;
}

int privsep_new(
	struct event_base *base, const char *listen, const char *status_path, struct privsep **ret)
{
	struct privsep *p = xcalloc(1, sizeof(*p));
	struct timeval one_s = { 1, 0 };
	int r;

	p->base = base;
	p->status_fd = p->sock = -1;
	sandbox_lookup_user(&p->user);
	p->sigchld_ev = evsignal_new(base, SIGCHLD, sigchld_cb, p);
	p->restart_ev = evtimer_new(base, restart_cb, p);
	p->watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, p);
	if (!p->sigchld_ev || !p->restart_ev || !p->watchdog_ev ||
		evsignal_add(p->sigchld_ev, NULL) < 0 || event_add(p->watchdog_ev, &one_s) < 0) {
		privsep_free(p);
		return -ENOMEM;
	}
	r = open_metrics(p, listen);
	/* Without its status socket the daemon still does its job: logged, not fatal. */
	if (r >= 0 && status_path && *status_path)
		open_status(p, status_path);
	if (r >= 0 && has_work(p))
		r = start_server(p);
	if (r < 0) {
		privsep_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

void privsep_free(struct privsep *p)
{
	if (!p)
		return;
	stop_server(p);
	if (p->sigchld_ev)
		event_free(p->sigchld_ev);
	if (p->restart_ev)
		event_free(p->restart_ev);
	if (p->watchdog_ev)
		event_free(p->watchdog_ev);
	close_listeners(p);
	if (p->status_fd >= 0)
		close(p->status_fd);
	remove_status(p);
	free(p->status_path);
	for (size_t t = 0; t <= PRIVSEP_MSG_TYPES; t++)
		strbuf_done(&p->latest[t]);
	strbuf_done(&p->out);
	free(p);
}

pid_t privsep_server_pid(const struct privsep *p)
{
	return p ? p->pid : 0;
}

unsigned privsep_restarts(const struct privsep *p)
{
	return p ? p->restarts : 0;
}

bool privsep_is_activated(const struct privsep *p)
{
	return p && p->is_activated;
}
