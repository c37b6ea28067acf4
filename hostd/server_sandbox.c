/* Confinement of powerd-host's HTTP server process: rlimits, capabilities, credentials, no new
 * privileges, parent-death signal and a libseccomp allowlist (server_sandbox.h). The order
 * matters: the bounding set can only be emptied while root (CAP_SETPCAP), and the filter comes
 * last since it forbids every call made before it. */
#include "hostd/server_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

void sandbox_lookup_user(struct sandbox_user *ret)
{
	const struct passwd *pw = getpwnam(SANDBOX_USER);

	if (pw && pw->pw_uid != 0 && pw->pw_gid != 0) {
		ret->uid = pw->pw_uid;
		ret->gid = pw->pw_gid;
		snprintf(ret->name, sizeof(ret->name), "%s", SANDBOX_USER);
		return;
	}
	ret->uid = SANDBOX_NOBODY;
	ret->gid = SANDBOX_NOBODY;
	snprintf(ret->name, sizeof(ret->name), "nobody");
}

static int set_limit(int resource, rlim_t value)
{
	struct rlimit rl = { value, value };

	return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

static int drop_bounding_set(void)
{
	for (unsigned long cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0)
			break; /* past the kernel's last capability */
		if (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -errno;
	}
	return 0;
}

/* setresuid() from root to a non-root uid clears the permitted and effective sets (no
 * SECBIT_KEEP_CAPS here); check rather than trust it. */
static int check_no_capabilities(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };

	if (syscall(SYS_capget, &h, data) < 0)
		return -errno;
	for (size_t i = 0; i < ARRAY_SIZE(data); i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return -EPERM;
	return 0;
}

static int set_credentials(const struct sandbox_user *u)
{
	uid_t ruid, euid, suid;

	if (setgroups(0, NULL) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
		setresuid(u->uid, u->uid, u->uid) < 0)
		return -errno;
	/* No way back: a saved root uid would let it setuid(0) again. */
	if (getresuid(&ruid, &euid, &suid) < 0 || ruid != u->uid || euid != u->uid ||
		suid != u->uid || setuid(0) == 0)
		return -EPERM;
	return 0;
}

int sandbox_enter(const struct sandbox_user *u, rlim_t max_files, pid_t parent)
{
	int r;

	if ((r = set_limit(RLIMIT_NOFILE, max_files)) < 0 || (r = set_limit(RLIMIT_FSIZE, 0)) < 0 ||
		(r = set_limit(RLIMIT_NPROC, 0)) < 0) {
		log_err("http server: cannot set resource limits: %s", strerror(-r));
		return r;
	}
	r = drop_bounding_set();
	if (r < 0) {
		log_err("http server: cannot empty the capability bounding set: %s", strerror(-r));
		return r;
	}
	r = set_credentials(u);
	if (r < 0) {
		log_err("http server: cannot become %s (%u:%u): %s", u->name, (unsigned)u->uid,
			(unsigned)u->gid, strerror(-r));
		return r;
	}
	r = check_no_capabilities();
	if (r < 0) {
		log_err("http server: capabilities left after dropping root: %s", strerror(-r));
		return r;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ||
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		r = -errno;
		log_err("http server: prctl: %s", strerror(-r));
		return r;
	}
	/* The parent may have died before the death signal was armed (changing credentials
	 * also clears it, so it could not be armed earlier). */
	if (getppid() != parent)
		return -ESRCH;
	if (chdir("/") < 0)
		return -errno;
	r = sandbox_seccomp();
	if (r < 0)
		log_err("http server: cannot load the syscall filter: %s", strerror(-r));
	return r;
}

/* What a libevent loop serving evhttp and a unix listener takes once set up (epoll, timerfd and
 * the notification pipe already exist). Everything else kills the process. */
static const int allowed[] = {
	SCMP_SYS(read),
	SCMP_SYS(readv),
	SCMP_SYS(write),
	SCMP_SYS(writev),
	SCMP_SYS(recvfrom),
	SCMP_SYS(recvmsg),
	SCMP_SYS(sendto),
	SCMP_SYS(sendmsg),
	SCMP_SYS(accept),
	SCMP_SYS(accept4),
	SCMP_SYS(shutdown),
	SCMP_SYS(close),
	SCMP_SYS(getsockname),
	SCMP_SYS(getpeername),
	SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt),
	SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(poll),
	SCMP_SYS(timerfd_settime),
	SCMP_SYS(clock_gettime),
	SCMP_SYS(gettimeofday),
	SCMP_SYS(brk),
	SCMP_SYS(mmap),
	SCMP_SYS(munmap),
	SCMP_SYS(mremap),
	SCMP_SYS(madvise),
	SCMP_SYS(futex),
	SCMP_SYS(fstat),
	SCMP_SYS(newfstatat),
	SCMP_SYS(getpid),
	SCMP_SYS(gettid),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(sigaltstack), /* the sanitizers' runtime, on the way out */
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),
};

/* Asked for, refused with an error rather than death: stdio or a library may probe these. */
static const int refused[] = {
	SCMP_SYS(open),
	SCMP_SYS(openat),
	SCMP_SYS(openat2),
	SCMP_SYS(creat),
};

int sandbox_seccomp(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(allowed); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(refused); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), refused[i], 0);
	/* evbuffer_read() sizes its reads with FIONREAD; fcntl only for O_NONBLOCK on accepted
	 * sockets (F_GETFL/F_SETFL) and close-on-exec (F_GETFD/F_SETFD). */
	if (r == 0)
		r = seccomp_rule_add(
			ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, FIONREAD, 0));
	/* malloc may change protections, never to executable. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
			SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	static const int fcntl_cmds[] = { F_GETFL, F_SETFL, F_GETFD, F_SETFD };
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(fcntl_cmds); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
			SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)fcntl_cmds[i], 0));
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}
