/* Per-domain shares: private tmpfs + read-only bind export (see mounts.h). Mount points are
 * recognised by statx's STATX_ATTR_MOUNT_ROOT, or a st_dev different from the parent's where the
 * kernel does not report it. Names were checked (mounts_name_is_safe) before any path is built. */
#include "hostd/mounts.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "common/powercap.h"
#include "common/util.h"

#define MOUNTS_LOCK_FILE ".lock"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

struct mounts {
	char *share_dir;
	char *private_dir;
	uint64_t tmpfs_size;
	int share_fd;
	int private_fd;
	int lock_fd;
	unsigned lock_depth; /* mounts_lock held around mounts_prepare: one flock */
	bool is_last_made;   /* the last prepare mounted a fresh private tmpfs */
};

bool mounts_name_is_safe(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > MOUNTS_NAME_MAX || name[0] == '.')
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* A name as it may appear in a log line: control bytes escaped, cut after about 64 bytes. */
#define LOG_NAME_SIZE 80
static const char *name_for_log(const char *name, char *buf, size_t size)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t o = 0;

	for (; *p && o < 64; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\' || *p == '"')
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", *p);
		else
			buf[o++] = (char)*p;
	}
	snprintf(buf + o, size - o, "%s", *p ? "..." : "");
	return buf;
}

static int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = xstrdup(path);

	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = c;
		if (c == '\0')
			return 0;
	}
}

/* dirfd/name is the root of a mount. -ENOENT when it does not exist. */
static int is_mount_at(int dirfd, const char *name, bool *ret)
{
	struct statx sx, parent;

	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &sx) < 0)
		return -errno;
	if (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) {
		*ret = !!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
		return 0;
	}
	if (statx(dirfd, ".", 0, STATX_TYPE, &parent) < 0)
		return -errno;
	*ret = sx.stx_dev_major != parent.stx_dev_major || sx.stx_dev_minor != parent.stx_dev_minor;
	return 0;
}

int mounts_new(const char *share_dir, uint64_t tmpfs_size, struct mounts **ret)
{
	struct mounts *m;
	struct stat st;
	int r;

	r = mkdir_p(share_dir, 0755);
	if (r < 0) {
		log_err("cannot create share_dir %s: %s", share_dir, strerror(-r));
		return r;
	}
	m = xcalloc(1, sizeof(*m));
	m->share_dir = xstrdup(share_dir);
	m->private_dir = xasprintf("%s/" MOUNTS_PRIVATE_DIR, share_dir);
	m->tmpfs_size = tmpfs_size;
	m->private_fd = m->lock_fd = -1;
	m->share_fd = open(share_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->share_fd < 0) {
		r = -errno;
		log_err("cannot open share_dir %s: %s", share_dir, strerror(-r));
		goto fail;
	}
	if (mkdirat(m->share_fd, MOUNTS_PRIVATE_DIR, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		log_err("cannot create %s: %s", m->private_dir, strerror(-r));
		goto fail;
	}
	m->private_fd = openat(
		m->share_fd, MOUNTS_PRIVATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (m->private_fd < 0 || fstat(m->private_fd, &st) < 0) {
		r = -errno;
		log_err("cannot open %s: %s", m->private_dir, strerror(-r));
		goto fail;
	}
	/* The writable trees live here: root only, whatever an older run or a person left. */
	if ((st.st_mode & 07777) != 0700 && fchmod(m->private_fd, 0700) < 0) {
		r = -errno;
		log_err("cannot make %s mode 0700: %s", m->private_dir, strerror(-r));
		goto fail;
	}
	/* Beside the private directories, named as no domain can be (a leading dot); older
	 * versions' "lock" file would stand in the way of a domain named "lock". */
	(void)unlinkat(m->private_fd, "lock", 0);
	m->lock_fd = openat(
		m->private_fd, MOUNTS_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (m->lock_fd < 0) {
		r = -errno;
		log_err("cannot open %s/" MOUNTS_LOCK_FILE ": %s", m->private_dir, strerror(-r));
		goto fail;
	}
	*ret = m;
	return 0;
fail:
	mounts_free(m);
	return r;
}

void mounts_free(struct mounts *m)
{
	if (!m)
		return;
	closep(&m->share_fd);
	closep(&m->private_fd);
	closep(&m->lock_fd);
	free(m->share_dir);
	free(m->private_dir);
	free(m);
}

const char *mounts_share_dir(const struct mounts *m)
{
	return m->share_dir;
}

static void lock(struct mounts *m)
{
	if (m->lock_depth++ > 0)
		return;
	while (flock(m->lock_fd, LOCK_EX) < 0 && errno == EINTR)
		;
}

static void unlock(struct mounts *m)
{
	if (m->lock_depth > 0 && --m->lock_depth == 0)
		flock(m->lock_fd, LOCK_UN);
}

void mounts_lock(struct mounts *m)
{
	lock(m);
}

void mounts_unlock(struct mounts *m)
{
	unlock(m);
}

bool mounts_last_made(const struct mounts *m)
{
	return m->is_last_made;
}

/* Unmount every mount stacked on path (bounded), detaching from processes that still use it. */
static int umount_all(int dirfd, const char *name, const char *path)
{
	for (int i = 0; i < 16; i++) {
		bool is_mount;
		int r = is_mount_at(dirfd, name, &is_mount);
		if (r < 0)
			return r == -ENOENT ? 0 : r;
		if (!is_mount)
			return 0;
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			return -errno;
	}
	return -EBUSY;
}

/* A name a powercap tree holds at its top: zones, the heartbeat, a writer's temporaries. */
static bool is_tree_entry(const char *name)
{
	return startswith(name, "intel-rapl") || startswith(name, "amd-rapl") ||
	       streq(name, POWERCAP_HEARTBEAT_FILE) || startswith(name, ".tmp.") ||
	       streq(name, ".") || streq(name, "..");
}

/* The first entry of dirfd/name that no powercap tree has, into ret (empty: none, the
 * directory is empty or a tree: powerd's, Scaphandre's, a copy of sysfs). */
static int foreign_entry(int dirfd, const char *name, char *ret, size_t size)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	ret[0] = '\0';
	for (struct dirent *de; (de = readdir(d));)
		if (!is_tree_entry(de->d_name)) {
			snprintf(ret, size, "%s", de->d_name);
			break;
		}
	closedir(d);
	return 0;
}

static int adopt(
	struct mounts *m, const char *name, const char *lname, const struct stat *est, int *ret_fd)
{
	struct stat pst;
	bool is_mount = false;

	/* Ours: the private directory is a mount of the very file system the export shows. */
	if (fstatat(m->private_fd, name, &pst, AT_SYMLINK_NOFOLLOW) < 0 ||
		is_mount_at(m->private_fd, name, &is_mount) < 0 || !is_mount ||
		pst.st_dev != est->st_dev) {
		log_err("domain %s: %s/%s is a mount powerd-host did not make, leaving it alone",
			lname, m->share_dir, lname);
		return -EBUSY;
	}
	*ret_fd = openat(m->private_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*ret_fd < 0)
		return -errno;
	/* in use again: not an orphan for another grace period (mounts_teardown_if_older) */
	(void)futimens(*ret_fd, NULL);
	log_debug("domain %s: adopting the existing share", lname);
	return 0;
}

static int prepare_locked(struct mounts *m, const char *name, const char *lname, bool is_running,
	int *ret_fd, enum mount_state *ret_state)
{
	_cleanup_free_ char *epath = xasprintf("%s/%s", m->share_dir, name);
	_cleanup_free_ char *ppath = xasprintf("%s/%s", m->private_dir, name);
	bool made_export = false, made_private = false, mounted_private = false, is_mount;
	struct stat est;
	char opts[64];
	int r, fd;

	if (fstatat(m->share_fd, name, &est, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISDIR(est.st_mode)) {
			log_err("domain %s: %s is not a directory, not sharing", lname, epath);
			return -ENOTDIR;
		}
		r = is_mount_at(m->share_fd, name, &is_mount);
		if (r < 0)
			return r;
		if (is_mount) {
			r = adopt(m, name, lname, &est, ret_fd);
			if (r == 0)
				*ret_state = MOUNT_TMPFS;
			return r;
		}
		/* share_dir: /var/lib/libvirt and a domain named images: a mount would hide
		 * every disk image, a tree written in place would litter them */
		char other[256], lother[LOG_NAME_SIZE];
		r = foreign_entry(m->share_fd, name, other, sizeof(other));
		if (r < 0) {
			log_err("domain %s: cannot read %s: %s", lname, epath, strerror(-r));
			return r;
		}
		if (other[0]) {
			log_err("domain %s: %s holds %s, which is not a powercap tree: not "
				"mounting "
				"over it nor writing in it (is share_dir right?)",
				lname, epath, name_for_log(other, lother, sizeof(lother)));
			return -ENOTEMPTY;
		}
		if (is_running) {
			fd = openat(
				m->share_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				return -errno;
			log_warn(
				"domain %s: %s is a plain directory and the domain runs: writing "
				"the "
				"tree there; a mount now would stay invisible to the running qemu, "
				"restart the domain to get the read-only tmpfs",
				lname, epath);
			*ret_fd = fd;
			*ret_state = MOUNT_IN_PLACE;
			return 0;
		}
	} else if (errno == ENOENT) {
		if (mkdirat(m->share_fd, name, 0755) < 0) {
			r = -errno;
			log_err("domain %s: cannot create %s: %s", lname, epath, strerror(-r));
			return r;
		}
		made_export = true;
	} else {
		r = -errno;
		log_err("domain %s: cannot stat %s: %s", lname, epath, strerror(-r));
		return r;
	}

	if (mkdirat(m->private_fd, name, 0755) == 0)
		made_private = true;
	else if (errno != EEXIST) {
		r = -errno;
		log_err("domain %s: cannot create %s: %s", lname, ppath, strerror(-r));
		goto fail;
	}
	r = is_mount_at(m->private_fd, name, &is_mount);
	if (r < 0)
		goto fail;
	if (!is_mount) {
		snprintf(opts, sizeof(opts), "size=%llu,mode=0755",
			(unsigned long long)m->tmpfs_size);
		if (mount("powerd", ppath, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0) {
			r = -errno;
			log_err("domain %s: cannot mount tmpfs on %s: %s", lname, ppath,
				strerror(-r));
			goto fail;
		}
		mounted_private = true;
	}
	/* A bind mount takes its flags from the source; read-only needs a second, remounting
	 * step on the bind itself. */
	if (mount(ppath, epath, "none", MS_BIND, NULL) < 0) {
		r = -errno;
		log_err("domain %s: cannot bind %s on %s: %s", lname, ppath, epath, strerror(-r));
		goto fail;
	}
	if (mount("none", epath, "none",
		    MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		    NULL) < 0) {
		r = -errno;
		log_err("domain %s: cannot make %s read-only: %s", lname, epath, strerror(-r));
		umount2(epath, MNT_DETACH | UMOUNT_NOFOLLOW);
		goto fail;
	}
	fd = openat(m->private_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		umount2(epath, MNT_DETACH | UMOUNT_NOFOLLOW);
		goto fail;
	}
	log_info("domain %s: mounted read-only share %s", lname, epath);
	m->is_last_made = mounted_private;
	*ret_fd = fd;
	*ret_state = MOUNT_TMPFS;
	return 0;
fail:
	if (mounted_private)
		umount2(ppath, MNT_DETACH | UMOUNT_NOFOLLOW);
	if (made_private)
		unlinkat(m->private_fd, name, AT_REMOVEDIR);
	if (made_export)
		unlinkat(m->share_fd, name, AT_REMOVEDIR);
	return r;
}

int mounts_prepare(struct mounts *m, const char *name, bool is_running, int *ret_tree_fd,
	enum mount_state *ret_state)
{
	char lname[LOG_NAME_SIZE];
	int r;

	name_for_log(name, lname, sizeof(lname));
	if (!mounts_name_is_safe(name)) {
		log_err("domain \"%s\": name is not a safe directory name, not sharing", lname);
		return -EINVAL;
	}
	lock(m);
	m->is_last_made = false;
	r = prepare_locked(m, name, lname, is_running, ret_tree_fd, ret_state);
	unlock(m);
	return r;
}

int mounts_list(struct mounts *m, char ***ret_names, size_t *ret_n)
{
	int fd = openat(m->private_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **names = NULL;
	size_t n = 0;

	if (fd < 0)
		return -errno;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		int r = -errno;
		close(fd);
		return r;
	}
	for (struct dirent *de; (de = readdir(dir));) {
		bool is_mount = false;
		if (!mounts_name_is_safe(de->d_name) ||
			is_mount_at(m->private_fd, de->d_name, &is_mount) < 0 || !is_mount)
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(dir);
	*ret_names = names;
	*ret_n = n;
	return 0;
}

int mounts_age_s(struct mounts *m, const char *name, uint64_t *ret_s)
{
	struct stat st;
	struct timespec now;

	if (!mounts_name_is_safe(name))
		return -EINVAL;
	if (fstatat(m->private_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	clock_gettime(CLOCK_REALTIME, &now);
	*ret_s = now.tv_sec > st.st_mtim.tv_sec ? (uint64_t)(now.tv_sec - st.st_mtim.tv_sec) : 0;
	return 0;
}

int mounts_teardown_if_older(struct mounts *m, const char *name, uint64_t min_age_s)
{
	uint64_t age;
	int r;

	lock(m);
	r = mounts_age_s(m, name, &age);
	if (r == 0 && age < min_age_s)
		r = -EBUSY;
	if (r == 0)
		r = mounts_teardown(m, name);
	unlock(m);
	return r;
}

int mounts_teardown(struct mounts *m, const char *name)
{
	_cleanup_free_ char *epath = NULL, *ppath = NULL;
	char lname[LOG_NAME_SIZE];
	bool is_mount = false;
	int r, ret = 0;

	if (!mounts_name_is_safe(name))
		return -EINVAL;
	name_for_log(name, lname, sizeof(lname));
	epath = xasprintf("%s/%s", m->share_dir, name);
	ppath = xasprintf("%s/%s", m->private_dir, name);
	lock(m);
	r = is_mount_at(m->share_fd, name, &is_mount);
	if (r == 0 && is_mount) {
		r = umount_all(m->share_fd, name, epath);
		if (r < 0) {
			log_err("domain %s: cannot unmount %s: %s", lname, epath, strerror(-r));
			ret = r;
		} else if (unlinkat(m->share_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
			/* A directory someone else made and we mounted over: keep it. */
			log_debug("domain %s: keeping %s: %s", lname, epath, strerror(errno));
		}
	}
	r = umount_all(m->private_fd, name, ppath);
	if (r < 0) {
		log_err("domain %s: cannot unmount %s: %s", lname, ppath, strerror(-r));
		ret = ret ?: r;
	} else if (unlinkat(m->private_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
		r = -errno;
		log_warn("domain %s: cannot remove %s: %s", lname, ppath, strerror(-r));
	}
	unlock(m);
	if (ret == 0)
		log_info("domain %s: share removed", lname);
	return ret;
}
