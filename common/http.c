/* The metrics HTTP server on libevent's evhttp: listening (or systemd's sockets), limits, and the
 * three answers it has (/metrics, /, 404). Scrapes are served by reference from an immutable,
 * reference-counted copy of the exposition and of its gzip form, both made once per update.
 *
 * libevent 2.1 has no connection limit for evhttp. Each accepted connection gets its bufferevent
 * from our bevcb, which counts it; right after the accept callback we find evhttp's connection
 * object through the bufferevent's callback argument and set its close callback, which evhttp
 * calls exactly once when it frees the connection. (A pass-through filter bufferevent with a
 * free_context callback would be simpler, but 2.1.12's filter refuses BEV_CTRL_SET_FD, so evhttp
 * drops every such connection at once: tested.) At the limit the listeners are disabled, so that
 * further clients wait in the kernel's accept queue, and enabled again when a connection ends.
 *
 * evhttp's timeout counts from a connection's last byte, so a client that trickles a byte now and
 * then would hold one of the max_connections for ever: each connection also has a deadline,
 * idle_timeout_s after it was accepted or its last request arrived, when it is closed whatever
 * it is doing. */
#include "common/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <systemd/sd-daemon.h>
#include <zlib.h>

#include "common/config.h"
#include "common/log.h"
#include "common/prom.h"

#define HTTP_BACKLOG 1024
#define LISTENER_FLAGS (LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC)

/* One exposition as served; freed when the last response that references it is written. */
struct http_blob {
	unsigned refs;
	char *text;
	size_t len;
	unsigned char *gz; /* NULL if compressing failed: then plain only */
	size_t gz_len;
};

/* An accepted connection, from post_accept until evhttp frees it (its close callback). */
struct http_conn {
	struct http_server *server;
	struct evhttp_connection *evcon;
	struct event *deadline;
};

struct http_server {
	struct evhttp *http;
	struct evconnlistener **listeners; /* owned by http once bound */
	size_t n_listeners;
	bool is_paused;
	bool is_freeing;
	bool is_activated; /* listening on sockets from systemd, which keeps its own copies */
	struct http_limits limits;
	unsigned connections;
	/* Bufferevents handed to evhttp by conn_new_cb whose connection post_accept has not yet
	 * looked at; each holds a reference so that it cannot vanish meanwhile. */
	struct bufferevent **pending;
	size_t n_pending;
	struct event *post_accept;
	struct http_conn **conns;
	size_t n_conns;
	struct http_blob *metrics;
	char *index_html;
	uint16_t port;
};

static void blob_unref(struct http_blob *b)
{
	if (!b || --b->refs > 0)
		return;
	free(b->text);
	free(b->gz);
	free(b);
}

static void blob_unref_cb(const void *data, size_t len, void *arg)
{
	blob_unref(arg);
}

static int gzip_compress(const char *in, size_t len, unsigned char **ret, size_t *ret_len)
{
	z_stream zs = { 0 };
	unsigned char *out;
	uLong bound;
	int r;

	if (len > UINT32_MAX / 2)
		return -EFBIG;
	/* A window no larger than the input loses no match (deflate looks back at most the whole
	 * input), and a smaller hash (memLevel 6) barely changes a few KiB of text: deflate's
	 * state is 2^(w+2) + 2^(m+9) bytes, 256 KiB at the defaults (w 15, m 8), allocated at every
	 * render and most of the guest daemon's heap. + 16: a gzip wrapper rather than zlib's. */
	int window_bits = 9;
	while (window_bits < 15 && ((size_t)1 << window_bits) < len)
		window_bits++;
	r = deflateInit2(
		&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits + 16, 6, Z_DEFAULT_STRATEGY);
	if (r != Z_OK)
		return -ENOMEM;
	bound = deflateBound(&zs, (uLong)len);
	out = xmalloc(bound);
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)bound;
	r = deflate(&zs, Z_FINISH);
	*ret_len = zs.total_out;
	deflateEnd(&zs);
	if (r != Z_STREAM_END) {
		free(out);
		return -EIO;
	}
	*ret = out;
	return 0;
}

/* Accept-Encoding: "gzip", "gzip;q=0.5, br", "deflate, gzip;q=0" (q=0 means not acceptable). */
static bool accepts_gzip(const char *value)
{
	const char *p = value;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char item[128];

		if (n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			char *save = NULL;
			char *coding = strtok_r(item, "; \t", &save);
			bool is_zero = false;

			for (char *param; (param = strtok_r(NULL, "; \t", &save));) {
				if (strncasecmp(param, "q=", 2) != 0)
					continue;
				/* A qvalue is 0, 0.ddd, 1 or 1.000: zero if only zeros follow. */
				const char *q = param + 2;
				is_zero = q[0] == '0' && strspn(q + 1, ".0") == strlen(q + 1);
			}
			if (coding && (strcasecmp(coding, "gzip") == 0 ||
					      strcasecmp(coding, "x-gzip") == 0))
				return !is_zero;
		}
		p = end ? end + 1 : NULL;
	}
	return false;
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *type,
	const char *body, size_t len, struct http_blob *blob)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = NULL;

	evhttp_add_header(h, "Content-Type", type);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* The length of the body a GET would have had, and no body. */
		char cl[32];

		snprintf(cl, sizeof(cl), "%zu", len);
		evhttp_add_header(h, "Content-Length", cl);
	} else {
		buf = evbuffer_new();
		if (!buf) {
			evhttp_send_error(req, HTTP_INTERNAL, NULL);
			return;
		}
		if (blob) {
			blob->refs++;
			if (evbuffer_add_reference(buf, body, len, blob_unref_cb, blob) < 0) {
				blob_unref(blob);
				evbuffer_add(buf, body, len);
			}
		} else {
			evbuffer_add(buf, body, len);
		}
	}
	evhttp_send_reply(req, code, reason, buf);
	if (buf)
		evbuffer_free(buf);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	reply(req, code, reason, "text/plain; charset=utf-8", text, strlen(text), NULL);
}

static void serve_metrics(struct http_server *s, struct evhttp_request *req)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct http_blob *b = s->metrics;
	const char *ae;

	if (!b) {
		reply_text(req, 503, "Service Unavailable", "no sample yet\n");
		return;
	}
	evhttp_add_header(out, "Vary", "Accept-Encoding");
	ae = evhttp_find_header(in, "Accept-Encoding");
	if (b->gz && ae && accepts_gzip(ae)) {
		evhttp_add_header(out, "Content-Encoding", "gzip");
		reply(req, HTTP_OK, "OK", PROM_CONTENT_TYPE, (const char *)b->gz, b->gz_len, b);
	} else {
		reply(req, HTTP_OK, "OK", PROM_CONTENT_TYPE, b->text, b->len, b);
	}
}

static void conn_arm_deadline(struct http_conn *c)
{
	struct timeval tv = { .tv_sec = (time_t)c->server->limits.idle_timeout_s };

	event_add(c->deadline, &tv);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
	struct http_server *s = arg;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	for (size_t i = 0; i < s->n_conns; i++)
		if (s->conns[i]->evcon == evcon)
			conn_arm_deadline(s->conns[i]);
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_text(req, 405, "Method Not Allowed", "method not allowed\n");
	} else if (path && streq(path, "/metrics")) {
		serve_metrics(s, req);
	} else if (path && streq(path, "/")) {
		reply(req, HTTP_OK, "OK", "text/html; charset=utf-8", s->index_html,
			strlen(s->index_html), NULL);
	} else {
		reply_text(req, HTTP_NOTFOUND, "Not Found", "not found\n");
	}
}

static void listeners_set_enabled(struct http_server *s, bool enable)
{
	for (size_t i = 0; i < s->n_listeners; i++) {
		if (enable)
			evconnlistener_enable(s->listeners[i]);
		else
			evconnlistener_disable(s->listeners[i]);
	}
	s->is_paused = !enable;
}

static void conn_ended(struct http_server *s)
{
	s->connections--;
	if (!s->is_freeing && s->is_paused && s->connections < s->limits.max_connections)
		listeners_set_enabled(s, true);
}

/* evhttp calls this from evhttp_connection_free() for a connection that is still connected,
 * which an incoming one always is until then (evhttp_free() included). */
static void conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *c = arg;
	struct http_server *s = c->server;

	for (size_t i = 0; i < s->n_conns; i++) {
		if (s->conns[i] == c) {
			s->conns[i] = s->conns[--s->n_conns];
			break;
		}
	}
	event_free(c->deadline);
	free(c);
	conn_ended(s);
}

/* The connection outlived its deadline: evhttp_connection_free() calls conn_close_cb. */
static void conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	evhttp_connection_free(c->evcon);
}

/* Called by evhttp for each accepted connection, before the connection object exists. */
static struct bufferevent *conn_new_cb(struct event_base *base, void *arg)
{
	struct http_server *s = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	if (!bev)
		return NULL; /* evhttp makes its own, which goes uncounted */
	/* While evhttp writes an answer it has no read callback but keeps reading: a client that
	 * pipelines requests and never reads would have us buffer all it sends. At this mark any
	 * request is either whole in the buffer or already refused as too large. */
	bufferevent_setwatermark(
		bev, EV_READ, 0, s->limits.max_header_bytes + s->limits.max_body_bytes + 1);
	bufferevent_incref(bev);
	s->pending = xreallocarray(s->pending, s->n_pending + 1, sizeof(*s->pending));
	s->pending[s->n_pending++] = bev;
	event_active(s->post_accept, EV_TIMEOUT, 1);
	s->connections++;
	/* The listener checks whether it is still enabled after each accept. */
	if (!s->is_paused && s->connections >= s->limits.max_connections)
		listeners_set_enabled(s, false);
	return bev;
}

/* Runs right after the accept callback: evhttp has made the connection object by now and set it
 * as the bufferevent's callback argument, so that its close callback can be set. If evhttp
 * already dropped the connection (bufferevent_free() clears the callbacks), it ended here. */
static void post_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;

	for (size_t i = 0; i < s->n_pending; i++) {
		struct bufferevent *bev = s->pending[i];
		void *cbarg = NULL;

		bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
		if (cbarg && evhttp_connection_get_bufferevent(cbarg) == bev) {
			struct http_conn *c = xcalloc(1, sizeof(*c));

			c->server = s;
			c->evcon = cbarg;
			c->deadline = evtimer_new(bufferevent_get_base(bev), conn_deadline_cb, c);
			if (!c->deadline)
				abort();
			s->conns = xreallocarray(s->conns, s->n_conns + 1, sizeof(*s->conns));
			s->conns[s->n_conns++] = c;
			conn_arm_deadline(c);
			evhttp_connection_set_closecb(cbarg, conn_close_cb, c);
		} else {
			conn_ended(s);
		}
		bufferevent_decref(bev);
	}
	s->n_pending = 0;
}

static int bind_socket(const struct sockaddr *sa, socklen_t len, int *ret_fd)
{
	int type = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
	_cleanup_close_ int fd = socket(sa->sa_family, type, 0);
	int one = 1, zero = 0;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	/* The any address of IPv6 serves IPv4 too, whatever net.ipv6.bindv6only says. */
	if (sa->sa_family == AF_INET6 &&
		IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr) &&
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)
		return -errno;
	if (bind(fd, sa, len) < 0 || listen(fd, HTTP_BACKLOG) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int open_listen_socket(const char *listen, int *ret_fd, char *err, size_t err_size)
{
	char host[256];
	uint16_t port;
	int r;

	if (config_split_listen(listen, host, sizeof(host), &port) < 0) {
		snprintf(err, err_size, "listen \"%s\": not host:port, [v6]:port or :port", listen);
		return -EINVAL;
	}
	if (host[0] == '\0') {
		struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6,
			.sin6_port = htons(port),
			.sin6_addr = IN6ADDR_ANY_INIT };
		struct sockaddr_in sa4 = { .sin_family = AF_INET,
			.sin_port = htons(port),
			.sin_addr.s_addr = htonl(INADDR_ANY) };

		r = bind_socket((struct sockaddr *)&sa6, sizeof(sa6), ret_fd);
		if (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL)
			r = bind_socket((struct sockaddr *)&sa4, sizeof(sa4), ret_fd);
	} else {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
		struct addrinfo *ai = NULL;
		int g = getaddrinfo(host, NULL, &hints, &ai);

		if (g != 0) {
			snprintf(err, err_size, "listen %s: %s", listen, gai_strerror(g));
			return -EADDRNOTAVAIL;
		}
		if (ai->ai_family == AF_INET6)
			((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons(port);
		else
			((struct sockaddr_in *)ai->ai_addr)->sin_port = htons(port);
		r = bind_socket(ai->ai_addr, ai->ai_addrlen, ret_fd);
		freeaddrinfo(ai);
	}
	if (r < 0)
		snprintf(err, err_size, "listen %s: %s", listen, strerror(-r));
	return r;
}

static int add_listener(
	struct http_server *s, struct event_base *base, int fd, char *err, size_t err_size)
{
	/* Backlog 0: the socket is already listening (ours, or systemd's with its Backlog=). */
	struct evconnlistener *l = evconnlistener_new(base, NULL, NULL, LISTENER_FLAGS, 0, fd);

	if (!l) {
		close(fd);
		snprintf(err, err_size, "cannot create a listener on fd %d", fd);
		return -ENOMEM;
	}
	if (!evhttp_bind_listener(s->http, l)) {
		evconnlistener_free(l);
		snprintf(err, err_size, "cannot bind the HTTP server to fd %d", fd);
		return -ENOMEM;
	}
	s->listeners = xreallocarray(s->listeners, s->n_listeners + 1, sizeof(*s->listeners));
	s->listeners[s->n_listeners++] = l;
	if (s->port == 0) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
			if (ss.ss_family == AF_INET)
				s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			else if (ss.ss_family == AF_INET6)
				s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	return 0;
}

static int add_activated_listeners(
	struct http_server *s, struct event_base *base, int n, char *err, size_t err_size)
{
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;

		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			snprintf(err, err_size,
				"socket activation: fd %d is not a listening stream socket", fd);
			/* Close the rest: nobody else will use them. */
			for (int j = i; j < n; j++)
				close(SD_LISTEN_FDS_START + j);
			return -EINVAL;
		}
		int flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
			int r = -errno;
			snprintf(err, err_size, "socket activation: fd %d: %s", fd, strerror(-r));
			for (int j = i; j < n; j++)
				close(SD_LISTEN_FDS_START + j);
			return r;
		}
		int r = add_listener(s, base, fd, err, err_size);
		if (r < 0) {
			for (int j = i + 1; j < n; j++)
				close(SD_LISTEN_FDS_START + j);
			return r;
		}
	}
	return 0;
}

static char *html_escape(const char *s)
{
	size_t cap = strlen(s) * 6 + 1;
	char *out = xmalloc(cap), *o = out;

	for (; *s; s++) {
		switch (*s) {
		case '&':
			o = stpcpy(o, "&amp;");
			break;
		case '<':
			o = stpcpy(o, "&lt;");
			break;
		case '>':
			o = stpcpy(o, "&gt;");
			break;
		case '"':
			o = stpcpy(o, "&quot;");
			break;
		case '\'':
			o = stpcpy(o, "&#39;");
			break;
		default:
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

int http_listen_open(const char *listen, int *ret_fd, char *err, size_t err_size)
{
	*ret_fd = -1;
	if (!listen || !*listen) {
		snprintf(err, err_size, "no listen address");
		return -EINVAL;
	}
	return open_listen_socket(listen, ret_fd, err, err_size);
}

/* The server without listeners: limits, the index page, evhttp and its callbacks. */
static int server_create(struct event_base *base, const struct http_limits *limits,
	const char *title, struct http_server **ret, char *err, size_t err_size)
{
	static const struct http_limits defaults = HTTP_LIMITS_DEFAULT;
	struct http_server *s = xcalloc(1, sizeof(*s));

	s->limits = limits ? *limits : defaults;
	if (!s->limits.max_header_bytes)
		s->limits.max_header_bytes = defaults.max_header_bytes;
	if (!s->limits.max_body_bytes)
		s->limits.max_body_bytes = defaults.max_body_bytes;
	if (!s->limits.max_connections)
		s->limits.max_connections = defaults.max_connections;
	if (!s->limits.idle_timeout_s)
		s->limits.idle_timeout_s = defaults.idle_timeout_s;

	_cleanup_free_ char *t = html_escape(title ? title : "powerd");
	s->index_html = xasprintf("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
				  "<title>%s</title></head>\n<body><h1>%s</h1>\n"
				  "<p><a href=\"/metrics\">Metrics</a></p></body></html>\n",
		t, t);
	s->post_accept = event_new(base, -1, 0, post_accept_cb, s);
	s->http = evhttp_new(base);
	if (!s->post_accept || !s->http) {
		snprintf(err, err_size, "cannot create the HTTP server");
		http_server_free(s);
		return -ENOMEM;
	}
	evhttp_set_max_headers_size(s->http, (ev_ssize_t)s->limits.max_header_bytes);
	evhttp_set_max_body_size(s->http, (ev_ssize_t)s->limits.max_body_bytes);
	evhttp_set_timeout(s->http, (int)MIN(s->limits.idle_timeout_s, (unsigned)INT32_MAX));
	/* Every method reaches request_cb, which answers 405 with Allow; evhttp's own refusal of
	 * a method it was told to disallow is a 501 without one. */
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	/* No EVHTTP_SERVER_LINGERING_CLOSE: with it, a request announcing an oversized body gets
	 * its 413 only after the whole body arrived, which a scrape endpoint has no use for. */
	evhttp_set_gencb(s->http, request_cb, s);
	evhttp_set_bevcb(s->http, conn_new_cb, s);
	*ret = s;
	return 0;
}

int http_server_new_fds(struct event_base *base, const int *fds, size_t n_fds,
	const struct http_limits *limits, const char *title, struct http_server **ret, char *err,
	size_t err_size)
{
	struct http_server *s;
	size_t i = 0;
	int r;

	r = server_create(base, limits, title, &s, err, err_size);
	for (; r >= 0 && i < n_fds; i++)
		r = add_listener(s, base, fds[i], err, err_size);
	if (r < 0) {
		/* add_listener closed the one that failed; the rest were never taken over. */
		for (; i < n_fds; i++)
			close(fds[i]);
		http_server_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

int http_server_new(struct event_base *base, const char *listen, const struct http_limits *limits,
	const char *title, struct http_server **ret, char *err, size_t err_size)
{
	struct http_server *s;
	int n, r;

	r = server_create(base, limits, title, &s, err, err_size);
	if (r < 0)
		return r;
	n = sd_listen_fds(1);
	if (n < 0) {
		snprintf(err, err_size, "socket activation: %s", strerror(-n));
		r = n;
		goto fail;
	}
	if (n > 0) {
		s->is_activated = true;
		r = add_activated_listeners(s, base, n, err, err_size);
	} else if (!listen || !*listen) {
		snprintf(err, err_size, "no listen address and no socket from systemd");
		r = -EINVAL;
	} else {
		int fd = -1;

		r = open_listen_socket(listen, &fd, err, err_size);
		if (r >= 0)
			r = add_listener(s, base, fd, err, err_size);
	}
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	http_server_free(s);
	return r;
}

void http_server_set_metrics(struct http_server *s, const char *text, size_t len)
{
	struct http_blob *b = xcalloc(1, sizeof(*b));
	int r;

	b->refs = 1;
	b->text = xmalloc(len + 1);
	memcpy(b->text, text, len);
	b->text[len] = '\0';
	b->len = len;
	r = gzip_compress(text, len, &b->gz, &b->gz_len);
	if (r < 0) {
		log_warn("http: cannot gzip %zu bytes of metrics: %s", len, strerror(-r));
		b->gz = NULL;
	}
	blob_unref(s->metrics);
	s->metrics = b;
}

uint16_t http_server_port(const struct http_server *s)
{
	return s ? s->port : 0;
}

bool http_server_is_activated(const struct http_server *s)
{
	return s && s->is_activated;
}

unsigned http_server_connections(const struct http_server *s)
{
	return s ? s->connections : 0;
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	/* Connections freed from here on must not touch the listeners evhttp_free() frees. */
	s->is_freeing = true;
	if (s->http)
		evhttp_free(s->http);
	for (size_t i = 0; i < s->n_pending; i++)
		bufferevent_decref(s->pending[i]);
	free(s->pending);
	free(s->conns);
	if (s->post_accept)
		event_free(s->post_accept);
	blob_unref(s->metrics);
	free(s->listeners);
	free(s->index_html);
	free(s);
}
