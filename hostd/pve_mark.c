/* Port marks in Proxmox VE's cluster file system (pve_mark.h). */
#include "hostd/pve_mark.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "hostd/pve_conf.h"
#include "hostd/pve_port.h"

#define MARK_SUFFIX ".port"

/* config_dir without its last n components, by text: /etc/pve/local is a symlink to
 * nodes/<node> in pmxcfs, so ".." through it would name /etc/pve/nodes. */
static char *up(const char *config_dir, int n)
{
	char *s = xstrdup(config_dir);

	for (int i = 0; i < n; i++) {
		size_t len = strlen(s);
		while (len > 1 && s[len - 1] == '/')
			s[--len] = '\0';
		char *slash = strrchr(s, '/');
		if (!slash) {
			free(s);
			return xstrdup(".");
		}
		if (slash == s)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	return s;
}

static char *own_dir(const char *config_dir)
{
	_cleanup_free_ char *local = up(config_dir, 1);

	return xasprintf("%s/" PVE_MARK_DIR, local);
}

static char *mark_name(uint32_t vmid)
{
	return xasprintf("%u" MARK_SUFFIX, vmid);
}

bool pve_mark_node_is_valid(const char *node)
{
	size_t n = strlen(node);

	if (n == 0 || n > PVE_NODE_NAME_MAX || node[0] == '-' || node[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((node[i] >= 'a' && node[i] <= 'z') || (node[i] >= 'A' && node[i] <= 'Z') ||
			    (node[i] >= '0' && node[i] <= '9') || node[i] == '-' || node[i] == '.'))
			return false;
	return !strstr(node, "..");
}

int pve_mark_dir_make(const char *config_dir)
{
	_cleanup_free_ char *dir = own_dir(config_dir);

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int open_own(const char *config_dir)
{
	_cleanup_free_ char *dir = own_dir(config_dir);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* This node's marks directory, made if missing: its fd. */
static int open_own_made(const char *config_dir)
{
	int r = pve_mark_dir_make(config_dir);

	return r < 0 ? r : open_own(config_dir);
}

/* The pid a mark's content names ("pid 1234\n"). */
static int parse_mark(const char *buf, pid_t *ret)
{
	uint64_t v;
	size_t len = strlen(buf);

	if (!startswith(buf, "pid ") || len < 6 || buf[len - 1] != '\n' ||
		parse_u64_span(buf + 4, len - 5, &v) < 0 || v == 0 || v > INT32_MAX)
		return -EBADMSG;
	*ret = (pid_t)v;
	return 0;
}

static int get_at(int dirfd, uint32_t vmid, pid_t *ret)
{
	_cleanup_free_ char *name = mark_name(vmid);
	char buf[64];
	size_t len;
	int r = read_file_at(dirfd, name, buf, sizeof(buf), &len);

	if (r < 0)
		return r == -EFBIG ? -EBADMSG : r;
	return parse_mark(buf, ret);
}

int pve_mark_set(const char *config_dir, uint32_t vmid, pid_t pid)
{
	_cleanup_free_ char *name = mark_name(vmid);
	_cleanup_free_ char *content = xasprintf("pid %d\n", (int)pid);
	_cleanup_close_ int fd = open_own_made(config_dir);

	if (fd < 0)
		return fd;
	return write_file_atomic_at(fd, name, content);
}

int pve_mark_probe(const char *config_dir)
{
	static const char probe[] = ".probe"; /* not a mark: pve_mark_each passes it over */
	_cleanup_close_ int fd = open_own_made(config_dir);
	int r;

	if (fd < 0)
		return fd;
	r = write_file_atomic_at(fd, probe, "");
	if (r < 0)
		return r;
	return unlinkat(fd, probe, 0) < 0 ? -errno : 0;
}

int pve_mark_clear(const char *config_dir, uint32_t vmid, pid_t pid)
{
	_cleanup_free_ char *name = mark_name(vmid);
	_cleanup_close_ int fd = open_own(config_dir);
	pid_t marked;

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	if (pid > 0) {
		int r = get_at(fd, vmid, &marked);
		if (r == -ENOENT || (r == 0 && marked != pid))
			return 0;
	}
	if (unlinkat(fd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int pve_mark_get(const char *config_dir, uint32_t vmid, pid_t *ret)
{
	_cleanup_close_ int fd = open_own(config_dir);

	if (fd < 0)
		return fd;
	return get_at(fd, vmid, ret);
}

int pve_mark_peer(const char *config_dir, const char *node, uint32_t vmid, enum pve_mark_peer *ret,
	char *err, size_t err_size)
{
	_cleanup_free_ char *root = up(config_dir, 2);
	_cleanup_free_ char *dir = NULL;
	pid_t pid;

	err[0] = '\0';
	if (!pve_mark_node_is_valid(node)) {
		snprintf(err, err_size, "source node \"%.64s\" is not a node name", node);
		return -EINVAL;
	}
	dir = xasprintf("%s/nodes/%s/" PVE_MARK_DIR, root, node);
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		snprintf(err, err_size, "%s does not exist: node %s keeps no powerd port marks",
			dir, node);
		*ret = PVE_MARK_PEER_UNKNOWN;
		return 0;
	}
	if (fd < 0) {
		snprintf(err, err_size, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	int r = get_at(fd, vmid, &pid);
	if (r == -ENOENT) {
		snprintf(err, err_size, "%s/%u" MARK_SUFFIX " does not exist", dir, vmid);
		*ret = PVE_MARK_PEER_NO_PORT;
		return 0;
	}
	if (r < 0) {
		snprintf(err, err_size, "%s/%u" MARK_SUFFIX ": %s", dir, vmid,
			r == -EBADMSG ? "not a port mark" : strerror(-r));
		return r;
	}
	snprintf(err, err_size, "%s/%u" MARK_SUFFIX ": pid %d", dir, vmid, (int)pid);
	*ret = PVE_MARK_PEER_PORT;
	return 0;
}

int pve_mark_each(const char *config_dir, void (*fn)(uint32_t vmid, void *arg), void *arg)
{
	_cleanup_close_ int fd = open_own(config_dir);
	struct dirent *e;
	DIR *dp;

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	dp = fdopendir(fd);
	if (!dp)
		return -errno;
	fd = -1; /* the DIR owns it */
	while ((e = readdir(dp))) {
		size_t n = strlen(e->d_name), l = strlen(MARK_SUFFIX);
		uint32_t vmid;
		if (n <= l || !streq(e->d_name + n - l, MARK_SUFFIX) ||
			!pve_vmid_parse(e->d_name, n - l, &vmid))
			continue;
		fn(vmid, arg);
	}
	closedir(dp);
	return 0;
}

int pve_mark_failed(const char *config_dir, const char *run_dir, uint32_t vmid, pid_t pid, int mr)
{
	char err[256];
	pid_t marked;
	int r = pve_mark_get(config_dir, vmid, &marked);

	if (r == 0 && pid > 0 && marked == pid)
		return 0; /* only renewed */
	if (r != -ENOENT) {
		log_warn(
			"VM %u: cannot mark its port in %s (powerd-host writes it once it can): %s",
			vmid, config_dir, strerror(-mr));
		return 0;
	}
	r = pve_port_unplug(run_dir, vmid, PVE_PORT_HOOK_TIMEOUT_MS, err, sizeof(err));
	if (r < 0) {
		log_err("VM %u: its port mark was not written in %s (%s) and its port could not be "
			"taken out again (%s): migrating it now would lose the guest; run "
			"'powerd-host detach %u --channel'",
			vmid, config_dir, strerror(-mr), err, vmid);
		return r;
	}
	log_warn("VM %u: port mark not written in %s (%s): port taken out again (powerd-host plugs "
		 "it once the mark can be written)",
		vmid, config_dir, strerror(-mr));
	return 1;
}
