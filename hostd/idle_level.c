/* The learned idle level of idle_power: host, per zone, and the small file that keeps it. */
#include "hostd/idle_level.h"

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "hostd/mounts.h"
#include "hostd/sensor.h"

#define IDLE_LEVEL_FILE_MAX 4096
/* A zone's level above this (1 MW) is garbage, not a level */
#define IDLE_LEVEL_UW_MAX (UINT64_C(1000000) * 1000000)

struct zone_level {
	uint64_t uw;
	bool has_level;
	bool has_idled;
};

struct idle_level {
	char *dir; /* share_dir/.powerd, NULL: nothing kept */
	const char *const *names;
	size_t n;
	struct zone_level z[SENSOR_ZONES_MAX];
	bool is_loaded;
	bool is_dirty;
	bool is_save_failing;
	bool has_saved;
	uint64_t last_save_ns;
};

struct idle_level *idle_level_new(const char *share_dir, const char *const *names, size_t n)
{
	struct idle_level *l = xcalloc(1, sizeof(*l));

	l->dir = share_dir ? xasprintf("%s/" MOUNTS_PRIVATE_DIR, share_dir) : NULL;
	l->names = names;
	l->n = MIN(n, (size_t)SENSOR_ZONES_MAX);
	return l;
}

static int save(struct idle_level *l)
{
	_cleanup_close_ int dirfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	_cleanup_free_ char *content = idle_level_format(l);
	return write_file_atomic_at(dirfd, IDLE_LEVEL_FILE, content);
}

static void save_logged(struct idle_level *l, uint64_t now_ns)
{
	int r = save(l);

	if (r < 0) {
		if (!l->is_save_failing)
			log_warn("cannot keep the idle level in %s/" IDLE_LEVEL_FILE ": %s", l->dir,
				strerror(-r));
		l->is_save_failing = true;
		return;
	}
	if (l->is_save_failing)
		log_info("idle level kept in %s/" IDLE_LEVEL_FILE " again", l->dir);
	l->is_save_failing = false;
	l->is_dirty = false;
	l->has_saved = true;
	l->last_save_ns = now_ns;
}

void idle_level_free(struct idle_level *l)
{
	if (!l)
		return;
	if (l->dir && l->is_loaded && l->is_dirty)
		save_logged(l, 0);
	free(l->dir);
	free(l);
}

static void load(struct idle_level *l)
{
	char buf[IDLE_LEVEL_FILE_MAX];
	size_t len;
	_cleanup_close_ int dirfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dirfd < 0)
		return; /* share_dir/.powerd not made yet: the next tick tries again */
	l->is_loaded = true;
	int r = read_file_at(dirfd, IDLE_LEVEL_FILE, buf, sizeof(buf), &len);
	if (r == -ENOENT)
		return;
	if (r == 0)
		r = idle_level_parse(l, buf, len);
	if (r < 0) {
		log_warn("%s/" IDLE_LEVEL_FILE
			 ": cannot use it (%s): the idle level is learned anew",
			l->dir, strerror(-r));
		return;
	}
	for (size_t z = 0; z < l->n; z++)
		if (l->z[z].has_level)
			log_info("idle level of %s: %.3f W from %s/" IDLE_LEVEL_FILE "%s",
				l->names[z], (double)l->z[z].uw / 1e6, l->dir,
				l->z[z].has_idled ? "" : " (still learning: not seen idle yet)");
}

void idle_level_sync(struct idle_level *l, uint64_t now_ns)
{
	if (!l->dir)
		return;
	if (!l->is_loaded) {
		load(l);
		return;
	}
	if (l->is_dirty && (!l->has_saved || now_ns - l->last_save_ns >= IDLE_LEVEL_SAVE_NS))
		save_logged(l, now_ns);
}

void idle_level_observe(struct idle_level *l, size_t z, double power_w, double util)
{
	if (z >= l->n || !isfinite(power_w) || power_w < 0)
		return;
	struct zone_level *zl = &l->z[z];
	uint64_t uw = (uint64_t)MIN(power_w * 1e6, (double)IDLE_LEVEL_UW_MAX);
	bool is_quiet = util <= IDLE_LEVEL_IDLE_UTIL;

	if (!zl->has_level || uw < zl->uw) {
		zl->uw = uw;
		zl->has_level = true;
		l->is_dirty = true;
	}
	if (is_quiet && !zl->has_idled) {
		zl->has_idled = true;
		l->is_dirty = true;
	}
}

bool idle_level_get(const struct idle_level *l, size_t z, double *ret_w)
{
	if (z >= l->n || !l->z[z].has_level)
		return false;
	*ret_w = (double)l->z[z].uw / 1e6;
	return true;
}

bool idle_level_is_learning(const struct idle_level *l, size_t z)
{
	return z >= l->n || !l->z[z].has_idled;
}

static size_t zone_by_name(const struct idle_level *l, const char *name, size_t len)
{
	for (size_t z = 0; z < l->n; z++)
		if (strlen(l->names[z]) == len && memcmp(l->names[z], name, len) == 0)
			return z;
	return SIZE_MAX;
}

/* "<name> <µW> <0|1>" */
static void parse_line(struct idle_level *l, const char *line, size_t len)
{
	const char *sp1 = memchr(line, ' ', len);
	if (!sp1 || sp1 == line)
		return;
	size_t z = zone_by_name(l, line, (size_t)(sp1 - line));
	const char *v = sp1 + 1;
	size_t vlen = len - (size_t)(v - line);
	const char *sp2 = memchr(v, ' ', vlen);
	uint64_t uw, idled;
	if (z == SIZE_MAX || !sp2 || parse_u64_span(v, (size_t)(sp2 - v), &uw) < 0 ||
		parse_u64_span(sp2 + 1, vlen - (size_t)(sp2 + 1 - v), &idled) < 0 ||
		uw > IDLE_LEVEL_UW_MAX || idled > 1)
		return;
	l->z[z] = (struct zone_level){ .uw = uw, .has_level = true, .has_idled = idled == 1 };
}

int idle_level_parse(struct idle_level *l, const char *buf, size_t len)
{
	size_t pos = 0;
	bool has_version = false;

	if (memchr(buf, '\0', len))
		return -EINVAL;
	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos;

		pos += llen + (nl ? 1 : 0);
		if (!has_version) {
			if (llen != 9 || memcmp(line, "version 1", 9) != 0)
				return -EPROTONOSUPPORT;
			has_version = true;
			continue;
		}
		parse_line(l, line, llen);
	}
	return has_version ? 0 : -EINVAL;
}

char *idle_level_format(const struct idle_level *l)
{
	struct strbuf b = { 0 };

	strbuf_puts(&b, "version 1\n");
	for (size_t z = 0; z < l->n; z++)
		if (l->z[z].has_level)
			strbuf_printf(&b, "%s %" PRIu64 " %d\n", l->names[z], l->z[z].uw,
				l->z[z].has_idled ? 1 : 0);
	return b.buf; /* the caller owns it now */
}
