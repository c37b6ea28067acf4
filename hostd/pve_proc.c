/* qemu-server's VM processes (pve_proc.h). */
#include "hostd/pve_proc.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/util.h"

int pve_proc_read_pid(const char *run_dir, uint32_t vmid, pid_t *ret)
{
	_cleanup_free_ char *path = xasprintf("%s/%u.pid", run_dir, vmid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	char buf[32];
	uint64_t pid;
	size_t len;
	int r;

	if (fd < 0)
		return -errno;
	r = pread_all(fd, buf, sizeof(buf) - 1, &len);
	if (r < 0)
		return r;
	r = parse_u64_content(buf, len, &pid);
	if (r < 0 && len > 0 && len < sizeof(buf) && buf[len - 1] != '\n') {
		buf[len] = '\0';
		r = parse_u64(buf, &pid);
	}
	if (r < 0 || pid == 0 || pid > INT32_MAX)
		return -EINVAL;
	*ret = (pid_t)pid;
	return 0;
}

/* Whether pid's command line carries -pidfile <run_dir>/<vmid>.pid (the directory compared by
 * identity: qemu-server writes /var/run/qemu-server, a link to /run). */
bool pve_proc_is_vm(const char *proc_root, pid_t pid, const struct stat *run_st, uint32_t vmid)
{
	_cleanup_free_ char *path = xasprintf("%s/%d/cmdline", proc_root, (int)pid);
	_cleanup_free_ char *buf = xmalloc(PVE_CMDLINE_MAX + 1);
	_cleanup_free_ char *want = xasprintf("%u.pid", vmid);
	size_t len;

	if (read_file_at(AT_FDCWD, path, buf, PVE_CMDLINE_MAX + 1, &len) < 0 || len == 0 ||
		len > PVE_CMDLINE_MAX)
		return false;
	buf[len] = '\0';
	for (size_t i = 0; i < len;) {
		const char *arg = buf + i;
		size_t n = strlen(arg);
		i += n + 1;
		if (!streq(arg, "-pidfile") && !streq(arg, "--pidfile"))
			continue;
		if (i >= len)
			return false;
		const char *file = buf + i;
		const char *slash = strrchr(file, '/');
		if (!slash || !streq(slash + 1, want))
			return false;
		_cleanup_free_ char *dir = xstrndup(file, (size_t)(slash - file));
		struct stat st;
		return stat(dir[0] ? dir : "/", &st) == 0 && st.st_dev == run_st->st_dev &&
		       st.st_ino == run_st->st_ino;
	}
	return false;
}

int pve_proc_vm_pid(const char *run_dir, const char *proc_root, uint32_t vmid, pid_t *ret)
{
	struct stat run_st;
	pid_t pid;
	int r;

	if (stat(run_dir, &run_st) < 0)
		return -errno;
	r = pve_proc_read_pid(run_dir, vmid, &pid);
	if (r < 0)
		return r;
	if (!pve_proc_is_vm(proc_root, pid, &run_st, vmid))
		return -ESRCH;
	*ret = pid;
	return 0;
}
