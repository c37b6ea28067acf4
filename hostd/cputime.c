/* CPU time of a domain (its cgroup, else its qemu process) and the host's busy CPU time.
 * Paths are resolved once; every tick preads a kept fd and parses strictly. */
#include "hostd/cputime.h"

#include <fcntl.h>
#include <inttypes.h>

#include "common/log.h"
#include "common/procstat.h"
#include "common/util.h"

#define CGROUP_FILE_MAX 8192
#define READ_BUF 2048

enum cpu_kind { CPU_CGROUP2, CPU_CGROUP1, CPU_PROC_STAT };

struct cpu_source {
	enum cpu_kind kind;
	int fd;
	char *path;
	char buf[READ_BUF];
};

struct host_cpu {
	int fd;
	char *path;
	char buf[READ_BUF];
};

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

	if (p[0] != '/' || strstr(p, "/../") || strstr(p, "/./") ||
		(strlen(p) >= 3 && streq(p + strlen(p) - 3, "/..")))
		return -EINVAL;
	strip_leaf(p, "emulator");
	strip_leaf(p, "libvirt");
	/* the root cgroup is the whole host, not a domain */
	if (streq(p, "/") || p[0] == '\0')
		return -ENOENT;
	*ret = TAKE_PTR(p);
	return 0;
}

static bool has_controller(const char *list, size_t len, const char *want)
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

int cpu_source_read(struct cpu_source *s, uint64_t *ret_ns)
{
	size_t len;
	struct pid_stat st;
	int r = pread_all(s->fd, s->buf, sizeof(s->buf), &len);

	if (r < 0)
		return r;
	switch (s->kind) {
	case CPU_CGROUP2:
		return procstat_parse_cgroup_usage(s->buf, len, ret_ns);
	case CPU_CGROUP1:
		return parse_u64_content(s->buf, len, ret_ns);
	case CPU_PROC_STAT:
		r = procstat_parse_pid(s->buf, len, &st);
		if (r < 0)
			return r;
		*ret_ns = procstat_ticks_to_ns(st.cpu_ticks);
		return 0;
	}
	return -EINVAL;
}

static int try_open(struct cpu_source *s, enum cpu_kind kind, char *path)
{
	uint64_t ns;

	s->kind = kind;
	s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (s->fd < 0) {
		int r = -errno;
		free(path);
		return r;
	}
	s->path = path;
	int r = cpu_source_read(s, &ns);
	if (r < 0) {
		log_debug("cputime: %s unusable: %s", path, strerror(-r));
		close(s->fd);
		s->fd = -1;
		free(s->path);
		s->path = NULL;
	}
	return r;
}

/* The domain's cgroup from proc_root/<pid>/cgroup: the v2 line, else v1's cpuacct line. */
static int open_cgroup(struct cpu_source *s, const char *cgroup_root, const char *cgfile)
{
	for (int pass = 0; pass < 2; pass++) {
		for (const char *line = cgfile; *line;) {
			const char *end = strchr(line, '\n');
			size_t len = end ? (size_t)(end - line) : strlen(line);
			const char *c1 = memchr(line, ':', len);
			const char *c2 =
				c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
			if (c2) {
				size_t ctl_len = (size_t)(c2 - c1 - 1);
				bool is_v2 = c1 - line == 1 && line[0] == '0' && ctl_len == 0;
				bool is_v1 = !is_v2 && has_controller(c1 + 1, ctl_len, "cpuacct");
				_cleanup_free_ char *rel = NULL;
				if (((pass == 0 && is_v2) || (pass == 1 && is_v1)) &&
					domain_cgroup_path(
						c2 + 1, len - (size_t)(c2 + 1 - line), &rel) == 0) {
					char *path;
					if (is_v2)
						path = xasprintf("%s%s/cpu.stat", cgroup_root, rel);
					else
						path = xasprintf("%s/%.*s%s/cpuacct.usage",
							cgroup_root, (int)ctl_len, c1 + 1, rel);
					if (try_open(s, is_v2 ? CPU_CGROUP2 : CPU_CGROUP1, path) ==
						0)
						return 0;
				}
			}
			if (!end)
				break;
			line = end + 1;
		}
	}
	return -ENOENT;
}

int cpu_source_open(
	const char *proc_root, const char *cgroup_root, pid_t pid, struct cpu_source **ret)
{
	_cleanup_free_ char *cgpath = xasprintf("%s/%d/cgroup", proc_root, (int)pid);
	_cleanup_free_ char *cgfile = xmalloc(CGROUP_FILE_MAX);
	struct cpu_source *s = xcalloc(1, sizeof(*s));
	size_t len;
	int r;

	if (pid <= 0) {
		free(s);
		return -EINVAL;
	}
	s->fd = -1;
	if (read_file_at(AT_FDCWD, cgpath, cgfile, CGROUP_FILE_MAX, &len) == 0 &&
		open_cgroup(s, cgroup_root, cgfile) == 0) {
		*ret = s;
		return 0;
	}
	r = try_open(s, CPU_PROC_STAT, xasprintf("%s/%d/stat", proc_root, (int)pid));
	if (r < 0) {
		free(s);
		return r;
	}
	*ret = s;
	return 0;
}

const char *cpu_source_path(const struct cpu_source *s)
{
	return s->path;
}

void cpu_source_free(struct cpu_source *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
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
