/* http: the metrics server on real loopback sockets. The server's loop runs in a thread; the test
 * talks to it as a client (raw sockets, curl) and drives it through a control socketpair, so
 * that every call on the server happens on the loop's thread. */
#include "tests/testutil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <event2/event.h>

#include "common/http.h"
#include "common/prom.h"

struct srv {
	struct event_base *base;
	struct http_server *http;
	struct event *ctl_ev;
	pthread_t thread;
	int ctl[2]; /* [0] the test's end, [1] the loop's */
	uint16_t port;
	/* Arguments and result of the command in flight. */
	const char *text;
	size_t len;
	unsigned connections;
};

static void ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	char cmd;

	if (read(fd, &cmd, 1) != 1)
		return;
	switch (cmd) {
	case 'M':
		http_server_set_metrics(s->http, s->text, s->len);
		break;
	case 'C':
		s->connections = http_server_connections(s->http);
		break;
	case 'Q':
		event_base_loopbreak(s->base);
		break;
	}
	assert_int_equal(write(fd, "k", 1), 1);
}

static void *loop_thread(void *arg)
{
	struct srv *s = arg;

	event_base_dispatch(s->base);
	return NULL;
}

/* Send a command to the loop and wait for it to be done. */
static void srv_call(struct srv *s, char cmd)
{
	struct pollfd pfd = { .fd = s->ctl[0], .events = POLLIN };
	char ack;

	assert_int_equal(write(s->ctl[0], &cmd, 1), 1);
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(read(s->ctl[0], &ack, 1), 1);
}

static void srv_set_metrics(struct srv *s, const char *text)
{
	s->text = text;
	s->len = strlen(text);
	srv_call(s, 'M');
}

static unsigned srv_connections(struct srv *s)
{
	srv_call(s, 'C');
	return s->connections;
}

/* The server learns of a client's close on its next loop turn, and frees the connection in a
 * finalizer after that: there is no event for the test to wait on, so ask until it is 0. */
static void srv_wait_connections(struct srv *s, unsigned want)
{
	for (int i = 0; i < 1000; i++) {
		if (srv_connections(s) == want)
			return;
		poll(NULL, 0, 5);
	}
	fail_msg("server still has %u connections, want %u", s->connections, want);
}

static struct srv *srv_start(const struct http_limits *limits, const char *title)
{
	struct srv *s = xcalloc(1, sizeof(*s));
	char err[256] = "";

	s->base = event_base_new();
	assert_non_null(s->base);
	int r = http_server_new(s->base, "127.0.0.1:0", limits, title, &s->http, err, sizeof(err));
	if (r < 0)
		fail_msg("http_server_new: %s (%s)", strerror(-r), err);
	s->port = http_server_port(s->http);
	assert_true(s->port > 0);
	assert_int_equal(http_server_connections(s->http), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->ctl), 0);
	s->ctl_ev = event_new(s->base, s->ctl[1], EV_READ | EV_PERSIST, ctl_cb, s);
	assert_int_equal(event_add(s->ctl_ev, NULL), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, loop_thread, s), 0);
	return s;
}

static void srv_stop(struct srv *s)
{
	srv_call(s, 'Q');
	assert_int_equal(pthread_join(s->thread, NULL), 0);
	http_server_free(s->http);
	event_free(s->ctl_ev);
	event_base_free(s->base);
	close(s->ctl[0]);
	close(s->ctl[1]);
	free(s);
}

static char *body_of(char *response)
{
	char *p = strstr(response, "\r\n\r\n");

	assert_non_null(p);
	return p + 4;
}

/* The value of header name in a raw response head, or NULL. */
static char *header_of(const char *response, const char *name)
{
	_cleanup_free_ char *needle = xasprintf("\r\n%s:", name);
	const char *end = strstr(response, "\r\n\r\n");
	const char *p = strcasestr(response, needle);

	if (!p || !end || p > end)
		return NULL;
	p += strlen(needle);
	p += strspn(p, " ");
	return xstrndup(p, strcspn(p, "\r"));
}

static void assert_header(const char *response, const char *name, const char *want)
{
	_cleanup_free_ char *v = header_of(response, name);

	if (!v)
		fail_msg("no %s header in:\n%s", name, response);
	assert_string_equal(v, want);
}

static int request(
	uint16_t port, const char *method, const char *path, const char *extra, char **ret)
{
	_cleanup_free_ char *req = xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
					     "Connection: close\r\n\r\n",
		method, path, extra ? extra : "");

	return tu_http_raw(port, req, strlen(req), ret);
}

static void assert_serves(struct srv *s, const char *want_body)
{
	_cleanup_free_ char *body = NULL;

	assert_int_equal(tu_http_get(s->port, "/metrics", &body), 200);
	assert_string_equal(body, want_body);
}

static int connect_nb(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		fail_msg("connect: %s", strerror(errno));
	return fd;
}

static uint64_t now_ms(void)
{
	return now_monotonic_ns() / NSEC_PER_MSEC;
}

static void test_responses(void **state)
{
	struct srv *s = srv_start(NULL, "powerd <test> & co");
	_cleanup_free_ char *r503 = NULL, *r1 = NULL, *r2 = NULL, *head = NULL, *index = NULL;
	_cleanup_free_ char *nope = NULL, *post = NULL, *put = NULL, *head_index = NULL;
	const char *m1 = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
	const char *m2 = "# HELP b B.\n# TYPE b gauge\nb{x=\"y\"} 2.5\n";

	assert_int_equal(request(s->port, "GET", "/metrics", NULL, &r503), 503);
	assert_string_equal(body_of(r503), "no sample yet\n");

	srv_set_metrics(s, m1);
	assert_int_equal(request(s->port, "GET", "/metrics", NULL, &r1), 200);
	assert_string_equal(body_of(r1), m1);
	assert_header(r1, "Content-Type", PROM_CONTENT_TYPE);
	assert_header(r1, "Vary", "Accept-Encoding");
	_cleanup_free_ char *cl = xasprintf("%zu", strlen(m1));
	assert_header(r1, "Content-Length", cl);
	assert_null(header_of(r1, "Content-Encoding"));

	srv_set_metrics(s, m2);
	assert_int_equal(request(s->port, "GET", "/metrics?x=1", NULL, &r2), 200);
	assert_string_equal(body_of(r2), m2);

	assert_int_equal(request(s->port, "HEAD", "/metrics", NULL, &head), 200);
	assert_string_equal(body_of(head), "");
	assert_header(head, "Content-Type", PROM_CONTENT_TYPE);
	_cleanup_free_ char *cl2 = xasprintf("%zu", strlen(m2));
	assert_header(head, "Content-Length", cl2);

	assert_int_equal(request(s->port, "GET", "/", NULL, &index), 200);
	assert_header(index, "Content-Type", "text/html; charset=utf-8");
	assert_non_null(strstr(body_of(index), "<title>powerd &lt;test&gt; &amp; co</title>"));
	assert_non_null(strstr(body_of(index), "<a href=\"/metrics\">"));
	assert_int_equal(request(s->port, "HEAD", "/", NULL, &head_index), 200);
	assert_string_equal(body_of(head_index), "");

	assert_int_equal(request(s->port, "GET", "/nope", NULL, &nope), 404);
	static const char post_req[] = "POST /metrics HTTP/1.1\r\nHost: x\r\n"
				       "Content-Length: 3\r\nConnection: close\r\n\r\nabc";
	assert_int_equal(tu_http_raw(s->port, post_req, sizeof(post_req) - 1, &post), 405);
	assert_header(post, "Allow", "GET, HEAD");
	assert_int_equal(request(s->port, "PUT", "/", "Content-Length: 0\r\n", &put), 405);
	assert_header(put, "Allow", "GET, HEAD");
	/* A method evhttp does not know: evhttp answers 501 itself (RFC 9110 15.6.2). */
	_cleanup_free_ char *unknown = NULL, *options = NULL, *http10 = NULL;
	assert_int_equal(request(s->port, "BREW", "/metrics", NULL, &unknown), 501);
	assert_int_equal(request(s->port, "OPTIONS", "/metrics", NULL, &options), 405);
	assert_header(options, "Allow", "GET, HEAD");
	/* HTTP/1.0 without keep-alive: served, then closed. */
	static const char req10[] = "GET /metrics HTTP/1.0\r\n\r\n";
	assert_int_equal(tu_http_raw(s->port, req10, sizeof(req10) - 1, &http10), 200);
	assert_string_equal(body_of(http10), m2);

	srv_wait_connections(s, 0);
	srv_stop(s);
}

static void test_keepalive(void **state)
{
	struct srv *s = srv_start(NULL, "t");
	const char *two = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
			  "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

	srv_set_metrics(s, "k 1\n");
	/* tu_http_raw stops after the first complete response; read both by hand. */
	int fd = connect_nb(s->port);
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(write_all(fd, two, strlen(two)), 0);
	char buf[4096];
	size_t len = 0;
	for (;;) {
		pfd.events = POLLIN;
		assert_int_equal(poll(&pfd, 1, 5000), 1);
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	char *second = strstr(buf + 1, "HTTP/1.1 200");
	assert_non_null(second);
	assert_true(startswith(buf, "HTTP/1.1 200"));
	assert_string_equal(body_of(second), "k 1\n");
	srv_wait_connections(s, 0);
	srv_stop(s);
}

/* Run curl, its output (body) and header dump into files in dir. */
static void run_curl(const char *dir, const char *url)
{
	_cleanup_free_ char *out = xasprintf("%s/body", dir);
	_cleanup_free_ char *hdr = xasprintf("%s/headers", dir);
	char *argv[] = { "/usr/bin/curl", "--compressed", "-s", "-S", "--max-time", "10", "-o", out,
		"-D", hdr, (char *)url, NULL };
	pid_t pid = tu_spawn(argv, NULL, NULL);
	int status = tu_wait(pid, 15000);

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_gzip(void **state)
{
	struct srv *s = srv_start(NULL, "t");
	_cleanup_free_ char *dir = tu_mkdtemp("test_http");
	_cleanup_free_ char *url = xasprintf("http://127.0.0.1:%u/metrics", s->port);
	struct strbuf_local {
		char *p;
		size_t len;
	} m = { xmalloc(200000), 0 };

	/* Large enough for compression to matter; repetitive like an exposition. */
	for (int i = 0; m.len < 150000; i++)
		m.len += (size_t)sprintf(m.p + m.len,
			"powerd_process_energy_joules_total{pid=\"%d\",comm=\"proc%d\"} %d.%03d\n",
			i, i % 97, i * 7, i % 1000);
	srv_set_metrics(s, m.p);

	run_curl(dir, url);
	_cleanup_free_ char *body = tu_read(dir, "body");
	_cleanup_free_ char *headers = tu_read(dir, "headers");
	assert_non_null(body);
	assert_non_null(headers);
	assert_string_equal(body, m.p);
	assert_header(headers, "Content-Encoding", "gzip");
	assert_header(headers, "Vary", "Accept-Encoding");
	_cleanup_free_ char *cl = header_of(headers, "Content-Length");
	assert_non_null(cl);
	print_message("gzip: %zu bytes of exposition served as %s\n", m.len, cl);
	assert_true(strtoul(cl, NULL, 10) < m.len / 4);

	_cleanup_free_ char *gz = NULL, *q0 = NULL, *other = NULL, *upper = NULL;
	assert_int_equal(request(s->port, "GET", "/metrics",
				 "Accept-Encoding: deflate, gzip;q=0.8\r\n", &gz),
		200);
	assert_header(gz, "Content-Encoding", "gzip");
	assert_header(gz, "Content-Type", PROM_CONTENT_TYPE);
	assert_memory_equal(body_of(gz), "\x1f\x8b", 2);
	assert_int_equal(
		request(s->port, "GET", "/metrics", "Accept-Encoding: gzip;q=0, br\r\n", &q0), 200);
	assert_null(header_of(q0, "Content-Encoding"));
	assert_string_equal(body_of(q0), m.p);
	assert_int_equal(
		request(s->port, "GET", "/metrics", "Accept-Encoding: deflate, br\r\n", &other),
		200);
	assert_null(header_of(other, "Content-Encoding"));
	assert_int_equal(
		request(s->port, "GET", "/metrics", "Accept-Encoding: GZIP ; q=1.0\r\n", &upper),
		200);
	assert_header(upper, "Content-Encoding", "gzip");

	/* A new exposition is compressed anew. */
	srv_set_metrics(s, "small 1\n");
	run_curl(dir, url);
	_cleanup_free_ char *body2 = tu_read(dir, "body");
	assert_string_equal(body2, "small 1\n");
	/* The deflate window follows the exposition's size (512 B to 32 KiB): each size
	 * round-trips. */
	for (size_t n = 300; n < 70000; n *= 4) {
		m.len = 0;
		for (int i = 0; m.len < n; i++)
			m.len += (size_t)sprintf(m.p + m.len, "x_total{pid=\"%d\"} %d\n", i, i * 3);
		srv_set_metrics(s, m.p);
		run_curl(dir, url);
		_cleanup_free_ char *b = tu_read(dir, "body");
		_cleanup_free_ char *h = tu_read(dir, "headers");
		assert_string_equal(b, m.p);
		assert_header(h, "Content-Encoding", "gzip");
	}

	tu_rm_rf(dir);
	free(m.p);
	srv_wait_connections(s, 0);
	srv_stop(s);
}

/* Like tu_http_raw, for requests the server may answer by closing or resetting: the status, or
 * -ECONNRESET when no response came; the response (possibly empty) into *ret. */
static int hostile_exchange(uint16_t port, const char *raw, size_t raw_len, char **ret)
{
	int fd = connect_nb(port);
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	size_t len = 0, cap = 4096;
	char *buf = xmalloc(cap);

	assert_int_equal(poll(&pfd, 1, 5000), 1);
	/* The server may stop reading and close before all is written. */
	for (size_t off = 0; off < raw_len;) {
		ssize_t n = send(fd, raw + off, raw_len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			pfd.events = POLLOUT;
			assert_int_equal(poll(&pfd, 1, 5000), 1);
			continue;
		}
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	for (;;) {
		pfd.events = POLLIN;
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		if (len + 1 >= cap)
			buf = xrealloc(buf, cap *= 2);
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		/* An error response is complete at its Content-Length: a lingering close may keep
		 * the connection open to read what the client still means to send. */
		char *end = strstr(buf, "\r\n\r\n");
		_cleanup_free_ char *cl = header_of(buf, "Content-Length");
		if (end && cl && len >= (size_t)(end + 4 - buf) + strtoul(cl, NULL, 10))
			break;
	}
	buf[len] = '\0';
	close(fd);
	*ret = buf;
	if (len > 12 && startswith(buf, "HTTP/1."))
		return atoi(buf + 9);
	return -ECONNRESET;
}

static void test_hostile_requests(void **state)
{
	struct srv *s = srv_start(NULL, "t");
	_cleanup_free_ char *big = xmalloc(70 * 1024);
	size_t len = 0;
	char *resp = NULL;
	int r;

	srv_set_metrics(s, "h 1\n");
	len += (size_t)sprintf(big, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; len < 64 * 1024; i++)
		len += (size_t)sprintf(big + len, "X-Filler-%d: %0100d\r\n", i, i);
	len += (size_t)sprintf(big + len, "\r\n");
	r = hostile_exchange(s->port, big, len, &resp);
	/* 4xx from evhttp, or the connection closed (reset) under the client. */
	print_message("64 KiB of headers: %d\n", r);
	assert_true(r < 0 || (r >= 400 && r < 500));
	free(resp);
	resp = NULL;
	assert_serves(s, "h 1\n");

	static const char garbage[] = "\x00\x01 junk\r\n\r\n";
	r = hostile_exchange(s->port, garbage, sizeof(garbage) - 1, &resp);
	print_message("garbage: %d\n", r);
	assert_true(r < 0 || r == 400);
	free(resp);
	resp = NULL;
	assert_serves(s, "h 1\n");

	/* A body over max_body_bytes. */
	_cleanup_free_ char *post = xasprintf("POST / HTTP/1.1\r\nHost: x\r\n"
					      "Content-Length: 100000\r\n\r\n%0500d",
		0);
	r = hostile_exchange(s->port, post, strlen(post), &resp);
	print_message("oversized body: %d\n", r);
	assert_true(r < 0 || r == 413);
	free(resp);
	resp = NULL;

	/* A request line without a version, and a bare newline. */
	r = hostile_exchange(s->port, "GET\r\n\r\n", 7, &resp);
	assert_true(r < 0 || r == 400);
	free(resp);
	resp = NULL;
	assert_serves(s, "h 1\n");
	srv_wait_connections(s, 0);
	srv_stop(s);
}

/* N clients at once, more than max_connections: the rest wait in the backlog, none fails. */
static void test_parallel(void **state)
{
	enum { N = 500 };
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	const char *metrics = "p 42\n";
	struct pollfd pfd[N];
	bool is_sent[N] = { false };
	char *resp[N] = { NULL };
	size_t resp_len[N] = { 0 };
	struct rlimit rl;
	unsigned done = 0, max_seen = 0;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2 * N && rl.rlim_max >= 2 * N) {
		rl.rlim_cur = 2 * N;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	limits.max_connections = 64;
	struct srv *s = srv_start(&limits, "t");
	srv_set_metrics(s, metrics);

	for (int i = 0; i < N; i++)
		pfd[i] = (struct pollfd){ .fd = connect_nb(s->port), .events = POLLOUT };
	uint64_t start = now_ms();
	while (done < N) {
		int n = poll(pfd, N, 10000);
		assert_true(n > 0);
		for (int i = 0; i < N; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			if (!is_sent[i]) {
				assert_true(pfd[i].revents & POLLOUT);
				assert_int_equal(write(pfd[i].fd, req, sizeof(req) - 1),
					(ssize_t)(sizeof(req) - 1));
				is_sent[i] = true;
				pfd[i].events = POLLIN;
				continue;
			}
			resp[i] = xrealloc(resp[i], resp_len[i] + 4096);
			ssize_t r = read(pfd[i].fd, resp[i] + resp_len[i], 4095);
			assert_true(r >= 0);
			if (r > 0) {
				resp_len[i] += (size_t)r;
				continue;
			}
			resp[i][resp_len[i]] = '\0';
			close(pfd[i].fd);
			pfd[i].fd = -1;
			done++;
		}
		if (done % 50 == 0)
			max_seen = MAX(max_seen, srv_connections(s));
	}
	uint64_t elapsed = now_ms() - start;
	for (int i = 0; i < N; i++) {
		assert_true(startswith(resp[i], "HTTP/1.1 200 OK\r\n"));
		assert_string_equal(body_of(resp[i]), metrics);
		free(resp[i]);
	}
	assert_true(max_seen <= limits.max_connections);
	print_message("%d parallel clients, max_connections %u: all answered in %llu ms\n", N,
		limits.max_connections, (unsigned long long)elapsed);
	srv_wait_connections(s, 0);
	assert_serves(s, metrics);
	srv_wait_connections(s, 0);
	srv_stop(s);
}

/* At the limit a further client is not accepted until a connection ends. */
static void test_connection_limit(void **state)
{
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	int idle[4];
	char buf[1024];

	limits.max_connections = 4;
	struct srv *s = srv_start(&limits, "t");
	srv_set_metrics(s, "l 1\n");
	for (int i = 0; i < 4; i++)
		idle[i] = connect_nb(s->port);
	srv_wait_connections(s, 4);

	int fd = connect_nb(s->port); /* completes in the kernel's backlog */
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	/* Waiting for something that must not happen needs a bound: 300 ms of no answer. */
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 300), 0);
	assert_int_equal(srv_connections(s), 4);

	close(idle[0]);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_true(startswith(buf, "HTTP/1.1 200"));
	close(fd);
	for (int i = 1; i < 4; i++)
		close(idle[i]);
	srv_wait_connections(s, 0);
	assert_serves(s, "l 1\n");
	srv_stop(s);
}

/* Wait for the server to close fd; returns the milliseconds it took, fails after 5 s. */
static uint64_t wait_eof(int fd)
{
	uint64_t start = now_ms();
	char buf[4096];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, 5000), 1);
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return now_ms() - start;
		assert_true(n > 0);
		assert_true(now_ms() - start < 5000);
	}
}

static void test_idle_timeout(void **state)
{
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

	limits.idle_timeout_s = 1;
	struct srv *s = srv_start(&limits, "t");
	srv_set_metrics(s, "i 1\n");

	/* A client that never says anything. */
	int fd = connect_nb(s->port);
	uint64_t ms = wait_eof(fd);
	close(fd);
	print_message("silent connection closed after %llu ms\n", (unsigned long long)ms);
	assert_true(ms >= 500);

	/* A keep-alive client that goes quiet after one request. */
	fd = connect_nb(s->port);
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	ms = wait_eof(fd);
	close(fd);
	assert_true(ms >= 500);
	srv_wait_connections(s, 0);
	srv_stop(s);
}

/* A client that trickles its request a byte at a time, each byte well within the idle timeout,
 * must not hold its connection (one of max_connections) for ever: it gets idle_timeout_s from
 * the start of the request, not from its last byte. */
static void test_slowloris(void **state)
{
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	static const char req[] =
		"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";

	limits.idle_timeout_s = 1;
	struct srv *s = srv_start(&limits, "t");
	srv_set_metrics(s, "s 1\n");
	int fd = connect_nb(s->port);
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	uint64_t start = now_ms();
	bool is_closed = false;

	for (size_t i = 0; i < sizeof(req) - 1 && !is_closed; i++) {
		if (send(fd, &req[i], 1, MSG_NOSIGNAL) != 1) {
			is_closed = true;
			break;
		}
		/* 200 ms between bytes: never idle for the timeout's second. */
		pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 200) == 1) {
			char c;
			is_closed = read(fd, &c, 1) <= 0;
		}
	}
	uint64_t ms = now_ms() - start;
	close(fd);
	print_message("trickling client closed after %llu ms\n", (unsigned long long)ms);
	assert_true(is_closed);
	assert_true(ms < 4000);
	srv_wait_connections(s, 0);
	assert_serves(s, "s 1\n");
	srv_stop(s);
}

/* A client that pipelines requests and never reads the answers: while the server waits to write,
 * it must stop reading, so that what it holds stays bounded (it read gigabytes into memory). */
static void test_pipelining_without_reading(void **state)
{
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t chunk_len = 64 * 1024, sent = 0;
	char *chunk = xmalloc(chunk_len);
	size_t big_len = 1024 * 1024;
	char *big = xmalloc(big_len + 1);
	int small = 16 * 1024;

	for (size_t i = 0; i + sizeof(req) - 1 <= chunk_len; i += sizeof(req) - 1)
		memcpy(chunk + i, req, sizeof(req) - 1);
	chunk_len -= chunk_len % (sizeof(req) - 1);
	memset(big, 'x', big_len);
	big[big_len - 1] = '\n';
	big[big_len] = '\0';
	limits.idle_timeout_s = 2;
	struct srv *s = srv_start(&limits, "t");
	srv_set_metrics(s, big);
	int fd = connect_nb(s->port);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	/* Until the server takes no more for half a second, or 256 MiB. */
	while (sent < 256u * 1024 * 1024) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, 500) != 1)
			break;
		ssize_t n = send(fd, chunk, chunk_len, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			break; /* closed by the server: what it took is what counts */
		sent += (size_t)n;
	}
	print_message("the server took %zu bytes of requests it could not answer\n", sent);
	assert_true(sent < 32u * 1024 * 1024);
	/* The deadline ends it in the middle of writing. */
	srv_wait_connections(s, 0);
	close(fd);

	/* Pipelining itself still works: 50 requests in one write, 50 answers. */
	srv_set_metrics(s, "p 1\n");
	fd = connect_nb(s->port);
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(send(fd, chunk, 50 * (sizeof(req) - 1), MSG_NOSIGNAL),
		(ssize_t)(50 * (sizeof(req) - 1)));
	struct strbuf got = { 0 };
	unsigned answers = 0;
	for (uint64_t start = now_ms(); answers < 50 && now_ms() - start < 5000;) {
		char buf[4096];
		pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 1000) != 1)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		assert_true(n > 0);
		strbuf_add(&got, buf, (size_t)n);
		answers = 0;
		for (const char *p = got.buf; (p = strstr(p, "HTTP/1.1 200 OK")); p++)
			answers++;
	}
	assert_int_equal(answers, 50);
	strbuf_done(&got);
	close(fd);
	srv_wait_connections(s, 0);
	srv_stop(s);
	free(big);
	free(chunk);
}

/* Freeing the server with clients connected closes them and leaks nothing (valgrind). */
static void test_free_with_clients(void **state)
{
	struct srv *s = srv_start(NULL, "t");
	static const char half[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
	int fd[3];

	for (int i = 0; i < 3; i++)
		fd[i] = connect_nb(s->port);
	srv_wait_connections(s, 3);
	struct pollfd pfd = { .fd = fd[1], .events = POLLOUT };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(write(fd[1], half, sizeof(half) - 1), (ssize_t)(sizeof(half) - 1));
	srv_stop(s);
	for (int i = 0; i < 3; i++) {
		wait_eof(fd[i]);
		close(fd[i]);
	}
}

static void test_listen_addresses(void **state)
{
	struct event_base *base = event_base_new();
	struct http_server *h = NULL;
	char err[256] = "";

	static const char *const bad[] = { "bogus", "1.2.3.4", "127.0.0.1:", "127.0.0.1:65536",
		"[::1]", "[::1]x:80", "::1:80", "127.0.0.1:-1", ":port", "" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		assert_true(http_server_new(base, bad[i], NULL, "t", &h, err, sizeof(err)) < 0);
		assert_true(err[0] != '\0');
	}

	/* In use: another socket listens on the port. */
	uint16_t port;
	{
		struct sockaddr_in sa = { .sin_family = AF_INET,
			.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(sa);
		_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(listen(fd, 1), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
		port = ntohs(sa.sin_port);
		_cleanup_free_ char *addr = xasprintf("127.0.0.1:%u", port);
		assert_int_equal(
			http_server_new(base, addr, NULL, "t", &h, err, sizeof(err)), -EADDRINUSE);
		assert_non_null(strstr(err, addr));
	}

	/* ":0": any address, IPv4 and IPv6 alike (connect completes in the backlog). */
	assert_int_equal(http_server_new(base, ":0", NULL, "t", &h, err, sizeof(err)), 0);
	port = http_server_port(h);
	assert_true(port > 0);
	assert_int_equal(tu_wait_port(port, 1000), 0);
	int fd6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd6 >= 0) {
		struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6,
			.sin6_port = htons(port),
			.sin6_addr = IN6ADDR_LOOPBACK_INIT };
		int r = connect(fd6, (struct sockaddr *)&sa6, sizeof(sa6));
		assert_true(r == 0 || errno == EADDRNOTAVAIL || errno == ENETUNREACH);
		close(fd6);
	}
	http_server_free(h);

	assert_int_equal(http_server_new(base, "localhost:0", NULL, "t", &h, err, sizeof(err)), 0);
	http_server_free(h);
	http_server_free(NULL);
	event_base_free(base);
}

static const char *self_path;

/* In a child started as "test_http activated|activated-bad": fd 3 is what the parent passed;
 * serve it as systemd would have us. A fresh program, so that it inherits no test state. */
static int activated_child(bool expect_error)
{
	struct event_base *base = event_base_new();
	struct http_server *h = NULL;
	char err[256] = "";
	int r;

	r = http_server_new(base, "", NULL, "activated", &h, err, sizeof(err));
	if (expect_error) {
		event_base_free(base);
		return r == -EINVAL && strstr(err, "fd 3") ? 0 : 10;
	}
	if (r < 0) {
		fprintf(stderr, "http_server_new: %s\n", err);
		return 11;
	}
	if (getenv("LISTEN_FDS"))
		return 12;
	http_server_set_metrics(h, "activated 1\n", 12);
	event_base_dispatch(base);
	return 13;
}

static pid_t spawn_activated(int fd, bool expect_error)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char pid_s[32];
		char *argv[] = { (char *)self_path, expect_error ? "activated-bad" : "activated",
			NULL };

		/* fd 3 must survive the exec: dup2 to it drops FD_CLOEXEC, unless it is fd 3. */
		if (fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(fd, 3) < 0)
			_exit(20);
		if (fd != 3)
			close(fd);
		snprintf(pid_s, sizeof(pid_s), "%d", (int)getpid()); /* the pid the exec keeps */
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pid_s, 1);
		execv(self_path, argv);
		_exit(21);
	}
	close(fd);
	return pid;
}

static void test_socket_activation(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	_cleanup_free_ char *body = NULL;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	uint16_t port = ntohs(sa.sin_port);

	pid_t pid = spawn_activated(fd, false);
	assert_int_equal(tu_http_get(port, "/metrics", &body), 200);
	assert_string_equal(body, "activated 1\n");
	int status = tu_stop(pid, 5000);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);

	/* A datagram socket is not what an HTTP server can use. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	pid = spawn_activated(fd, true);
	status = tu_wait(pid, 10000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_hostile_requests),
		cmocka_unit_test(test_parallel),
		cmocka_unit_test(test_connection_limit),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_slowloris),
		cmocka_unit_test(test_pipelining_without_reading),
		cmocka_unit_test(test_free_with_clients),
		cmocka_unit_test(test_listen_addresses),
		cmocka_unit_test(test_socket_activation),
	};

	self_path = argv[0];
	if (argc == 2 && streq(argv[1], "activated"))
		return activated_child(false);
	if (argc == 2 && streq(argv[1], "activated-bad"))
		return activated_child(true);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
