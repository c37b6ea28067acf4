/* systemd's service protocol without libsystemd: environment variables and one datagram. */
#include "common/sd_daemon.h"

#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/util.h"

/* An environment variable naming a pid: is it this process? Missing counts as "not said". */
static int env_pid_is_self(const char *name, bool *ret_is_self, bool *ret_is_set)
{
	const char *v = getenv(name);
	uint64_t pid;

	*ret_is_set = v != NULL;
	*ret_is_self = false;
	if (!v)
		return 0;
	if (parse_u64(v, &pid) < 0 || pid == 0)
		return -EINVAL;
	*ret_is_self = pid == (uint64_t)getpid();
	return 0;
}

static void unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int sd_daemon_listen_fds(void)
{
	const char *fds = getenv("LISTEN_FDS");
	bool is_self, is_set;
	uint64_t n;
	int r;

	r = env_pid_is_self("LISTEN_PID", &is_self, &is_set);
	if (r < 0 || !is_set || !is_self || !fds) {
		unset_listen_env();
		return r < 0 ? r : 0;
	}
	r = parse_u64(fds, &n);
	unset_listen_env();
	if (r < 0 || n > 4096)
		return -EINVAL;
	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + (int)n; fd++) {
		int flags = fcntl(fd, F_GETFD);

		if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
			return -errno;
	}
	return (int)n;
}

int sd_daemon_is_listening_stream(int fd)
{
	struct stat st;
	int type = 0, listening = 0;
	socklen_t len = sizeof(type);

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return -errno;
	return type == SOCK_STREAM && listening ? 1 : 0;
}

int sd_daemon_watchdog_usec(uint64_t *ret_usec)
{
	const char *v = getenv("WATCHDOG_USEC");
	bool is_self, is_set;
	uint64_t usec;
	int r;

	if (!v)
		return 0;
	r = env_pid_is_self("WATCHDOG_PID", &is_self, &is_set);
	if (r < 0)
		return r;
	if (is_set && !is_self)
		return 0; /* meant for another process (our parent, before it exec'd us) */
	if (parse_u64(v, &usec) < 0 || usec == 0)
		return -EINVAL;
	*ret_usec = usec;
	return 1;
}

int sd_daemon_notify(const char *state, bool may_block)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (!path)
		return 0;
	size_t len = strlen(path);
	if (path[0] != '/' && path[0] != '@')
		return -EAFNOSUPPORT; /* vsock:… is for a VM's systemd talking to its host */
	if (len < 2 || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	_cleanup_close_ int fd =
		socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | (may_block ? 0 : SOCK_NONBLOCK), 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL | (may_block ? 0 : MSG_DONTWAIT),
		    (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		return -errno;
	return 1;
}
