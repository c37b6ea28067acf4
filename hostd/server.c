/* powerd-host's HTTP server process (server.h). It trusts the privileged part, which forked it,
 * and nothing else: requests are handled by common/http.c, the status socket only ever writes. */
#include "hostd/server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/http.h"
#include "common/log.h"
#include "common/util.h"
#include "hostd/privsep_msg.h"

#define SERVER_MAX_FILES(limits) ((limits).max_connections + SERVER_STATUS_CONNS_MAX + 64)

struct server {
	struct event_base *base;
	struct http_server *http;
	struct evconnlistener *status_listener;
	unsigned status_conns;
	int sock;
	struct event *sock_ev;
	struct event *heartbeat_ev;
	/* The message being read. */
	uint8_t hdr[PRIVSEP_HEADER_SIZE];
	size_t hdr_got;
	enum privsep_msg_type type;
	char *payload;
	uint32_t len, got;
	/* The latest status document. */
	char *status;
	size_t status_len;
};

static void reset_signals(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2 };
	sigset_t all;

	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		signal(sigs[i], SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

/* fds[] to 3, 4, ... in order; 0 and 1 to /dev/null; everything else above 2 closed. */
static int arrange_fds(int *fds, size_t n)
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int base = 3 + (int)n;

	if (devnull < 0)
		return -errno;
	/* First out of the way of every target, then into place. */
	for (size_t i = 0; i < n; i++) {
		fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, base);
		if (fds[i] < 0)
			return -errno;
	}
	if (dup2(devnull, STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0)
		return -errno;
	for (size_t i = 0; i < n; i++) {
		int target = 3 + (int)i;

		if (dup3(fds[i], target, O_CLOEXEC) < 0)
			return -errno;
		fds[i] = target;
	}
	if (close_range((unsigned)base, ~0U, 0) < 0)
		return -errno;
	return 0;
}

static void message_done(struct server *s)
{
	if (s->type == PRIVSEP_MSG_METRICS) {
		if (s->http)
			http_server_set_metrics(s->http, s->payload ? s->payload : "", s->len);
		free(s->payload);
	} else {
		free(s->status);
		s->status = s->payload;
		s->status_len = s->len;
	}
	s->payload = NULL;
	s->hdr_got = 0;
	s->len = s->got = 0;
}

/* One read; -1 when the process must end (the parent closed its end, or sent garbage). */
static int read_some(struct server *s)
{
	ssize_t n;
	int r;

	if (s->hdr_got < sizeof(s->hdr)) {
		n = read(s->sock, s->hdr + s->hdr_got, sizeof(s->hdr) - s->hdr_got);
		if (n <= 0)
			return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		s->hdr_got += (size_t)n;
		if (s->hdr_got < sizeof(s->hdr))
			return 0;
		r = privsep_msg_parse(s->hdr, &s->type, &s->len);
		if (r < 0) {
			log_err("http server: bad message from the privileged part: %s",
				strerror(-r));
			return -1;
		}
		s->payload = xmalloc((size_t)s->len + 1);
		s->payload[s->len] = '\0';
		s->got = 0;
	} else {
		n = read(s->sock, s->payload + s->got, s->len - s->got);
		if (n <= 0)
			return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		s->got += (uint32_t)n;
	}
	if (s->hdr_got == sizeof(s->hdr) && s->got == s->len)
		message_done(s);
	return 1;
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	/* A bounded number of reads per wakeup, so that clients get their turn. */
	for (int i = 0; i < 64; i++) {
		int r = read_some(s);

		if (r < 0) {
			event_base_loopbreak(s->base);
			return;
		}
		if (r == 0)
			return;
	}
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	/* Non-blocking: a full buffer means the parent is busy, and it only counts arrivals. */
	if (write(s->sock, "h", 1) < 0 && errno != EAGAIN)
		event_base_loopbreak(s->base);
}

static void status_conn_end(struct bufferevent *bev, struct server *s)
{
	bufferevent_free(bev);
	s->status_conns--;
}

static void status_write_cb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		status_conn_end(bev, arg);
}

static void status_event_cb(struct bufferevent *bev, short what, void *arg)
{
	status_conn_end(bev, arg);
}

/* A status client gets the latest document and the end of the stream; nothing it sends is
 * read. */
static void status_accept_cb(
	struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct server *s = arg;
	struct timeval tv = { SERVER_STATUS_TIMEOUT_S, 0 };
	struct bufferevent *bev;

	if (s->status_conns >= SERVER_STATUS_CONNS_MAX) {
		close(fd);
		return;
	}
	bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);
		return;
	}
	s->status_conns++;
	bufferevent_setcb(bev, NULL, status_write_cb, status_event_cb, s);
	bufferevent_set_timeouts(bev, NULL, &tv);
	if (s->status_len == 0 || bufferevent_write(bev, s->status, s->status_len) < 0) {
		status_conn_end(bev, s);
		return;
	}
	bufferevent_disable(bev, EV_READ);
	bufferevent_enable(bev, EV_WRITE);
}

static int server_setup(struct server *s, const struct server_params *p, int *fds)
{
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	struct timeval hb = { SERVER_HEARTBEAT_MS / 1000, (SERVER_HEARTBEAT_MS % 1000) * 1000 };
	size_t n = 1 + p->n_http + (p->status_fd >= 0);
	char err[256] = "";
	int r;

	r = arrange_fds(fds, n);
	if (r < 0) {
		log_err("http server: cannot arrange its file descriptors: %s", strerror(-r));
		return r;
	}
	s->sock = fds[0];
	s->base = event_base_new();
	if (!s->base)
		return -ENOMEM;
	if (p->n_http > 0) {
		r = http_server_new_fds(s->base, fds + 1, p->n_http, &limits, "powerd-host",
			&s->http, err, sizeof(err));
		if (r < 0) {
			log_err("http server: %s", err[0] ? err : strerror(-r));
			return r;
		}
	}
	if (p->status_fd >= 0) {
		s->status_listener = evconnlistener_new(s->base, status_accept_cb, s,
			LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fds[n - 1]);
		if (!s->status_listener)
			return -ENOMEM;
	}
	s->sock_ev = event_new(s->base, s->sock, EV_READ | EV_PERSIST, sock_cb, s);
	s->heartbeat_ev = event_new(s->base, -1, EV_PERSIST, heartbeat_cb, s);
	if (!s->sock_ev || !s->heartbeat_ev || event_add(s->sock_ev, NULL) < 0 ||
		event_add(s->heartbeat_ev, &hb) < 0)
		return -ENOMEM;
	return sandbox_enter(&p->user, SERVER_MAX_FILES(limits), p->parent);
}

_Noreturn void server_run(const struct server_params *p)
{
	struct server s = { .sock = -1 };
	int fds[2 + 16];
	size_t n = 0;

	reset_signals();
	if (p->n_http > ARRAY_SIZE(fds) - 2)
		_exit(1);
	fds[n++] = p->sock;
	for (size_t i = 0; i < p->n_http; i++)
		fds[n++] = p->http_fds[i];
	if (p->status_fd >= 0)
		fds[n++] = p->status_fd;
	if (server_setup(&s, p, fds) < 0)
		_exit(1);
	/* An immediate first heartbeat: the parent sees at once that the loop runs. */
	heartbeat_cb(-1, 0, &s);
	event_base_dispatch(s.base);
	/* _exit: no atexit handlers or leak checks of the parent's memory in this copy of it. */
	_exit(0);
}
