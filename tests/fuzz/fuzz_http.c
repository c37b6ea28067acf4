/* libFuzzer target: powerd's metrics HTTP server (common/http.c on evhttp) as a scraper reaches
 * it. One server listens on 127.0.0.1 for the whole run; each input is written by a client over a
 * real loopback TCP connection, and the event loop is stepped until the exchange is quiescent
 * (nothing left to read, write or answer) or the server closed. The client then resets the
 * connection (no TIME_WAIT piles up over a long run), and the server must free it promptly:
 * a connection still counted afterwards, or a descriptor left open, aborts. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "common/http.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"

/* How long a reset connection may stay counted while events are awaited. */
#define FREE_DEADLINE_MS 2000

static struct event_base *base;
static struct http_server *server;
static struct event *tick;

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char metrics[] = "# HELP powerd_up 1 when sampling works\n"
				      "# TYPE powerd_up gauge\n"
				      "powerd_up 1\n"
				      "powerd_energy_joules_total{zone=\"package-0\"} 1234.5\n";
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	char err[256];

	fuzz_quiet();
	/* as the daemons do: a peer that resets while we write is an error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	tick = base ? evtimer_new(base, tick_cb, NULL) : NULL;
	if (!tick || http_server_new(base, "127.0.0.1:0", &limits, "powerd-fuzz", &server, err,
			     sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_http: cannot start the server: %s\n", err);
		abort();
	}
	http_server_set_metrics(server, metrics, sizeof(metrics) - 1);
	return 0;
}

static int client_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons(http_server_port(server)),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int e = 0;
	socklen_t elen = sizeof(e);

	/* On loopback the handshake completes in the kernel, before the server accepts; libFuzzer's
	 * timer signal may interrupt the wait (EINTR), never the connection. */
	if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS))
		e = errno;
	while (!e) {
		int n = poll(&pfd, 1, 5000);

		if (n == 1)
			break;
		if (n == 0 || errno != EINTR)
			e = n == 0 ? ETIMEDOUT : errno;
	}
	if (!e && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
		e = errno;
	if (e) {
		fprintf(stderr, "fuzz_http: cannot connect to the server: %s\n", strerror(e));
		abort();
	}
	return fd;
}

/* The first bytes the server sent on this connection: a status line's start. */
static char head[8];
static size_t head_len;

/* Read whatever the server sent; false once it closed (or reset) its side. */
static bool client_drain(int fd, bool *ret_progress)
{
	char buf[16384];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0) {
			size_t take = MIN((size_t)n, sizeof(head) - head_len);

			memcpy(head + head_len, buf, take);
			head_len += take;
			*ret_progress = true;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
}

/* Run every callback that is ready, until none is. */
static void loop_settle(void)
{
	if (event_base_loop(base, EVLOOP_NONBLOCK) < 0)
		abort();
}

/* Wait for the next event (at most 10 ms) and run it. */
static void loop_wait(void)
{
	struct timeval tv = { .tv_usec = 10000 };

	evtimer_add(tick, &tv);
	if (event_base_loop(base, EVLOOP_ONCE) < 0)
		abort();
	evtimer_del(tick);
}

static void exchange(int fd, const uint8_t *data, size_t size)
{
	size_t off = 0;
	bool is_open = true;

	for (;;) {
		bool progress = false;
		int unsent = 0;

		while (is_open && off < size) {
			ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EPIPE || errno == ECONNRESET)
					is_open = false;
				break;
			}
			off += (size_t)n;
			progress = true;
		}
		loop_settle();
		if (!client_drain(fd, &progress))
			return; /* the server closed */
		/* All written bytes are in the server's receive queue (loopback), nothing came back
		 * and the loop had nothing to run: the server waits for the client. */
		if (ioctl(fd, SIOCOUTQ, &unsent) < 0)
			abort();
		if (!progress && unsent == 0 && (off == size || !is_open))
			return;
		if (!progress)
			loop_wait();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned fds = fuzz_fd_count();
	int fd = client_connect();
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	head_len = 0;
	exchange(fd, data, size);
	/* whatever came, evhttp's or ours, is an HTTP answer (evhttp echoes the request's version,
	 * "HTTP/0.1" included) */
	if (head_len > 0 && memcmp(head, "HTTP/", MIN(head_len, (size_t)5)) != 0) {
		fprintf(stderr, "fuzz_http: the server answered '%.*s'\n", (int)head_len, head);
		abort();
	}
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	uint64_t deadline = now_monotonic_ns() + FREE_DEADLINE_MS * NSEC_PER_MSEC;
	loop_settle();
	while (http_server_connections(server) > 0) {
		if (now_monotonic_ns() > deadline) {
			fprintf(stderr, "fuzz_http: a reset connection is still open after %d ms\n",
				FREE_DEADLINE_MS);
			abort();
		}
		loop_wait();
	}
	if (fuzz_fd_count() != fds)
		abort();
	return 0;
}
