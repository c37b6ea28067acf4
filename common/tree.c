/* Writing one domain's powercap-compatible tree (DESIGN.md §1). Everything is relative to
 * directory fds kept open from tree_open, opened with O_NOFOLLOW, and replaced by an exclusive
 * temporary plus rename, so whatever a guest plants in its share (symlinks, FIFOs, directories)
 * is replaced or makes a write fail; nothing is ever written through it. */
#include "common/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define PACKAGE_DIR "intel-rapl:0"
/* Temporaries are ".tmp.<pid>.<name>": the daemon and the hook's --prepare (or two daemons in
 * a test) never take or remove each other's; a dead process's are removed at tree_open. */
#define TMP_PREFIX ".tmp."
#define TMP_NAME_MAX (POWERCAP_NAME_MAX + sizeof(TMP_PREFIX) + 16)
/* How deep a planted directory may be before tree_open gives up removing it. */
#define RM_DEPTH_MAX 8

struct tree {
	int top_fd;
	size_t n;
	int *zone_fd; /* [0] is intel-rapl:0, [k] intel-rapl:0/intel-rapl:0:(k-1) */
	uint64_t *adopted_uj;
	char (*names)[POWERCAP_NAME_MAX];
	bool needs_fchmod; /* the umask strips bits of 0644: fix each new file */
};

static int rm_rf_at(int dirfd, const char *name, int depth);

static int rm_dir_contents(int fd, int depth)
{
	_cleanup_close_ int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (!d)
		return -errno;
	dfd = -1;
	int r = 0;
	for (struct dirent *de; (de = readdir(d));) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		int k = rm_rf_at(fd, de->d_name, depth + 1);
		if (k < 0 && r == 0)
			r = k;
	}
	closedir(d);
	return r;
}

/* Remove whatever dirfd/name is, a directory with its content too, never following links. */
static int rm_rf_at(int dirfd, const char *name, int depth)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth > RM_DEPTH_MAX)
		return -ELOOP;
	_cleanup_close_ int fd =
		openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = rm_dir_contents(fd, depth);
	if (r < 0)
		return r;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Open dirfd/name as a directory of ours, replacing a symlink, file or FIFO found there. */
static int open_dir_at(int dirfd, const char *name, int *ret_fd)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			struct stat st;
			if (fstat(fd, &st) == 0 && (st.st_mode & 07777) != 0755)
				(void)fchmod(fd, 0755);
			*ret_fd = fd;
			return 0;
		}
		if (errno == ENOTDIR || errno == ELOOP) {
			log_warn("tree: replacing non-directory %s", name);
			int r = rm_rf_at(dirfd, name, 0);
			if (r < 0)
				return r;
		} else if (errno != ENOENT) {
			return -errno;
		}
		if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
			return -errno;
	}
	return -ELOOP;
}

/* Atomically replace dirfd/name with content: exclusive temporary, then rename over. */
static int replace_at(struct tree *t, int dirfd, const char *name, const char *buf, size_t len)
{
	char tmp[TMP_NAME_MAX];
	int fd = -1, r;

	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%d.%s", (int)getpid(), name);
	for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			return -errno;
		/* a stale temporary from a crash, or one a guest planted: take it away */
		if (fd < 0 && (r = rm_rf_at(dirfd, tmp, 0)) < 0)
			return r;
	}
	if (fd < 0)
		return -EEXIST;
	r = write_all(fd, buf, len);
	if (r == 0 && t->needs_fchmod && fchmod(fd, 0644) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0) {
		r = -errno;
		/* a directory planted where a file belongs */
		if ((r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST) &&
			rm_rf_at(dirfd, name, 0) == 0)
			r = renameat(dirfd, tmp, dirfd, name) < 0 ? -errno : 0;
	}
	if (r < 0)
		(void)unlinkat(dirfd, tmp, 0);
	return r;
}

static int replace_u64_at(struct tree *t, int dirfd, const char *name, uint64_t v)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", v);

	return replace_at(t, dirfd, name, buf, (size_t)len);
}

/* replace_at unless dirfd/name already is a 0644 regular file holding content: reopening a
 * tree (a daemon restart) rewrites nothing that is right. */
static int ensure_at(struct tree *t, int dirfd, const char *name, const char *buf, size_t len)
{
	char have[POWERCAP_NAME_MAX + 2];
	struct stat st;
	size_t hlen;

	_cleanup_close_ int fd =
		openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0644 &&
		pread_all(fd, have, sizeof(have), &hlen) == 0 && hlen == len &&
		memcmp(have, buf, len) == 0)
		return 0;
	return replace_at(t, dirfd, name, buf, len);
}

/* The relative top-level link intel-rapl:0:K -> intel-rapl:0/intel-rapl:0:K. */
static int ensure_link(int top_fd, const char *id)
{
	char want[2 * POWERCAP_NAME_MAX], have[2 * POWERCAP_NAME_MAX];

	snprintf(want, sizeof(want), PACKAGE_DIR "/%s", id);
	ssize_t n = readlinkat(top_fd, id, have, sizeof(have) - 1);
	if (n >= 0) {
		have[n] = '\0';
		if (streq(have, want))
			return 0;
	}
	int r = rm_rf_at(top_fd, id, 0);
	if (r < 0)
		return r;
	if (symlinkat(want, top_fd, id) == 0)
		return 0;
	r = -errno;
	/* another process laying out the same tree made it meanwhile: fine if it is the same */
	n = readlinkat(top_fd, id, have, sizeof(have) - 1);
	if (r == -EEXIST && n >= 0) {
		have[n] = '\0';
		if (streq(have, want))
			return 0;
	}
	return r;
}

static void zone_id(size_t i, char *buf, size_t size)
{
	if (i == 0)
		snprintf(buf, size, PACKAGE_DIR);
	else
		snprintf(buf, size, PACKAGE_DIR ":%zu", i - 1);
}

/* The energy_uj a zone holds from before, if its name matches: counters continue. */
static uint64_t adopt(int zone_fd, const char *id, const char *name)
{
	char buf[64];
	size_t len;
	uint64_t v;
	int r;

	r = read_file_at(zone_fd, "name", buf, sizeof(buf), &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0 || len == 0 || buf[len - 1] != '\n' || strlen(buf) != len ||
		strncmp(buf, name, len - 1) != 0 || name[len - 1] != '\0') {
		log_warn("tree: zone %s was not \"%s\" before: energy_uj starts at 0", id, name);
		return 0;
	}
	r = read_file_at(zone_fd, "energy_uj", buf, sizeof(buf), &len);
	if (r == -ENOENT)
		return 0;
	if (r == 0)
		r = parse_u64_content(buf, len, &v);
	if (r == 0 && v >= TREE_MAX_ENERGY_RANGE_UJ)
		r = -ERANGE;
	if (r < 0) {
		log_warn(
			"tree: zone %s: cannot adopt energy_uj: %s: starts at 0", id, strerror(-r));
		return 0;
	}
	return v;
}

static bool umask_strips_0644(int top_fd)
{
	/* Reading the umask means setting it; a probe file tells without touching process state. */
	char probe[TMP_NAME_MAX];
	struct stat st;
	bool strips = true;

	snprintf(probe, sizeof(probe), TMP_PREFIX "%d.umask-probe", (int)getpid());
	(void)unlinkat(top_fd, probe, 0);
	int fd = openat(top_fd, probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return true;
	if (fstat(fd, &st) == 0)
		strips = (st.st_mode & 0777) != 0644;
	close(fd);
	(void)unlinkat(top_fd, probe, 0);
	return strips;
}

/* A temporary no live process owns: another's whose pid is gone, or one of the names older
 * versions shared (no pid). Ours are replaced where they are made. */
static bool is_stale_temporary(const char *name)
{
	const char *p = name + strlen(TMP_PREFIX);
	char *end;

	if (!startswith(name, TMP_PREFIX))
		return false;
	errno = 0;
	long pid = strtol(p, &end, 10);
	if (end == p || *end != '.' || errno || pid <= 0 || pid > INT32_MAX)
		return true;
	return pid != getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void remove_stale_temporaries(int dirfd)
{
	_cleanup_close_ int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d)
		return;
	fd = -1;
	for (struct dirent *de; (de = readdir(d));)
		if (is_stale_temporary(de->d_name))
			(void)rm_rf_at(dirfd, de->d_name, 0);
	closedir(d);
}

/* Lay out every zone: directories, links, name and max_energy_range_uj, and energy_uj, which
 * is adopted from the tree when total_uj is NULL (open), else rewritten from it (repair). */
static int layout(struct tree *t, const uint64_t *total_uj)
{
	char id[POWERCAP_NAME_MAX];
	int r;

	for (size_t i = 0; i < t->n; i++) {
		if (t->zone_fd[i] >= 0)
			close(t->zone_fd[i]);
		t->zone_fd[i] = -1;
	}
	for (size_t i = 0; i < t->n; i++) {
		zone_id(i, id, sizeof(id));
		r = open_dir_at(i == 0 ? t->top_fd : t->zone_fd[0], id, &t->zone_fd[i]);
		if (r < 0)
			goto fail;
		if (i > 0 && (r = ensure_link(t->top_fd, id)) < 0)
			goto fail;
		uint64_t energy =
			total_uj ? total_uj[i] % TREE_MAX_ENERGY_RANGE_UJ
				 : (t->adopted_uj[i] = adopt(t->zone_fd[i], id, t->names[i]));
		char name_line[POWERCAP_NAME_MAX + 1], max_line[32], energy_line[32];
		int len = snprintf(name_line, sizeof(name_line), "%s\n", t->names[i]);
		int max_len = snprintf(
			max_line, sizeof(max_line), "%" PRIu64 "\n", TREE_MAX_ENERGY_RANGE_UJ);
		int energy_len =
			snprintf(energy_line, sizeof(energy_line), "%" PRIu64 "\n", energy);
		if ((r = ensure_at(t, t->zone_fd[i], "name", name_line, (size_t)len)) < 0 ||
			(r = ensure_at(t, t->zone_fd[i], "max_energy_range_uj", max_line,
				 (size_t)max_len)) < 0 ||
			(r = ensure_at(t, t->zone_fd[i], "energy_uj", energy_line,
				 (size_t)energy_len)) < 0)
			goto fail;
	}
	return 0;
fail:
	log_warn("tree: cannot lay out zone %s: %s", id, strerror(-r));
	return r;
}

int tree_open(int dirfd, const char *const *names, size_t n, struct tree **ret)
{
	return tree_open_values(dirfd, names, n, NULL, ret);
}

int tree_open_values(
	int dirfd, const char *const *names, size_t n, const uint64_t *total_uj, struct tree **ret)
{
	int r;

	if (n == 0 || n > POWERCAP_ZONES_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!names[i] || !*names[i] || strlen(names[i]) >= POWERCAP_NAME_MAX ||
			strchr(names[i], '\n'))
			return -EINVAL;

	struct tree *t = xcalloc(1, sizeof(*t));
	t->n = n;
	t->zone_fd = xcalloc(n, sizeof(int));
	t->adopted_uj = xcalloc(n, sizeof(uint64_t));
	t->names = xcalloc(n, sizeof(*t->names));
	for (size_t i = 0; i < n; i++) {
		t->zone_fd[i] = -1;
		snprintf(t->names[i], sizeof(t->names[i]), "%s", names[i]);
	}
	t->top_fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->top_fd < 0) {
		r = -errno;
		goto fail;
	}
	remove_stale_temporaries(t->top_fd);
	t->needs_fchmod = umask_strips_0644(t->top_fd);
	r = layout(t, total_uj);
	for (size_t i = 0; r == 0 && i < t->n; i++)
		remove_stale_temporaries(t->zone_fd[i]);
	if (r < 0)
		goto fail;
	*ret = t;
	return 0;
fail:
	tree_free(t);
	return r;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		if (t->zone_fd[i] >= 0)
			close(t->zone_fd[i]);
	if (t->top_fd >= 0)
		close(t->top_fd);
	free(t->zone_fd);
	free(t->adopted_uj);
	free(t->names);
	free(t);
}

uint64_t tree_adopted_uj(const struct tree *t, size_t i)
{
	return i < t->n ? t->adopted_uj[i] : 0;
}

int tree_write(struct tree *t, const uint64_t *total_uj, const struct heartbeat *hb)
{
	char buf[256];
	int r = 0;

	for (size_t i = 0; i < t->n && r == 0; i++)
		r = replace_u64_at(
			t, t->zone_fd[i], "energy_uj", total_uj[i] % TREE_MAX_ENERGY_RANGE_UJ);
	/* the guest removed or moved part of its tree: lay it out again from the top */
	if (r < 0)
		r = layout(t, total_uj);
	if (hb) {
		size_t len = heartbeat_format(hb, buf, sizeof(buf));
		int k = replace_at(t, t->top_fd, POWERCAP_HEARTBEAT_FILE, buf, len);
		if (k < 0 && r == 0)
			r = k;
	}
	return r;
}
