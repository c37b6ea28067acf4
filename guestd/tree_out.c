/* Writing tree_out from the source's served totals. */
#include "guestd/tree_out.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/tree.h"
#include "common/util.h"

struct tree_out {
	char *path;
	int dir_fd;
	struct tree *tree;
	char (*names)[POWERCAP_NAME_MAX]; /* of tree, in its zone order */
	size_t n;
	uint64_t seq;
	bool has_failed; /* logged, until a write works again */
};

struct tree_out *tree_out_new(const char *path)
{
	struct tree_out *t = xcalloc(1, sizeof(*t));

	t->path = xstrdup(path);
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

/* The present zones in tree order: package-0 first. Their indexes into s->zones in idx. */
static size_t zones_pick(const struct source *s, size_t *idx)
{
	size_t n = 0;

	for (size_t pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < s->n_zones && n < POWERCAP_ZONES_MAX; i++) {
			const struct source_zone *z = &s->zones[i];
			bool is_first = streq(z->name, "package-0");

			if (z->is_present && (pass == 0) == is_first)
				idx[n++] = i;
		}
	return n;
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

static int out_open(struct tree_out *t, const struct source *s, const size_t *idx, size_t n)
{
	const char **names = xcalloc(n, sizeof(*names));
	int r;

	out_close(t);
	r = dir_open(t->path, &t->dir_fd);
	if (r >= 0) {
		for (size_t i = 0; i < n; i++)
			names[i] = s->zones[idx[i]].name;
		r = tree_open(t->dir_fd, names, n, &t->tree);
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
		r = names_differ(t, s, idx, n) ? out_open(t, s, idx, n) : 0;
		if (r >= 0) {
			uint64_t *total = xcalloc(n, sizeof(*total));
			struct heartbeat hb = { .seq = ++t->seq,
				.interval_ms = interval_ms,
				.time_ms = now_realtime_ms(),
				.is_estimated = s->is_estimated };

			for (size_t i = 0; i < n; i++)
				total[i] = s->zones[idx[i]].counter.total_uj;
			r = tree_write(t->tree, total, &hb);
			free(total);
		}
	}
	free(idx);
	if (r < 0) {
		if (!t->has_failed)
			log_warn("tree_out %s: cannot write: %s", t->path,
				r == -ENODATA ? "no package-0 zone" : strerror(-r));
		t->has_failed = true;
		out_close(t);
		return r;
	}
	if (t->has_failed)
		log_notice("tree_out %s: written again", t->path);
	t->has_failed = false;
	return 0;
}
