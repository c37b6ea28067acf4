/* qemu-server's per-VM lock (pve_lock.h). */
#include "hostd/pve_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define PVE_LOCK_POLL_MS 20

int pve_lock_try(const char *lock_dir, uint32_t vmid, unsigned wait_ms, char *err, size_t err_size)
{
	_cleanup_free_ char *path = xasprintf("%s/lock-%u.conf", lock_dir, vmid);
	uint64_t end_ns = now_monotonic_ns() + (uint64_t)wait_ms * 1000000;
	int r;

	/* qemu-server makes its lock directory when it loads (mkdir, the default mode) */
	if (mkdir(lock_dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(err, err_size, "cannot make %s: %s", lock_dir, strerror(-r));
		return r;
	}
	/* lock_file_full: IO::File->new(">>$filename"), then flock */
	_cleanup_close_ int fd =
		open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0666);
	if (fd < 0) {
		r = -errno;
		snprintf(err, err_size, "cannot open %s: %s", path, strerror(-r));
		return r;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		if (r == -EWOULDBLOCK && now_monotonic_ns() < end_ns) {
			/* a command waits as qemu-server's own do; polled: no signal to set up */
			nanosleep(&(struct timespec){ 0, PVE_LOCK_POLL_MS * 1000000L }, NULL);
			continue;
		}
		if (r == -EWOULDBLOCK)
			snprintf(err, err_size,
				"config locked by qemu-server (%s held: a migration, start, backup "
				"or qm set)",
				path);
		else
			snprintf(err, err_size, "cannot lock %s: %s", path, strerror(-r));
		return r;
	}
	return TAKE_FD(fd);
}

int pve_lock_ports(const char *lock_dir, const char *config_dir, uint32_t vmid, unsigned wait_ms,
	struct pve_conf *conf, char *err, size_t err_size)
{
	_cleanup_close_ int fd = pve_lock_try(lock_dir, vmid, wait_ms, err, err_size);
	int r;

	if (fd < 0)
		return fd;
	r = pve_conf_read(config_dir, vmid, conf, err, err_size);
	if (r < 0)
		return r;
	if (conf->lock[0]) {
		snprintf(err, err_size, "config locked by qemu-server (lock: %s)", conf->lock);
		return -EBUSY;
	}
	return TAKE_FD(fd);
}
