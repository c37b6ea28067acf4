/* powerd-host's configuration: defaults, the schema of DESIGN.md §3, loading, domain filter. */
#include "hostd/host_config.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* clang-format off */
static const char *const idle_policy_names[] = { "shared", "host", NULL };
static const char *const channel_mode_names[] = { "auto", "off", NULL };
static const char *const manager_names[] = { "auto", "libvirt", "proxmox", NULL };
/* Indexed from LOG_ERR: the loader stores an index, host_config_load turns it into a level. */
static const char *const log_level_names[] = { "error", "warning", "notice", "info", "debug", NULL };

static const struct config_key domains_keys[] = {
	{ .name = "include", .type = CONFIG_STRV, .offset = offsetof(struct host_config, include) },
	{ .name = "exclude", .type = CONFIG_STRV, .offset = offsetof(struct host_config, exclude) },
	{ 0 },
};

static const struct config_key estimate_keys[] = {
	{ .name = "idle_watts", .type = CONFIG_DOUBLE,
	  .offset = offsetof(struct host_config, idle_watts), .dmin = 0, .dmax = 100000 },
	{ .name = "max_watts", .type = CONFIG_DOUBLE,
	  .offset = offsetof(struct host_config, max_watts), .dmin = 0, .dmax = 100000 },
	{ 0 },
};

static const struct config_key proxmox_keys[] = {
	{ .name = "config_dir", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, pve_config_dir), .check = config_check_abs_path },
	{ .name = "run_dir", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, pve_run_dir), .check = config_check_abs_path },
	{ .name = "lock_dir", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, pve_lock_dir), .check = config_check_abs_path },
	{ 0 },
};

const struct config_key host_config_schema[] = {
	{ .name = "manager", .type = CONFIG_ENUM,
	  .offset = offsetof(struct host_config, manager), .enum_names = manager_names },
	{ .name = "proxmox", .type = CONFIG_MAP, .children = proxmox_keys },
	{ .name = "libvirt_uri", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, libvirt_uri) },
	{ .name = "interval", .type = CONFIG_DURATION_MS,
	  .offset = offsetof(struct host_config, interval_ms), .min = 100, .max = 3600 * 1000 },
	{ .name = "share_dir", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, share_dir), .check = config_check_abs_path },
	{ .name = "tmpfs_size", .type = CONFIG_SIZE,
	  .offset = offsetof(struct host_config, tmpfs_size), .min = 64 << 10, .max = 1 << 30 },
	{ .name = "domains", .type = CONFIG_MAP, .children = domains_keys },
	{ .name = "powercap_root", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, powercap_root), .check = config_check_abs_path },
	{ .name = "proc_root", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, proc_root), .check = config_check_abs_path },
	{ .name = "cgroup_root", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, cgroup_root), .check = config_check_abs_path },
	{ .name = "idle_power", .type = CONFIG_ENUM,
	  .offset = offsetof(struct host_config, idle_power), .enum_names = idle_policy_names },
	{ .name = "estimate", .type = CONFIG_MAP, .children = estimate_keys },
	{ .name = "channel", .type = CONFIG_ENUM,
	  .offset = offsetof(struct host_config, channel), .enum_names = channel_mode_names },
	{ .name = "metrics_listen", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, metrics_listen), .check = config_check_listen },
	{ .name = "status_socket", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, status_socket) },
	{ .name = "log_level", .type = CONFIG_ENUM,
	  .offset = offsetof(struct host_config, log_level), .enum_names = log_level_names },
	{ 0 },
};
/* clang-format on */

void host_config_init(struct host_config *c)
{
	*c = (struct host_config){
		.manager = MANAGER_AUTO,
		.pve_config_dir = xstrdup(HOST_PVE_CONFIG_DIR),
		.pve_run_dir = xstrdup(HOST_PVE_RUN_DIR),
		.pve_lock_dir = xstrdup(HOST_PVE_LOCK_DIR),
		.libvirt_uri = xstrdup("qemu:///system"),
		.interval_ms = 1000,
		.share_dir = xstrdup("/var/lib/libvirt/scaphandre"),
		.tmpfs_size = 5 << 20,
		.powercap_root = xstrdup("/sys/class/powercap"),
		.proc_root = xstrdup("/proc"),
		.cgroup_root = xstrdup("/sys/fs/cgroup"),
		.idle_power = IDLE_POLICY_SHARED,
		.channel = CHANNEL_MODE_AUTO,
		.metrics_listen = xstrdup("127.0.0.1:9731"),
		.status_socket = xstrdup(HOST_CONFIG_STATUS_SOCKET),
		.log_level = LOG_INFO,
	};
	c->include.v = xcalloc(2, sizeof(char *));
	c->include.v[0] = xstrdup("*");
	c->include.n = 1;
	c->exclude.v = xcalloc(1, sizeof(char *));
}

void host_config_free(struct host_config *c)
{
	if (!c)
		return;
	config_free(host_config_schema, c);
	/* config_free owns every string and list; leave nothing dangling for a second call */
	memset(c, 0, sizeof(*c));
}

int host_config_load(
	const char *path, bool is_default_path, struct host_config *c, char *err, size_t err_size)
{
	struct host_config scratch = *c;
	int r;

	config_copy(host_config_schema, &scratch, c);
	scratch.log_level -= LOG_ERR;
	r = config_load_file(path, host_config_schema, &scratch, err, err_size);
	scratch.log_level += LOG_ERR;
	if (r == -ENOENT && is_default_path) {
		config_free(host_config_schema, &scratch);
		if (err_size)
			err[0] = '\0';
		return 0;
	}
	if (r >= 0 && scratch.idle_watts > scratch.max_watts) {
		snprintf(err, err_size,
			"%s: estimate.idle_watts (%g) must not exceed estimate.max_watts (%g)",
			path, scratch.idle_watts, scratch.max_watts);
		r = -EINVAL;
	}
	if (r < 0) {
		config_free(host_config_schema, &scratch);
		return r;
	}
	host_config_free(c);
	*c = scratch;
	return 0;
}

static bool matches_any(const struct config_strv *globs, const char *name)
{
	for (size_t i = 0; i < globs->n; i++)
		if (globs->v[i] && fnmatch(globs->v[i], name, 0) == 0)
			return true;
	return false;
}

bool host_config_tracks(const struct host_config *c, const char *domain)
{
	return matches_any(&c->include, domain) && !matches_any(&c->exclude, domain);
}

bool host_config_tracks_titled(const struct host_config *c, const char *domain, const char *title)
{
	if (!title)
		return host_config_tracks(c, domain);
	return (matches_any(&c->include, domain) || matches_any(&c->include, title)) &&
	       !matches_any(&c->exclude, domain) && !matches_any(&c->exclude, title);
}

enum manager_kind host_config_manager(const struct host_config *c)
{
	struct stat st;

	if (c->manager != MANAGER_AUTO)
		return c->manager;
	return stat(c->pve_config_dir, &st) == 0 && S_ISDIR(st.st_mode) ? MANAGER_PROXMOX
									: MANAGER_LIBVIRT;
}

/* Directories a share_dir must never be: a tmpfs per domain in them would hide what they hold
 * (share_dir: /var/lib/libvirt and a domain named images hides every disk image). */
static const char *const system_dirs[] = { "/", "/bin", "/boot", "/dev", "/etc", "/home", "/media",
	"/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr",
	"/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/usr/share", "/var", "/var/cache",
	"/var/lib", "/var/lib/libvirt", "/var/lib/libvirt/boot", "/var/lib/libvirt/dnsmasq",
	"/var/lib/libvirt/images", "/var/lib/libvirt/qemu", "/var/log", "/var/run", "/var/spool",
	"/var/tmp", "/etc/libvirt" };

static bool is_listed_system_dir(const char *path)
{
	/* /lib, /lib32, /lib64, /libx32 ..., and /usr's */
	if (startswith(path, "/lib") && !strchr(path + 1, '/'))
		return true;
	if (startswith(path, "/usr/lib") && !strchr(path + 5, '/'))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(system_dirs); i++)
		if (streq(path, system_dirs[i]))
			return true;
	return false;
}

bool host_config_is_system_dir(const char *path)
{
	if (is_listed_system_dir(path))
		return true;
	/* their symlinked equivalents: /bin is /usr/bin on a merged /usr, /var/run is /run */
	for (size_t i = 0; i < ARRAY_SIZE(system_dirs); i++) {
		char real[PATH_MAX];
		if (realpath(system_dirs[i], real) && streq(real, path))
			return true;
	}
	return false;
}

/* path resolved as far as it exists (the rest appended as written), without trailing '/' */
static char *resolve_existing(const char *path)
{
	_cleanup_free_ char *head = xstrdup(path);
	char real[PATH_MAX];

	for (;;) {
		size_t len = strlen(head);
		while (len > 1 && head[len - 1] == '/')
			head[--len] = '\0';
		if (realpath(head, real)) {
			const char *rest = path + strlen(head);
			while (*rest == '/')
				rest++;
			if (!*rest)
				return xstrdup(real);
			return xasprintf("%s%s%s", real, streq(real, "/") ? "" : "/", rest);
		}
		char *slash = strrchr(head, '/');
		if (!slash || slash == head)
			return xstrdup(path);
		*slash = '\0';
	}
}

int host_qemu_conf_value(const char *buf, size_t len, const char *key, char *ret, size_t size)
{
	size_t pos = 0, klen = strlen(key);
	int r = -ENOENT;

	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos, i = 0;

		pos += llen + (nl ? 1 : 0);
		while (i < llen && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (llen - i <= klen || memcmp(line + i, key, klen) != 0)
			continue;
		i += klen;
		while (i < llen && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i >= llen || line[i] != '=')
			continue;
		i++;
		while (i < llen && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i >= llen || line[i] != '"')
			continue;
		const char *v = line + i + 1;
		const char *end = memchr(v, '"', llen - i - 1);
		if (!end || end == v || (size_t)(end - v) >= size)
			return -EINVAL;
		memcpy(ret, v, (size_t)(end - v));
		ret[end - v] = '\0';
		r = 0; /* the last setting wins, as in libvirt's parser */
	}
	return r;
}

static bool has_gid(const gid_t *gids, size_t n, gid_t g)
{
	for (size_t i = 0; i < n; i++)
		if (gids[i] == g)
			return true;
	return false;
}

/* 1: dir exists and uid may search it; 0: it does not exist; -EACCES with err filled */
static int check_search(
	const char *dir, uid_t uid, const gid_t *gids, size_t n, char *err, size_t err_size)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return 0;
	mode_t bit = st.st_uid == uid ? S_IXUSR : has_gid(gids, n, st.st_gid) ? S_IXGRP : S_IXOTH;
	if (st.st_mode & bit)
		return 1;
	snprintf(err, err_size, "%s (mode %04o, owner %u:%u)", dir, (unsigned)(st.st_mode & 07777),
		(unsigned)st.st_uid, (unsigned)st.st_gid);
	return -EACCES;
}

int host_check_traverse(
	const char *dir, uid_t uid, const gid_t *gids, size_t n, char *err, size_t err_size)
{
	_cleanup_free_ char *path = resolve_existing(dir);
	size_t len = strlen(path);
	int r;

	if (uid == 0)
		return 0;
	r = check_search("/", uid, gids, n, err, err_size);
	/* then each prefix ending before a '/', and the whole path: "/a", "/a/b" */
	for (size_t end = 1; r > 0 && end <= len; end++) {
		if (end < len && path[end] != '/')
			continue;
		char saved = path[end];
		path[end] = '\0';
		r = check_search(path, uid, gids, n, err, err_size);
		path[end] = saved;
	}
	/* a directory not made yet ends the walk: powerd makes the rest 0755 */
	return r < 0 ? r : 0;
}

/* The qemu user's uid and groups from qemu.conf's user and group (libvirt also gives qemu the
 * user's supplementary groups). -ENOENT: the user does not exist here (skipped, with a note). */
static int qemu_identity(const char *qemu_conf, char *user, size_t user_size, uid_t *ret_uid,
	gid_t *gids, int *n_gids)
{
	/* Debian's qemu.conf, comments and all, is about 37 KiB */
	const size_t size = 1024 * 1024;
	_cleanup_free_ char *buf = xmalloc(size);
	char group[256];
	size_t len = 0;
	_cleanup_close_ int fd = open(qemu_conf, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0 || pread_all(fd, buf, size, &len) < 0)
		len = 0; /* no qemu.conf (or an absurd one): the driver's defaults */
	if (host_qemu_conf_value(buf, len, "user", user, user_size) < 0)
		snprintf(user, user_size, "%s", HOST_QEMU_USER_DEFAULT);
	bool has_group = host_qemu_conf_value(buf, len, "group", group, sizeof(group)) == 0;

	uint64_t id;
	struct passwd *pw = user[0] == '+' && parse_u64(user + 1, &id) == 0 ? getpwuid((uid_t)id)
									    : getpwnam(user);
	if (!pw) {
		if (user[0] == '+' && parse_u64(user + 1, &id) == 0 && id == 0) {
			*ret_uid = 0;
			*n_gids = 0;
			return 0;
		}
		return -ENOENT;
	}
	*ret_uid = pw->pw_uid;
	gid_t primary = pw->pw_gid;
	if (has_group) {
		struct group *gr = group[0] == '+' && parse_u64(group + 1, &id) == 0
					   ? getgrgid((gid_t)id)
					   : getgrnam(group);
		if (gr)
			primary = gr->gr_gid;
	}
	if (getgrouplist(pw->pw_name, primary, gids, n_gids) < 0)
		*n_gids = 0; /* more groups than room: primary only (a warning at worst) */
	if (*n_gids == 0)
		gids[(*n_gids)++] = primary;
	return 0;
}

static int check_qemu_reach(const struct host_config *c, const char *qemu_conf, bool is_strict)
{
	char user[256], where[PATH_MAX + 64];
	gid_t gids[256];
	int n_gids = (int)ARRAY_SIZE(gids);
	uid_t uid;

	if (qemu_identity(qemu_conf, user, sizeof(user), &uid, gids, &n_gids) < 0) {
		log_notice(
			"share_dir: qemu's user %s (%s) does not exist here: not checked whether "
			"qemu can reach %s",
			user, qemu_conf, c->share_dir);
		return 0;
	}
	if (host_check_traverse(c->share_dir, uid, gids, (size_t)n_gids, where, sizeof(where)) == 0)
		return 0;
	if (is_strict) {
		log_err("share_dir: %s: libvirt's qemu user %s cannot traverse %s: every domain "
			"start "
			"would fail (\"cannot initialize fsdev\"); give it search permission (o+x)",
			c->share_dir, user, where);
		return -EINVAL;
	}
	log_warn("share_dir: %s: libvirt's qemu user %s cannot traverse %s: domain starts will "
		 "fail (\"cannot initialize fsdev\"); give it search permission (o+x)",
		c->share_dir, user, where);
	return 0;
}

int host_config_check(const struct host_config *c, const char *qemu_conf, bool is_strict)
{
	_cleanup_free_ char *real = resolve_existing(c->share_dir);
	_cleanup_free_ char *literal = xstrdup(c->share_dir);
	size_t len = strlen(literal);
	int r = 0;

	while (len > 1 && literal[len - 1] == '/')
		literal[--len] = '\0';
	if (host_config_is_system_dir(literal) || host_config_is_system_dir(real)) {
		log_err("share_dir: %s%s%s%s is a system directory: a share mounted in it would "
			"hide its files; use a directory of its own (default "
			"/var/lib/libvirt/scaphandre)",
			c->share_dir, streq(real, c->share_dir) ? "" : " (",
			streq(real, c->share_dir) ? "" : real,
			streq(real, c->share_dir) ? "" : ")");
		r = -EINVAL;
	} else if (host_config_manager(c) != MANAGER_PROXMOX &&
		   check_qemu_reach(c, qemu_conf, is_strict) < 0) {
		/* (on Proxmox VE qemu runs as root) */
		r = -EINVAL;
	}
	if (c->idle_power == IDLE_POLICY_HOST && c->idle_watts <= 0)
		log_warn("idle_power: host without estimate.idle_watts: the idle level is learned "
			 "(the lowest clean interval, kept in %s/.powerd/idle-level); until the "
			 "host "
			 "has been seen idle, domains may get too little: set estimate.idle_watts",
			c->share_dir);
	return r;
}
