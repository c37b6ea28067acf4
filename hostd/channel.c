/* The channel publisher (see channel.h). */
#include "hostd/channel.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/event.h>

#include "common/channel_record.h"
#include "common/log.h"
#include "common/util.h"

/* The kernel doubles it: what a domain whose guest does not read can pin in the kernel, instead of
 * the default's few hundred kilobytes (3000 idle domains). Records queue far less than that: see
 * is_reader_behind. */
#define CHANNEL_SNDBUF 8192

struct channel {
	struct publisher pub;
	char *domain;
	char *path;
	int fd;
	enum channel_state state;
	char reason[CHANNEL_REASON_MAX];
	struct event *retry_ev;
	unsigned backoff_ms;
	bool is_connect_failing; /* connection attempts failing: logged once per streak */
	char pending[CHANNEL_RECORD_MAX];
	size_t pending_off, pending_len;
	uint64_t n_sent, n_dropped;
};

static const char *const state_names[CHANNEL_STATES] = {
	[CHANNEL_OFF] = "off",
	[CHANNEL_NO_CONTROLLER] = "no_controller",
	[CHANNEL_HOTPLUG_REFUSED] = "hotplug_refused",
	[CHANNEL_NO_HOOKSCRIPT] = "no_hookscript",
	[CHANNEL_CONNECTING] = "connecting",
	[CHANNEL_CONNECTED] = "connected",
};

const char *channel_state_name(enum channel_state s)
{
	return s < CHANNEL_STATES ? state_names[s] : "unknown";
}

static void channel_close(struct channel *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->pending_off = c->pending_len = 0;
	evtimer_del(c->retry_ev);
}

/* connect(2) to path; a path longer than sun_path goes through its directory's /proc/self/fd. */
static int connect_unix(int fd, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int dirfd = -1;

	if (strlen(path) < sizeof(sa.sun_path)) {
		strcpy(sa.sun_path, path);
	} else {
		const char *slash = strrchr(path, '/');
		if (!slash)
			return -ENAMETOOLONG;
		_cleanup_free_ char *dir = xstrndup(path, (size_t)(slash - path));
		dirfd = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			return -errno;
		int n = snprintf(
			sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dirfd, slash + 1);
		if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
			return -ENAMETOOLONG;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return 0;
	if (errno != EACCES)
		return -errno;
	/* connect(2) needs write permission on the socket, which qemu creates as its own user with
	 * its group allowed to write (libvirt's umask 002 for qemu); powerd-host's unit gives root
	 * no CAP_DAC_OVERRIDE. So the attempt is made again with that group as the filesystem gid,
	 * for this one call (setfsgid: this thread, path checks only). */
	struct stat st;
	if (stat(sa.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode) || !(st.st_mode & S_IWGRP))
		return -EACCES;
	int old = setfsgid((gid_t)st.st_gid);
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	setfsgid((gid_t)old);
	return r;
}

static void schedule_retry(struct channel *c)
{
	struct timeval tv = { c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000 };

	evtimer_add(c->retry_ev, &tv);
	c->backoff_ms = MIN(c->backoff_ms * 2, CHANNEL_BACKOFF_MAX_MS);
}

static int try_connect(struct channel *c)
{
	int sndbuf = CHANNEL_SNDBUF;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	/* AF_UNIX connects at once or fails (EAGAIN: the listener's backlog is full) */
	int r = connect_unix(fd, c->path);
	if (r < 0)
		return r;
	c->fd = TAKE_FD(fd);
	return 0;
}

static void channel_connect(struct channel *c)
{
	channel_close(c);
	c->state = CHANNEL_CONNECTING;
	if (!c->path)
		return;
	int r = try_connect(c);
	if (r < 0) {
		if (!c->is_connect_failing)
			log_warn("domain %s: cannot connect to its channel %s: %s; retrying with "
				 "backoff up to %d s",
				c->domain, c->path, strerror(-r), CHANNEL_BACKOFF_MAX_MS / 1000);
		c->is_connect_failing = true;
		schedule_retry(c);
		return;
	}
	log_info("domain %s: channel connected (%s)", c->domain, c->path);
	c->is_connect_failing = false;
	c->backoff_ms = CHANNEL_BACKOFF_MIN_MS;
	c->state = CHANNEL_CONNECTED;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	channel_connect(arg);
}

/* qemu closed its end (save, migration, shutdown, restart): connect again, later. */
static void channel_lost(struct channel *c, int err)
{
	log_info("domain %s: channel closed (%s), reconnecting", c->domain, strerror(-err));
	channel_close(c);
	c->state = CHANNEL_CONNECTING;
	c->backoff_ms = CHANNEL_BACKOFF_MIN_MS;
	schedule_retry(c);
}

/* Bytes the kernel took (0 when none fit), or -errno for a connection gone. */
static ssize_t send_some(struct channel *c, const char *buf, size_t len)
{
	ssize_t n = send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOBUFS)
		return 0;
	return -errno;
}

/* Finish the record the kernel took in part; true when nothing is left of it. */
static bool flush_pending(struct channel *c)
{
	if (c->pending_off == c->pending_len)
		return true;
	ssize_t n = send_some(c, c->pending + c->pending_off, c->pending_len - c->pending_off);
	if (n < 0) {
		channel_lost(c, (int)n);
		return false;
	}
	c->pending_off += (size_t)n;
	if (c->pending_off < c->pending_len)
		return false;
	c->pending_off = c->pending_len = 0;
	c->n_sent++;
	return true;
}

/* qemu has not taken the last record yet (the guest is not reading, or is slow): a new one would
 * queue behind it and reach the guest late; dropping it keeps what the guest reads next at most
 * one interval old. */
static bool is_reader_behind(const struct channel *c)
{
	int queued = 0;

	return ioctl(c->fd, SIOCOUTQ, &queued) == 0 && queued > 0;
}

static size_t format_record(
	const struct publish_tick *tick, const uint64_t *total_uj, char *buf, size_t size)
{
	struct channel_record r = {
		.seq = tick->hb->seq,
		.interval_ms = tick->hb->interval_ms,
		.time_ms = tick->hb->time_ms,
		.is_estimated = tick->hb->is_estimated,
		.n_zones = MIN(tick->n_zones, (size_t)CHANNEL_ZONES_MAX),
	};

	memcpy(r.instance, tick->hb->instance, sizeof(r.instance));
	for (size_t z = 0; z < r.n_zones; z++) {
		snprintf(r.zones[z].name, sizeof(r.zones[z].name), "%s", tick->zone_names[z]);
		r.zones[z].energy_uj = total_uj[z];
	}
	return channel_record_format(&r, buf, size);
}

static int channel_publish(
	struct publisher *p, const struct publish_tick *tick, const uint64_t *total_uj)
{
	struct channel *c = (struct channel *)p;
	char line[CHANNEL_RECORD_MAX + 1];

	if (c->state != CHANNEL_CONNECTED)
		return -EAGAIN;
	if (!flush_pending(c) || is_reader_behind(c)) {
		c->n_dropped++;
		return -EAGAIN;
	}
	size_t len = format_record(tick, total_uj, line, sizeof(line));
	if (len == 0)
		return -EINVAL; /* zones the record cannot carry: counted, logged once */
	ssize_t n = send_some(c, line, len);
	if (n < 0) {
		channel_lost(c, (int)n);
		c->n_dropped++;
		return -EAGAIN;
	}
	if (n == 0) {
		c->n_dropped++;
		return -EAGAIN;
	}
	if ((size_t)n < len) {
		/* a record cut in the middle: its rest goes out before anything else */
		memcpy(c->pending, line + n, len - (size_t)n);
		c->pending_off = 0;
		c->pending_len = len - (size_t)n;
		return 0;
	}
	c->n_sent++;
	return 0;
}

static void channel_free(struct publisher *p)
{
	struct channel *c = (struct channel *)p;

	channel_close(c);
	if (c->retry_ev)
		event_free(c->retry_ev);
	free(c->path);
	free(c->domain);
	free(c);
}

static const struct publisher_ops channel_ops = {
	.kind = "channel",
	.publish = channel_publish,
	.free = channel_free,
};

int channel_new(struct event_base *base, const char *domain, struct channel **ret)
{
	struct channel *c = xcalloc(1, sizeof(*c));

	c->pub.ops = &channel_ops;
	c->domain = xstrdup(domain);
	c->fd = -1;
	c->state = CHANNEL_OFF;
	c->backoff_ms = CHANNEL_BACKOFF_MIN_MS;
	c->retry_ev = evtimer_new(base, retry_cb, c);
	if (!c->retry_ev) {
		channel_free(&c->pub);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

struct publisher *channel_publisher(struct channel *c)
{
	return &c->pub;
}

void channel_connect_to(struct channel *c, const char *path)
{
	if (c->path && path && streq(c->path, path) && c->state == CHANNEL_CONNECTED)
		return;
	if (!c->path || !path || !streq(c->path, path)) {
		free(c->path);
		c->path = path ? xstrdup(path) : NULL;
		c->is_connect_failing = false;
	}
	c->reason[0] = '\0';
	c->backoff_ms = CHANNEL_BACKOFF_MIN_MS;
	channel_connect(c);
}

void channel_set_unserved(struct channel *c, enum channel_state state, const char *reason)
{
	channel_close(c);
	c->state = state;
	snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
}

enum channel_state channel_get_state(const struct channel *c)
{
	return c->state;
}

const char *channel_reason(const struct channel *c)
{
	return c->reason;
}

const char *channel_path(const struct channel *c)
{
	return c->path;
}

uint64_t channel_records_sent(const struct channel *c)
{
	return c->n_sent;
}

uint64_t channel_records_dropped(const struct channel *c)
{
	return c->n_dropped;
}
