/* Reading the energy channel's port. Lines are cut at '\n' in a buffer of CHANNEL_RECORD_MAX
 * bytes: a longer line is discarded up to its '\n'. Every record stands alone (absolute
 * counters), so only the newest valid one matters: a reading is that record. A port that reports
 * EOF or HUP (no host side connected: poll() keeps saying HUP) or an error (hot-unplugged) is
 * closed at once, so the loop never spins on it, and opened again at the next request. */
#include "guestd/channel_reader.h"

#include <dirent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>

#include "common/channel_record.h"
#include "common/log.h"
#include "common/util.h"

/* A flood of lines is drained in slices, so the loop serves other events in between. */
#define DRAIN_MAX (64 * 1024)
#define PORT_DIR_NAME_MAX 64

struct channel_reader {
	struct source_reader pub;
	char *path;
	struct event_base *base;
	int fd;
	struct event *ev;
	bool is_gone; /* closed: it went away or its host side hung up */

	char line[CHANNEL_RECORD_MAX];
	size_t len;
	bool is_discarding; /* inside a line over CHANNEL_RECORD_MAX, until its '\n' */

	bool has_record; /* rec is the newest valid record */
	struct channel_record rec;
	unsigned future_version; /* the newest line was of this version, not 1; 0: none */
	bool has_logged_invalid, has_logged_oversize, has_logged_open, has_logged_hangup;
	char problem[256]; /* why the port is not open */
};

int channel_port_find(
	const char *sys_dir, const char *dev_dir, const char *name, char *buf, size_t size)
{
	int dfd = open(sys_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = -ENOENT;

	if (dfd < 0)
		return -ENOENT;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -ENOENT;
	}
	for (struct dirent *de; (de = readdir(d));) {
		char rel[sizeof(de->d_name) + 8], content[CHANNEL_ZONE_NAME_MAX + 64];
		size_t len;

		if (!startswith(de->d_name, "vport") || strlen(de->d_name) >= PORT_DIR_NAME_MAX)
			continue;
		snprintf(rel, sizeof(rel), "%s/name", de->d_name);
		/* sysfs links each port to its device: the name is read through the link */
		_cleanup_close_ int nfd = openat(dfd, rel, O_RDONLY | O_CLOEXEC);
		if (nfd < 0 || pread_all(nfd, content, sizeof(content), &len) < 0)
			continue;
		if (len > 0 && content[len - 1] == '\n')
			content[--len] = '\0';
		if (!streq(content, name))
			continue;
		snprintf(buf, size, "%s/%s", dev_dir, de->d_name);
		r = 0;
		break;
	}
	closedir(d);
	return r;
}

static void port_close(struct channel_reader *c)
{
	if (c->ev) {
		event_free(c->ev);
		c->ev = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
	c->is_discarding = false;
}

static void port_gone(struct channel_reader *c, const char *why)
{
	port_close(c);
	c->is_gone = true;
	snprintf(c->problem, sizeof(c->problem), "%s: %s", c->path, why);
	/* The host side is away until powerd-host connects (again): said once per streak. */
	if (!c->has_logged_hangup)
		log_notice("%s: closed (%s); opened again every interval", c->path, why);
	c->has_logged_hangup = true;
}

/* "powerd-energy/N ..." of another version: N, or 0 when the tag is not even that. */
static unsigned line_version(const char *line, size_t len)
{
	static const char tag[] = "powerd-energy/";
	unsigned v = 0;

	if (len < sizeof(tag) || memcmp(line, tag, sizeof(tag) - 1) != 0)
		return 0;
	for (size_t i = sizeof(tag) - 1; i < len && line[i] >= '0' && line[i] <= '9'; i++)
		if (v < 100000)
			v = v * 10 + (unsigned)(line[i] - '0');
	return v;
}

static void line_done(struct channel_reader *c)
{
	struct channel_record rec;
	int r = channel_record_parse(c->line, c->len, &rec);

	if (r == 0) {
		c->rec = rec;
		c->has_record = true;
		c->future_version = 0;
		if (c->has_logged_invalid)
			log_notice("%s: valid records again", c->path);
		c->has_logged_invalid = false;
		c->has_logged_hangup = false;
		return;
	}
	if (r == -EPROTONOSUPPORT) {
		c->future_version = MAX(line_version(c->line, c->len), 2);
		return;
	}
	/* The newest valid record still stands; freshness says when there are no more. */
	if (!c->has_logged_invalid)
		log_warn("%s: invalid record (%zu bytes): skipped", c->path, c->len);
	c->has_logged_invalid = true;
}

/* Cut n bytes at p into lines; a partial line waits in c->line for the rest. */
static void feed(struct channel_reader *c, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t part = nl ? (size_t)(nl - p) : n;

		if (c->is_discarding) {
			c->is_discarding = !nl;
		} else if (c->len + part > CHANNEL_RECORD_MAX - 1) {
			if (!c->has_logged_oversize)
				log_warn("%s: line over %d bytes: discarded", c->path,
					CHANNEL_RECORD_MAX);
			c->has_logged_oversize = true;
			c->len = 0;
			c->is_discarding = !nl;
		} else {
			memcpy(c->line + c->len, p, part);
			c->len += part;
			if (nl) {
				line_done(c);
				c->len = 0;
			}
		}
		p += part + (nl ? 1 : 0);
		n -= part + (nl ? 1 : 0);
	}
}

static void port_drain(struct channel_reader *c)
{
	char buf[4096];

	for (size_t got = 0; c->fd >= 0 && got < DRAIN_MAX;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));

		if (n > 0) {
			feed(c, buf, (size_t)n);
			got += (size_t)n;
		} else if (n == 0) {
			port_gone(c, "host side not connected");
		} else if (errno == EAGAIN) {
			return;
		} else if (errno != EINTR) {
			port_gone(c, strerror(errno));
		}
	}
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	port_drain(arg);
}

static int port_open(struct channel_reader *c)
{
	/* O_NONBLOCK: neither the open nor any read may wait for the host. */
	c->fd = open(c->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (c->fd < 0) {
		int r = -errno;

		snprintf(c->problem, sizeof(c->problem), "%s: cannot open: %s", c->path,
			strerror(-r));
		if (!c->has_logged_open)
			log_warn("%s", c->problem);
		c->has_logged_open = true;
		c->is_gone = true;
		return r;
	}
	if (c->has_logged_open)
		log_notice("%s: open again", c->path);
	c->has_logged_open = false;
	c->is_gone = false;
	if (c->base) {
		c->ev = event_new(c->base, c->fd, EV_READ | EV_PERSIST, on_readable, c);
		if (!c->ev || event_add(c->ev, NULL) < 0) {
			port_close(c);
			return -ENOMEM;
		}
	}
	return 0;
}

static int reader_request(struct source_reader *pub)
{
	struct channel_reader *c = (struct channel_reader *)pub;

	if (c->fd < 0)
		port_open(c);
	port_drain(c);
	return 0;
}

static void reading_of_record(const struct channel_record *rec, struct source_reading *ret)
{
	ret->is_reopened = true;
	ret->layout = POWERCAP_LAYOUT_POWERD;
	ret->zones = xcalloc(rec->n_zones ? rec->n_zones : 1, sizeof(*ret->zones));
	ret->n_zones = rec->n_zones;
	for (size_t i = 0; i < rec->n_zones; i++) {
		struct source_reading_zone *z = &ret->zones[i];

		/* A zone name has no ':', so it is no tree's id ("intel-rapl:0"). */
		snprintf(z->id, sizeof(z->id), "%s", rec->zones[i].name);
		snprintf(z->name, sizeof(z->name), "%s", rec->zones[i].name);
		z->is_package = streq(rec->zones[i].name, CHANNEL_ZONE_PACKAGE);
		z->energy_uj = rec->zones[i].energy_uj;
		/* Counters of the channel never wrap: one that went down was rebased. */
		z->limits = (struct counter_limits){ .kind = COUNTER_EXACT };
	}
	ret->has_heartbeat = true;
	ret->hb = (struct heartbeat){ .seq = rec->seq,
		.interval_ms = rec->interval_ms,
		.time_ms = rec->time_ms,
		.is_estimated = rec->is_estimated };
	snprintf(ret->instance, sizeof(ret->instance), "%s", rec->instance);
}

static int reader_take(struct source_reader *pub, struct source_reading *ret)
{
	struct channel_reader *c = (struct channel_reader *)pub;

	*ret = (struct source_reading){ 0 };
	if (c->future_version) {
		ret->error = -EPROTONOSUPPORT;
		snprintf(ret->problem, sizeof(ret->problem),
			"%s: record version %u not supported: upgrade powerd-guest", c->path,
			c->future_version);
	} else if (c->has_record) {
		/* Also while the port is closed: freshness judges how old the record is. */
		reading_of_record(&c->rec, ret);
	} else {
		ret->error = c->fd < 0 ? -ENOTCONN : -ENODATA;
		ret->is_closed = true;
		if (c->fd < 0)
			snprintf(ret->problem, sizeof(ret->problem), "%s", c->problem);
		else
			snprintf(ret->problem, sizeof(ret->problem), "%s: no record yet", c->path);
	}
	return 0;
}

static int reader_wait(struct source_reader *pub, uint64_t timeout_ns)
{
	return 0; /* a reading is always ready at once */
}

static bool reader_is_gone(const struct source_reader *pub)
{
	return ((const struct channel_reader *)pub)->is_gone;
}

static void reader_free(struct source_reader *pub)
{
	struct channel_reader *c = (struct channel_reader *)pub;

	if (!c)
		return;
	port_close(c);
	free(c->path);
	free(c);
}

static const struct source_reader_ops channel_reader_ops = {
	.request = reader_request,
	.take = reader_take,
	.wait = reader_wait,
	.is_gone = reader_is_gone,
	.free = reader_free,
};

int channel_reader_new(const char *path, struct event_base *base, struct source_reader **ret)
{
	struct channel_reader *c = xcalloc(1, sizeof(*c));

	c->pub = (struct source_reader){ .ops = &channel_reader_ops };
	c->path = xstrdup(path);
	c->base = base;
	c->fd = -1;
	*ret = &c->pub;
	return 0;
}
