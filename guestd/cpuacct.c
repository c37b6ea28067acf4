/* CPU time readers for in-guest attribution. All reads are bounded and relative to directory fds;
 * a process or unit that vanishes between listing and reading is simply skipped. */
#include "guestd/cpuacct.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/procstat.h"
#include "common/util.h"

#define PROC_STAT_MAX 8192
#define CMDLINE_MAX 1024

void cpu_samples_free(struct cpu_samples *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].key);
		free(s->v[i].unit);
		free(s->v[i].pid);
		free(s->v[i].comm);
		free(s->v[i].exe);
		free(s->v[i].cmdline);
	}
	free(s->v);
	*s = (struct cpu_samples){ 0 };
}

static struct cpu_sample *samples_add(struct cpu_samples *s)
{
	s->v = xreallocarray(s->v, s->n + 1, sizeof(*s->v));
	s->v[s->n] = (struct cpu_sample){ 0 };
	return &s->v[s->n++];
}

static int sample_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cpu_sample *)a)->key, ((const struct cpu_sample *)b)->key);
}

int cpuacct_parse_stat(const char *buf, uint64_t *ret_ns)
{
	struct cpu_times t;
	int r = procstat_parse_cpu(buf, strlen(buf), &t);

	if (r < 0)
		return r;
	*ret_ns = cpu_times_busy_ns(&t); /* steal excluded there: the vCPU did not run */
	return 0;
}

int cpuacct_busy_ns(const char *proc_root, uint64_t *ret_ns)
{
	_cleanup_free_ char *path = xasprintf("%s/stat", proc_root);
	_cleanup_close_ int fd =
		open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	char buf[PROC_STAT_MAX];
	size_t len;

	if (fd < 0)
		return -errno;
	/* /proc/stat is longer than the buffer on large machines: only its first line matters. */
	int r = pread_head(fd, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	return cpuacct_parse_stat(buf, ret_ns);
}

static bool is_file_at(int dirfd, const char *path)
{
	struct stat st;

	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

enum cgroup_layout cpuacct_cgroup_layout(const char *cgroup_root)
{
	_cleanup_close_ int fd = open(cgroup_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return CGROUP_LAYOUT_NONE;
	if (is_file_at(fd, "cgroup.controllers"))
		return CGROUP_LAYOUT_V2;
	/* v1 mounts cpu and cpuacct together ("cpu,cpuacct") on most distributions. */
	if (is_file_at(fd, "cpu,cpuacct/system.slice"))
		return CGROUP_LAYOUT_V1;
	if (is_file_at(fd, "cpuacct/system.slice"))
		return CGROUP_LAYOUT_V1_SPLIT;
	return CGROUP_LAYOUT_NONE;
}

static int read_v2_usage(int dirfd, uint64_t *ret_ns)
{
	char buf[1024];
	size_t len;
	int r = read_file_at(dirfd, "cpu.stat", buf, sizeof(buf), &len);

	if (r < 0)
		return r;
	return procstat_parse_cgroup_usage(buf, len, ret_ns);
}

static int read_v1_usage(int dirfd, uint64_t *ret_ns)
{
	char buf[64];
	size_t len;
	int r = read_file_at(dirfd, "cpuacct.usage", buf, sizeof(buf), &len);

	if (r < 0)
		return r;
	return parse_u64_content(buf, len, ret_ns);
}

/* systemd gives a cgroup to units of these types; a slice only groups others. */
static const char *const unit_suffixes[] = { ".service", ".scope", ".socket", ".mount", ".swap" };

/* Slices nest one level per dash ("a-b-c.slice" is in "a-b.slice"): real trees are a few deep. */
#define UNITS_DEPTH_MAX 16
/* Bounds the memory a hostile or runaway tree can make the walk take. */
#define UNITS_MAX 8192

static bool has_suffix(const char *name, const char *suffix)
{
	size_t len = strlen(name), slen = strlen(suffix);

	return len > slen && streq(name + len - slen, suffix);
}

static bool is_unit_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(unit_suffixes); i++)
		if (has_suffix(name, unit_suffixes[i]))
			return true;
	return false;
}

/* systemd prefixes a cgroup name with '_' where the unit name could clash with a cgroupfs file
 * ("cpu.service" is "_cpu.service", names starting with '.' or '_' get one too). */
static const char *unit_name_of(const char *cgroup_name)
{
	return cgroup_name[0] == '_' ? cgroup_name + 1 : cgroup_name;
}

struct units_walk {
	enum cgroup_layout layout;
	struct cpu_samples samples;
};

static void units_add(struct units_walk *w, int ufd, const char *cgroup_name)
{
	uint64_t ns;
	int r = w->layout == CGROUP_LAYOUT_V2 ? read_v2_usage(ufd, &ns) : read_v1_usage(ufd, &ns);

	/* A unit that stopped between listing and reading, or an unreadable one, is skipped. */
	if (r < 0 || w->samples.n >= UNITS_MAX)
		return;
	struct cpu_sample *c = samples_add(&w->samples);
	c->key = xstrdup(unit_name_of(cgroup_name));
	c->unit = xstrdup(c->key);
	c->cpu_ns = ns;
}

/* Every unit below the slice at dfd (taken over). A unit's usage already holds its sub-cgroups
 * (a delegated service, a container's own tree, the user manager's units): it is one consumer
 * and is not descended into, so no CPU time is counted twice. A slice's own usage is the sum of
 * its children (and what exited ones left): never a consumer. */
static void units_walk_slice(struct units_walk *w, int dfd, unsigned depth)
{
	DIR *d = fdopendir(dfd);

	if (!d) {
		close(dfd);
		return;
	}
	for (struct dirent *de; (de = readdir(d));) {
		bool is_slice = has_suffix(de->d_name, ".slice");

		if (!is_slice && !is_unit_name(de->d_name))
			continue;
		int cfd = openat(
			dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0)
			continue;
		if (!is_slice) {
			units_add(w, cfd, de->d_name);
			close(cfd);
		} else if (depth < UNITS_DEPTH_MAX) {
			units_walk_slice(w, cfd, depth + 1);
		} else {
			close(cfd);
		}
	}
	closedir(d);
}

/* Sorted by key, one entry per name (a unit name is unique in systemd; a duplicate can only come
 * from a tree that is not systemd's, and one label set must not be served twice). */
static void samples_sort_unique(struct cpu_samples *s)
{
	size_t j = 0;

	if (s->n == 0)
		return;
	qsort(s->v, s->n, sizeof(*s->v), sample_cmp);
	for (size_t i = 1; i < s->n; i++) {
		if (streq(s->v[i].key, s->v[j].key)) {
			free(s->v[i].key);
			free(s->v[i].unit);
			continue;
		}
		s->v[++j] = s->v[i];
	}
	s->n = j + 1;
}

int cpuacct_units(const char *cgroup_root, struct cpu_samples *ret)
{
	static const char *const hierarchy[] = {
		[CGROUP_LAYOUT_V2] = ".",
		[CGROUP_LAYOUT_V1] = "cpu,cpuacct",
		[CGROUP_LAYOUT_V1_SPLIT] = "cpuacct",
	};
	struct units_walk w = { .layout = cpuacct_cgroup_layout(cgroup_root) };

	if (w.layout == CGROUP_LAYOUT_NONE)
		return -ENOENT;
	_cleanup_free_ char *path = xasprintf("%s/%s", cgroup_root, hierarchy[w.layout]);
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* The root cgroup is "-.slice". */
	units_walk_slice(&w, dfd, 0);
	samples_sort_unique(&w.samples);
	*ret = w.samples;
	return 0;
}

/* The executable's full path, as Scaphandre's exe label carries it. */
static char *read_exe_path(int pfd)
{
	char target[4096];
	ssize_t n = readlinkat(pfd, "exe", target, sizeof(target) - 1);

	if (n <= 0)
		return xstrdup("");
	target[n] = '\0';
	return xstrdup(target);
}

static char *read_cmdline(int pfd)
{
	char buf[CMDLINE_MAX];
	_cleanup_close_ int fd = openat(pfd, "cmdline", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	size_t len = 0;

	if (fd < 0)
		return xstrdup("");
	/* Longer command lines are cut: a label value has no use for megabytes of arguments. */
	int r = pread_all(fd, buf, sizeof(buf), &len);
	if (r == -EFBIG)
		len = sizeof(buf) - 1; /* pread_all filled buf, but says so only by -EFBIG */
	else if (r < 0)
		return xstrdup("");
	while (len > 0 && buf[len - 1] == '\0')
		len--;
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	return xstrndup(buf, len);
}

static bool is_pid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

int cpuacct_processes(const char *proc_root, bool with_details, struct cpu_samples *ret)
{
	struct cpu_samples s = { 0 };
	int dfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		char buf[1024];
		size_t len;
		struct pid_stat st;

		if (!is_pid_name(de->d_name) || strlen(de->d_name) > 10)
			continue;
		_cleanup_close_ int pfd =
			openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (pfd < 0)
			continue;
		if (read_file_at(pfd, "stat", buf, sizeof(buf), &len) < 0)
			continue;
		if (procstat_parse_pid(buf, len, &st) < 0)
			continue;
		struct cpu_sample *c = samples_add(&s);
		/* Zero-padded so that key order is numeric pid order. */
		c->key = xasprintf("%010llu:%llu", strtoull(de->d_name, NULL, 10),
			(unsigned long long)st.start_ticks);
		c->pid = xstrdup(de->d_name);
		c->comm = xstrndup(st.comm, st.comm_len);
		c->cpu_ns = procstat_ticks_to_ns(st.cpu_ticks);
		if (with_details) {
			c->exe = read_exe_path(pfd);
			c->cmdline = read_cmdline(pfd);
		}
	}
	closedir(d);
	if (s.n)
		qsort(s.v, s.n, sizeof(*s.v), sample_cmp);
	*ret = s;
	return 0;
}
