/* systemd service notification over sd_notify(3), and the watchdog kept alive from the event loop.
 * The environment is never unset (unset_environment = 0): sd_watchdog_enabled() and sd_notify()
 * must keep finding NOTIFY_SOCKET and WATCHDOG_USEC for the whole life of the daemon. */
#include "common/notify.h"

#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "common/log.h"

struct notify {
	struct event *watchdog;
	uint64_t watchdog_usec;
};

/* sd_notify() sends on a blocking socket: while systemd does not read (PID 1 busy), a full
 * queue would stop the whole event loop, scrapes included, at every tick's STATUS=. A STATUS= or
 * WATCHDOG=1 that does not fit now is dropped instead: the next one says the same or more.
 * State changes (READY=1, RELOADING=1, STOPPING=1) must arrive and still wait. Other socket
 * kinds than a path or an abstract name (vsock, newer systemd) go through sd_notify(). */
static int notify_send_nonblocking(const char *socket_path, const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(socket_path);

	if (len < 2 || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, socket_path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		return -errno;
	return 1;
}

static void notify_send(const char *state, bool may_drop)
{
	const char *socket_path = getenv("NOTIFY_SOCKET");
	int r;

	if (!socket_path)
		return;
	if (may_drop && (socket_path[0] == '/' || socket_path[0] == '@'))
		r = notify_send_nonblocking(socket_path, state);
	else
		r = sd_notify(0, state);
	if (r < 0)
		log_debug("sd_notify: %s", strerror(-r));
}

/* STATUS= is a single line in systemctl status: fold any newline of the caller's text. */
static _printf_(1, 0) char *status_vformat(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return s;
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	notify_send("WATCHDOG=1", true);
}

int notify_new(struct event_base *base, struct notify **ret)
{
	struct notify *n = xcalloc(1, sizeof(*n));
	uint64_t usec = 0;

	/* Without a socket to talk to, a timer would only wake the loop for nothing. */
	if (getenv("NOTIFY_SOCKET") && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		struct timeval tv = { .tv_sec = (time_t)(usec / 2 / USEC_PER_SEC),
			.tv_usec = (suseconds_t)(usec / 2 % USEC_PER_SEC) };

		n->watchdog = event_new(base, -1, EV_PERSIST, watchdog_cb, n);
		if (!n->watchdog || event_add(n->watchdog, &tv) < 0) {
			notify_free(n);
			return -ENOMEM;
		}
		n->watchdog_usec = usec;
		log_debug("watchdog: every %llu us", (unsigned long long)(usec / 2));
	}
	*ret = n;
	return 0;
}

void notify_free(struct notify *n)
{
	if (!n)
		return;
	if (n->watchdog)
		event_free(n->watchdog);
	free(n);
}

uint64_t notify_watchdog_usec(const struct notify *n)
{
	return n ? n->watchdog_usec : 0;
}

/* prefix, then STATUS= with the caller's text; nothing is formatted without a socket. */
static _printf_(2, 0) void notify_send_status(const char *prefix, const char *fmt, va_list ap)
{
	if (!getenv("NOTIFY_SOCKET"))
		return;
	_cleanup_free_ char *status = status_vformat(fmt, ap);
	_cleanup_free_ char *msg = xasprintf("%sSTATUS=%s", prefix, status);
	notify_send(msg, prefix[0] == '\0');
}

void notify_ready(const char *status_fmt, ...)
{
	va_list ap;

	va_start(ap, status_fmt);
	notify_send_status("READY=1\n", status_fmt, ap);
	va_end(ap);
}

void notify_status(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify_send_status("", fmt, ap);
	va_end(ap);
}

void notify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	if (!getenv("NOTIFY_SOCKET"))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* MONOTONIC_USEC lets systemd ≥ 253 match the READY=1 that ends this reload to it. */
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		(unsigned long long)ts.tv_sec * USEC_PER_SEC +
			(unsigned long long)ts.tv_nsec / 1000);
	notify_send(msg, false);
}

void notify_reload_done(void)
{
	notify_send("READY=1", false);
}

void notify_stopping(void)
{
	notify_send("STOPPING=1", false);
}
