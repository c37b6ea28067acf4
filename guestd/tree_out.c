/* Writing tree_out (and sysfs_out's class/powercap) from the source's served totals, and reading
 * back what a previous run wrote so that they never go back. */
#include "guestd/tree_out.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/channel_record.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/tree.h"
#include "common/util.h"

/* Beside the tree: the host instance its totals were counted from, and each zone's offset from
 * that instance's raw counter, so that a restarted powerd-guest can tell how much the host gave
 * while it was down. Rewritten only when it changes (a rebase), after the tree's values. */
#define STATE_FILE ".powerd-guest-state"
#define STATE_SIZE_MAX 8192

struct tree_out {
	const char *key; /* the config key, for messages */
	char *path;
	bool has_heartbeat;
	int dir_fd;
	struct tree *tree;
	char (*names)[POWERCAP_NAME_MAX]; /* of tree, in its zone order */
	size_t n;
	uint64_t seq;
	char *state;	 /* as last written, NULL before */
	bool has_failed; /* logged, until a write works again */
};

struct tree_out *tree_out_new(const char *key, const char *path, bool has_heartbeat)
{
	struct tree_out *t = xcalloc(1, sizeof(*t));

	t->key = key;
	t->path = xstrdup(path);
	t->has_heartbeat = has_heartbeat;
	t->dir_fd = -1;
	return t;
}

static void out_close(struct tree_out *t)
{
	tree_free(t->tree);
	t->tree = NULL;
	if (t->dir_fd >= 0)
		close(t->dir_fd);
	t->dir_fd = -1;
	free(t->names);
	t->names = NULL;
	t->n = 0;
	free(t->state);
	t->state = NULL;
}

void tree_out_free(struct tree_out *t)
{
	if (!t)
		return;
	out_close(t);
	free(t->path);
	free(t);
}

const char *tree_out_path(const struct tree_out *t)
{
	return t->path;
}

/* mkdir -p, 0755, never through a symlink at the last component. */
static int dir_open(const char *path, int *ret_fd)
{
	_cleanup_free_ char *p = xstrdup(path);

	for (char *slash = strchr(p + 1, '/');; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		/* Readers are other users: what is made here is 0755 whatever the umask. */
		if (mkdir(p, 0755) == 0)
			(void)chmod(p, 0755);
		else if (errno != EEXIST)
			return -errno;
		if (!slash)
			break;
		*slash = '/';
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

int tree_out_prepare(struct tree_out *t)
{
	int fd = -1;
	int r = dir_open(t->path, &fd);

	if (r < 0) {
		log_warn("%s %s: cannot create it: %s", t->key, t->path, strerror(-r));
		return r;
	}
	close(fd);
	return 0;
}

/* The zones in tree order: package-0 first, then every other zone in the order the source first
 * saw it (a previous run's tree order when seeded from it). A zone the source no longer has stays
 * with its last total: a zone's place, name and value never change under a reader. Their indexes
 * into s->zones in idx. */
static size_t zones_pick(const struct source *s, size_t *idx)
{
	size_t n = 0;

	for (size_t pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < s->n_zones && n < POWERCAP_ZONES_MAX; i++) {
			const struct source_zone *z = &s->zones[i];
			bool is_first = streq(z->name, "package-0");

			if ((z->is_present || z->has_base) && (pass == 0) == is_first)
				idx[n++] = i;
		}
	return n;
}

/* The state file's text for what is written now. */
static char *state_format(const struct source *s, const size_t *idx, size_t n)
{
	struct strbuf b = { 0 };

	strbuf_printf(&b, "version 1\n");
	if (s->instance[0])
		strbuf_printf(&b, "instance %s\n", s->instance);
	for (size_t i = 0; i < n; i++) {
		const struct source_zone *z = &s->zones[idx[i]];

		/* An offset only for a zone counted from this instance's raw value now. */
		if (s->instance[0] && z->is_present && z->counter.has_last)
			strbuf_printf(&b, "zone %s %" PRIu64 "\n", z->name,
				z->counter.total_uj - z->counter.last_raw);
	}
	return b.buf ? b.buf : xstrdup("");
}

static void state_write(struct tree_out *t, const struct source *s, const size_t *idx, size_t n)
{
	char *text = state_format(s, idx, n);

	if (t->state && streq(t->state, text)) {
		free(text);
		return;
	}
	int r = write_file_atomic_at(t->dir_fd, STATE_FILE, text);
	if (r < 0) {
		/* The trees are right; only a restart would lose the energy of its own downtime. */
		if (!t->has_failed)
			log_warn("%s %s: cannot write %s: %s", t->key, t->path, STATE_FILE,
				strerror(-r));
		free(text);
		return;
	}
	free(t->state);
	t->state = text;
}

static bool names_differ(
	const struct tree_out *t, const struct source *s, const size_t *idx, size_t n)
{
	if (!t->tree || n != t->n)
		return true;
	for (size_t i = 0; i < n; i++)
		if (!streq(t->names[i], s->zones[idx[i]].name))
			return true;
	return false;
}

static int out_open(struct tree_out *t, const struct source *s, const size_t *idx, size_t n,
	const uint64_t *total)
{
	const char **names = xcalloc(n, sizeof(*names));
	int r;

	out_close(t);
	r = dir_open(t->path, &t->dir_fd);
	if (r >= 0) {
		for (size_t i = 0; i < n; i++)
			names[i] = s->zones[idx[i]].name;
		/* Laid out with the values: a zone never shows 0 before its total. (What a
		 * previous run left was read back by tree_out_seed: the totals are not lower.) */
		r = tree_open_values(t->dir_fd, names, n, total, &t->tree);
	}
	if (r >= 0) {
		t->n = n;
		t->names = xcalloc(n, sizeof(*t->names));
		for (size_t i = 0; i < n; i++)
			snprintf(t->names[i], sizeof(t->names[i]), "%s", names[i]);
	}
	free(names);
	return r;
}

int tree_out_write(struct tree_out *t, const struct source *s, uint64_t interval_ms)
{
	size_t *idx = xcalloc(MAX(s->n_zones, 1), sizeof(*idx));
	size_t n = zones_pick(s, idx);
	int r = -ENODATA;

	if (n > 0 && streq(s->zones[idx[0]].name, "package-0")) {
		uint64_t *total = xcalloc(n, sizeof(*total));

		for (size_t i = 0; i < n; i++)
			total[i] = s->zones[idx[i]].counter.total_uj;
		r = names_differ(t, s, idx, n) ? out_open(t, s, idx, n, total) : 0;
		if (r >= 0) {
			struct heartbeat hb = { .seq = ++t->seq,
				.interval_ms = interval_ms,
				.time_ms = now_realtime_ms(),
				.is_estimated = s->is_estimated };

			r = tree_write(t->tree, total, t->has_heartbeat ? &hb : NULL);
		}
		free(total);
		/* After the values: a state newer than the tree could resume above it. */
		if (r >= 0)
			state_write(t, s, idx, n);
	}
	free(idx);
	if (r < 0) {
		if (!t->has_failed)
			log_warn("%s %s: cannot write: %s", t->key, t->path,
				r == -ENODATA ? "no package-0 zone" : strerror(-r));
		t->has_failed = true;
		out_close(t);
		return r;
	}
	if (t->has_failed)
		log_notice("%s %s: written again", t->key, t->path);
	t->has_failed = false;
	return 0;
}

/* The energy_uj of dir_fd/zone (a zone directory of the tree) if its name is there. */
static int zone_load(int dir_fd, const char *zone, struct source_seed_zone *ret)
{
	_cleanup_free_ char *name_path = xasprintf("%s/name", zone);
	_cleanup_free_ char *energy_path = xasprintf("%s/energy_uj", zone);
	char buf[POWERCAP_NAME_MAX + 2];
	size_t len;
	int r;

	*ret = (struct source_seed_zone){ 0 };
	r = read_file_at(dir_fd, name_path, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	if (len < 2 || len > sizeof(ret->name) || buf[len - 1] != '\n' || strlen(buf) != len)
		return -EINVAL;
	memcpy(ret->name, buf, len - 1);
	ret->name[len - 1] = '\0';
	r = read_file_at(dir_fd, energy_path, buf, sizeof(buf), &len);
	if (r == 0)
		r = parse_u64_content(buf, len, &ret->total_uj);
	return r;
}

/* "zone NAME OFFSET" lines of the state, for the instance it names. */
static void state_load(
	int dir_fd, struct source_seed_zone *zones, size_t n, char *instance, size_t instance_size)
{
	_cleanup_free_ char *text = xmalloc(STATE_SIZE_MAX);
	size_t len;

	if (read_file_at(dir_fd, STATE_FILE, text, STATE_SIZE_MAX, &len) < 0)
		return;
	for (char *line = text, *next; line && *line; line = next) {
		char *nl = strchr(line, '\n');
		char key[16], name[POWERCAP_NAME_MAX], value[33];
		uint64_t offset;

		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		if (sscanf(line, "instance %32s", value) == 1 &&
			channel_instance_is_valid(value, strlen(value))) {
			snprintf(instance, instance_size, "%s", value);
			continue;
		}
		if (sscanf(line, "%15s %63s %32s", key, name, value) != 3 || !streq(key, "zone") ||
			parse_u64(value, &offset) < 0)
			continue;
		for (size_t i = 0; i < n; i++)
			if (streq(zones[i].name, name)) {
				zones[i].has_offset = true;
				zones[i].offset_uj = offset;
			}
	}
}

int tree_out_seed(struct tree_out *t, struct source *s)
{
	struct source_seed_zone zones[POWERCAP_ZONES_MAX];
	char instance[33] = "";
	size_t n = 0;
	int r;

	_cleanup_close_ int dir_fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return errno == ENOENT ? 0 : -errno;
	for (size_t i = 0; i < POWERCAP_ZONES_MAX; i++) {
		_cleanup_free_ char *zone =
			i == 0 ? xstrdup("intel-rapl:0")
			       : xasprintf("intel-rapl:0/intel-rapl:0:%zu", i - 1);

		r = zone_load(dir_fd, zone, &zones[n]);
		if (r == -ENOENT || r == -ENOTDIR)
			break;
		if (r < 0) {
			/* What cannot be read cannot be resumed: that zone starts afresh. */
			log_warn("%s %s: %s: cannot read it back: %s", t->key, t->path, zone,
				strerror(-r));
			if (i == 0)
				return r;
			continue;
		}
		n++;
	}
	if (n == 0)
		return 0;
	state_load(dir_fd, zones, n, instance, sizeof(instance));
	source_seed(s, instance, zones, n);
	log_info("%s %s: going on from the %zu zones there (package-0 at %" PRIu64 " uJ)", t->key,
		t->path, n, zones[0].total_uj);
	return 0;
}
