/* CPU time of a domain (its cgroup, else its qemu process) and the host's busy CPU time.
 * Paths are resolved once; every tick preads a kept fd and parses strictly. */
#include "hostd/cputime.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/procstat.h"
#include "common/util.h"

#define CGROUP_FILE_MAX 8192
#define MOUNTINFO_MAX (1024 * 1024)
#define CG_MOUNTS_MAX 16
#define READ_BUF 2048

struct cpu_source {
	enum cpu_source_kind kind;
	int fd;
	char *path;
	char *stat_path; /* proc_root/<pid>/stat */
	bool has_foreign_cgroup;
	bool has_cgroup_id; /* cg_dev/cg_ino name the cgroup file resolved, used or not */
	dev_t cg_dev;
	ino_t cg_ino;
	char buf[READ_BUF];
};

struct host_cpu {
	int fd;
	char *path;
	char buf[READ_BUF];
};

/* A cgroup hierarchy with CPU accounting: v2, or v1 with the cpuacct controller. */
struct cg_mount {
	bool is_v2;
	char *point; /* where it is mounted */
	char *root;  /* the cgroup seen at point: "/" unless the mount is of a subtree */
};

struct cg_mounts {
	struct cg_mount m[CG_MOUNTS_MAX];
	size_t n;
};

/* What cpu_mounts_read found: the hierarchies, and the proc root they were read from. */
struct cpu_mounts {
	char *proc_root;
	struct cg_mounts ms;
};

static void cg_mounts_done(struct cg_mounts *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		free(ms->m[i].point);
		free(ms->m[i].root);
	}
	ms->n = 0;
}

static void cg_mounts_add(struct cg_mounts *ms, bool is_v2, char *point, const char *root)
{
	if (ms->n == CG_MOUNTS_MAX) {
		free(point);
		return;
	}
	ms->m[ms->n].is_v2 = is_v2;
	ms->m[ms->n].point = point;
	ms->m[ms->n].root = xstrdup(root);
	ms->n++;
}

static bool endswith(const char *s, const char *suffix)
{
	size_t n = strlen(s), l = strlen(suffix);

	return n >= l && streq(s + n - l, suffix);
}

/* Strip one trailing "/<leaf>" component in place. */
static void strip_leaf(char *path, const char *leaf)
{
	size_t n = strlen(path), l = strlen(leaf);

	if (n > l && path[n - l - 1] == '/' && streq(path + n - l, leaf))
		path[n - l - 1] = '\0';
}

/* libvirt puts qemu's main thread in <scope>/libvirt/emulator (systemd) or
 * <dir>/emulator (cgroupfs); the domain's whole CPU time is in the scope or dir above. */
static int domain_cgroup_path(const char *raw, size_t len, char **ret)
{
	_cleanup_free_ char *p = xstrndup(raw, len);

	if (p[0] != '/' || strstr(p, "/../") || strstr(p, "/./") || strstr(p, "//") ||
		endswith(p, "/..") || endswith(p, "/."))
		return -EINVAL;
	strip_leaf(p, "emulator");
	strip_leaf(p, "libvirt");
	*ret = TAKE_PTR(p);
	return 0;
}

/* A domain's own cgroup as libvirt makes it: machine-qemu\x2d<id>\x2d<name>.scope (systemd) or
 * [qemu-<id>-]<name>.libvirt-qemu (cgroupfs), below machine.slice or machine/ (or a partition
 * there). Not the root, not libvirtd's cgroup, not a container's that holds libvirtd. */
static bool is_domain_cgroup(const char *p)
{
	const char *leaf = strrchr(p, '/');

	if (!leaf || !leaf[1])
		return false;
	leaf++;
	if (!endswith(leaf, ".libvirt-qemu") &&
		!(startswith(leaf, "machine-qemu") && endswith(leaf, ".scope")))
		return false;
	for (const char *c = p; c < leaf - 1;) {
		const char *e = strchr(c + 1, '/');
		size_t n = (size_t)(e - c - 1);
		if ((n == 13 && strncmp(c + 1, "machine.slice", 13) == 0) ||
			(n == 7 && strncmp(c + 1, "machine", 7) == 0))
			return true;
		c = e;
	}
	return false;
}

static bool has_option(const char *list, size_t len, const char *want)
{
	size_t wl = strlen(want);

	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && list[j] != ',')
			j++;
		if (j - i == wl && strncmp(list + i, want, wl) == 0)
			return true;
		i = j + 1;
	}
	return false;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo: decode in place. */
static void unescape_octal(char *s)
{
	char *o = s;

	for (char *i = s; *i;) {
		if (i[0] == '\\' && i[1] >= '0' && i[1] <= '3' && i[2] >= '0' && i[2] <= '7' &&
			i[3] >= '0' && i[3] <= '7') {
			*o++ = (char)((i[1] - '0') * 64 + (i[2] - '0') * 8 + (i[3] - '0'));
			i += 4;
		} else {
			*o++ = *i++;
		}
	}
	*o = '\0';
}

static bool is_under(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (streq(root, "/"))
		return path[0] == '/';
	return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* One mountinfo line: "id parent maj:min root point opts [tags...] - fstype source superopts". */
static void mountinfo_line(char *line, const char *cgroup_root, struct cg_mounts *ms)
{
	char *f[32];
	size_t n = 0, dash = 0;

	for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < ARRAY_SIZE(f);
		t = strtok_r(NULL, " ", &save))
		f[n++] = t;
	for (size_t i = 6; i < n && !dash; i++)
		if (streq(f[i], "-"))
			dash = i;
	if (!dash || dash + 3 >= n)
		return;
	const char *fstype = f[dash + 1], *super = f[dash + 3];
	bool is_v2 = streq(fstype, "cgroup2");
	if (!is_v2 && !(streq(fstype, "cgroup") && has_option(super, strlen(super), "cpuacct")))
		return;
	unescape_octal(f[3]);
	unescape_octal(f[4]);
	if (f[3][0] != '/' || !is_under(f[4], cgroup_root))
		return;
	cg_mounts_add(ms, is_v2, xstrdup(f[4]), f[3]);
}

/* The hierarchies with CPU accounting mounted at or below cgroup_root, from mountinfo; the
 * usual places if mountinfo cannot be read or shows none (fixture trees). */
static void cg_mounts_find(const char *proc_root, const char *cgroup_root, struct cg_mounts *ms)
{
	_cleanup_free_ char *root = xstrdup(cgroup_root);
	_cleanup_free_ char *mi = xasprintf("%s/self/mountinfo", proc_root);
	_cleanup_free_ char *buf = xmalloc(MOUNTINFO_MAX);
	size_t len;

	for (size_t n = strlen(root); n > 1 && root[n - 1] == '/'; n--)
		root[n - 1] = '\0';
	if (read_file_at(AT_FDCWD, mi, buf, MOUNTINFO_MAX, &len) == 0) {
		for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l;
			l = strtok_r(NULL, "\n", &save))
			mountinfo_line(l, root, ms);
		if (ms->n > 0)
			return;
	}
	static const char *const v1_dirs[] = { "cpuacct", "cpu,cpuacct", "cpuacct,cpu" };
	cg_mounts_add(ms, true, xstrdup(root), "/");
	cg_mounts_add(ms, true, xasprintf("%s/unified", root), "/");
	for (size_t i = 0; i < ARRAY_SIZE(v1_dirs); i++)
		cg_mounts_add(ms, false, xasprintf("%s/%s", root, v1_dirs[i]), "/");
}

int cpu_source_read(struct cpu_source *s, uint64_t *ret_ns)
{
	size_t len;
	struct pid_stat st;
	int r = pread_all(s->fd, s->buf, sizeof(s->buf), &len);

	if (r < 0)
		return r;
	switch (s->kind) {
	case CPU_SOURCE_CGROUP2:
		return procstat_parse_cgroup_usage(s->buf, len, ret_ns);
	case CPU_SOURCE_CGROUP1:
		return parse_u64_content(s->buf, len, ret_ns);
	case CPU_SOURCE_PROCESS:
		r = procstat_parse_pid(s->buf, len, &st);
		if (r < 0)
			return r;
		*ret_ns = procstat_ticks_to_ns(st.cpu_ticks);
		return 0;
	}
	return -EINVAL;
}

/* Open path as the source's kind and read it once; on failure the source is left closed. */
static int try_open(struct cpu_source *s, enum cpu_source_kind kind, const char *path)
{
	uint64_t ns;
	struct stat st;
	int r;

	s->kind = kind;
	s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (s->fd < 0)
		return -errno;
	r = fstat(s->fd, &st) < 0 ? -errno : cpu_source_read(s, &ns);
	if (r < 0) {
		log_debug("cputime: %s unusable: %s", path, strerror(-r));
		close(s->fd);
		s->fd = -1;
		return r;
	}
	free(s->path);
	s->path = xstrdup(path);
	if (kind != CPU_SOURCE_PROCESS) {
		s->has_cgroup_id = true;
		s->cg_dev = st.st_dev;
		s->cg_ino = st.st_ino;
	}
	return 0;
}

/* The cgroup file of the domain cgroup cg in mount m, NULL if the mount does not show it. */
static char *cgroup_file(const struct cg_mount *m, const char *cg)
{
	const char *file = m->is_v2 ? "cpu.stat" : "cpuacct.usage";

	if (!is_under(cg, m->root))
		return NULL;
	const char *rest = streq(m->root, "/") ? cg : cg + strlen(m->root);
	return xasprintf("%s%s/%s", streq(m->point, "/") ? "" : m->point, rest, file);
}

/* Try the hierarchy (v2 or v1) whose cgroup for pid is raw[0..len). */
static int open_hierarchy(struct cpu_source *s, const struct cg_mounts *ms, bool is_v2,
	const char *raw, size_t len, const char *own_cgroup)
{
	_cleanup_free_ char *cg = NULL;
	bool is_mounted = false;

	for (size_t i = 0; i < ms->n; i++)
		is_mounted |= ms->m[i].is_v2 == is_v2;
	if (!is_mounted || domain_cgroup_path(raw, len, &cg) < 0)
		return -ENOENT;
	if (own_cgroup ? !streq(cg, own_cgroup) : !is_domain_cgroup(cg)) {
		log_debug(
			"cputime: cgroup %s%s is not a domain's own", is_v2 ? "" : "cpuacct:", cg);
		s->has_foreign_cgroup = true;
		return -ENOENT;
	}
	for (size_t i = 0; i < ms->n; i++) {
		if (ms->m[i].is_v2 != is_v2)
			continue;
		_cleanup_free_ char *path = cgroup_file(&ms->m[i], cg);
		if (path && try_open(s, is_v2 ? CPU_SOURCE_CGROUP2 : CPU_SOURCE_CGROUP1, path) == 0)
			return 0;
	}
	return -ENOENT;
}

/* Find the v2 line ("0::<path>") or v1's cpuacct line of /proc/<pid>/cgroup. */
static bool find_line(const char *cgfile, bool is_v2, const char **ret, size_t *ret_len)
{
	for (const char *line = cgfile; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		const char *c1 = memchr(line, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
		if (c2) {
			size_t ctl_len = (size_t)(c2 - c1 - 1);
			bool match = is_v2 ? c1 - line == 1 && line[0] == '0' && ctl_len == 0
					   : has_option(c1 + 1, ctl_len, "cpuacct");
			if (match) {
				*ret = c2 + 1;
				*ret_len = len - (size_t)(c2 + 1 - line);
				return true;
			}
		}
		if (!end)
			break;
		line = end + 1;
	}
	return false;
}

/* ms: the hierarchies already read (a listing's), or NULL to read them now. */
static int open_cgroup(struct cpu_source *s, const char *proc_root, const char *cgroup_root,
	const struct cg_mounts *ms, const char *cgfile, const char *own_cgroup)
{
	struct cg_mounts own = { 0 };
	const char *raw;
	size_t len;
	int r = -ENOENT;

	if (!ms) {
		cg_mounts_find(proc_root, cgroup_root, &own);
		ms = &own;
	}
	if (find_line(cgfile, true, &raw, &len))
		r = open_hierarchy(s, ms, true, raw, len, own_cgroup);
	if (r < 0 && find_line(cgfile, false, &raw, &len))
		r = open_hierarchy(s, ms, false, raw, len, own_cgroup);
	cg_mounts_done(&own);
	if (r == 0)
		s->has_foreign_cgroup = false;
	return r;
}

struct cpu_mounts *cpu_mounts_read(const char *proc_root, const char *cgroup_root)
{
	struct cpu_mounts *m = xcalloc(1, sizeof(*m));

	m->proc_root = xstrdup(proc_root);
	cg_mounts_find(proc_root, cgroup_root, &m->ms);
	return m;
}

void cpu_mounts_free(struct cpu_mounts *m)
{
	if (!m)
		return;
	cg_mounts_done(&m->ms);
	free(m->proc_root);
	free(m);
}

int cpu_source_open(
	const char *proc_root, const char *cgroup_root, pid_t pid, struct cpu_source **ret)
{
	return cpu_source_open_in(proc_root, cgroup_root, pid, NULL, ret);
}

static int open_source(const char *proc_root, const char *cgroup_root, const struct cg_mounts *ms,
	pid_t pid, const char *own_cgroup, struct cpu_source **ret)
{
	_cleanup_free_ char *cgpath = NULL;
	_cleanup_free_ char *cgfile = NULL;
	struct cpu_source *s;
	size_t len;
	int r;

	if (pid <= 0)
		return -EINVAL;
	cgpath = xasprintf("%s/%d/cgroup", proc_root, (int)pid);
	cgfile = xmalloc(CGROUP_FILE_MAX);
	s = xcalloc(1, sizeof(*s));
	s->fd = -1;
	s->stat_path = xasprintf("%s/%d/stat", proc_root, (int)pid);
	if (read_file_at(AT_FDCWD, cgpath, cgfile, CGROUP_FILE_MAX, &len) == 0 &&
		open_cgroup(s, proc_root, cgroup_root, ms, cgfile, own_cgroup) == 0) {
		*ret = s;
		return 0;
	}
	r = try_open(s, CPU_SOURCE_PROCESS, s->stat_path);
	if (r < 0) {
		cpu_source_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

int cpu_source_open_in(const char *proc_root, const char *cgroup_root, pid_t pid,
	const char *own_cgroup, struct cpu_source **ret)
{
	return open_source(proc_root, cgroup_root, NULL, pid, own_cgroup, ret);
}

int cpu_source_open_with(
	const struct cpu_mounts *m, pid_t pid, const char *own_cgroup, struct cpu_source **ret)
{
	return open_source(m->proc_root, NULL, &m->ms, pid, own_cgroup, ret);
}

int cpu_source_use_process(struct cpu_source *s)
{
	int fd = s->fd;
	enum cpu_source_kind kind = s->kind;

	if (kind == CPU_SOURCE_PROCESS)
		return 0;
	int r = try_open(s, CPU_SOURCE_PROCESS, s->stat_path);
	if (r < 0) {
		/* keep reading the cgroup: a number that is too big beats none */
		s->kind = kind;
		s->fd = fd;
		return r;
	}
	close(fd);
	return 0;
}

const char *cpu_source_path(const struct cpu_source *s)
{
	return s->path;
}

enum cpu_source_kind cpu_source_kind(const struct cpu_source *s)
{
	return s->kind;
}

const char *cpu_source_kind_name(enum cpu_source_kind kind)
{
	switch (kind) {
	case CPU_SOURCE_CGROUP2:
		return "cgroup2";
	case CPU_SOURCE_CGROUP1:
		return "cgroup1";
	case CPU_SOURCE_PROCESS:
		return "process";
	}
	return "unknown";
}

bool cpu_source_has_foreign_cgroup(const struct cpu_source *s)
{
	return s->has_foreign_cgroup;
}

bool cpu_source_is_same_cgroup(const struct cpu_source *a, const struct cpu_source *b)
{
	return a->has_cgroup_id && b->has_cgroup_id && a->cg_dev == b->cg_dev &&
	       a->cg_ino == b->cg_ino;
}

void cpu_source_free(struct cpu_source *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s->stat_path);
	free(s);
}

int host_cpu_open(const char *proc_root, struct host_cpu **ret)
{
	struct host_cpu *h = xcalloc(1, sizeof(*h));
	uint64_t busy, all;

	h->path = xasprintf("%s/stat", proc_root);
	h->fd = open(h->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r = h->fd < 0 ? -errno : host_cpu_read(h, &busy, &all);
	if (r < 0) {
		log_err("cputime: cannot read %s: %s", h->path, strerror(-r));
		host_cpu_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

int host_cpu_read(struct host_cpu *h, uint64_t *ret_busy_ns, uint64_t *ret_all_ns)
{
	struct cpu_times t;
	size_t len;
	/* /proc/stat is long on big hosts (intr line): only its first line is needed */
	int r = pread_head(h->fd, h->buf, sizeof(h->buf), &len);

	if (r < 0)
		return r;
	r = procstat_parse_cpu(h->buf, len, &t);
	if (r < 0)
		return r;
	/* all needs iowait to steal: a line from before 2.6.11 lacks some */
	if (t.n_fields < 8)
		return -EINVAL;
	*ret_all_ns = cpu_times_all_ns(&t);
	*ret_busy_ns = cpu_times_busy_ns(&t);
	return 0;
}

void host_cpu_free(struct host_cpu *h)
{
	if (!h)
		return;
	if (h->fd >= 0)
		close(h->fd);
	free(h->path);
	free(h);
}
