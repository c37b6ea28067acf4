/* powerd-host's privilege separation: the hand-over header, the syscall filter and the sandbox in
 * forked children, then the real daemon (libvirt's test driver, a fixture powercap tree, a real
 * tmpfs share in a private mount namespace): the process that accepts connections is not root
 * and has no capabilities, killing it neither stops accounting nor the endpoint for long, and 500
 * hostile connections do not move the privileged part's tick. */
#include "tests/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "hostd/privsep_msg.h"
#include "hostd/server_sandbox.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

static void test_header(void **state)
{
	uint8_t h[PRIVSEP_HEADER_SIZE];
	enum privsep_msg_type type;
	uint32_t len;

	privsep_msg_header(h, PRIVSEP_MSG_STATUS, 1234);
	assert_int_equal(privsep_msg_parse(h, &type, &len), 0);
	assert_int_equal(type, PRIVSEP_MSG_STATUS);
	assert_int_equal(len, 1234);
	privsep_msg_header(h, PRIVSEP_MSG_METRICS, PRIVSEP_MSG_MAX);
	assert_int_equal(privsep_msg_parse(h, &type, &len), 0);
	privsep_msg_header(h, PRIVSEP_MSG_METRICS, PRIVSEP_MSG_MAX + 1);
	assert_int_equal(privsep_msg_parse(h, &type, &len), -EMSGSIZE);
	privsep_msg_header(h, 0, 1);
	assert_int_equal(privsep_msg_parse(h, &type, &len), -EBADMSG);
	privsep_msg_header(h, PRIVSEP_MSG_TYPES + 1, 1);
	assert_int_equal(privsep_msg_parse(h, &type, &len), -EBADMSG);
	privsep_msg_header(h, PRIVSEP_MSG_METRICS, 1);
	h[4]++; /* version */
	assert_int_equal(privsep_msg_parse(h, &type, &len), -EPROTONOSUPPORT);
	privsep_msg_header(h, PRIVSEP_MSG_METRICS, 1);
	h[0] ^= 1;
	assert_int_equal(privsep_msg_parse(h, &type, &len), -EPROTO);
}

enum forbidden { DO_SOCKET, DO_CONNECT, DO_EXEC, DO_PTRACE, DO_FORK, DO_OPEN_WRITE, DO_OPEN_READ };

/* In a child under the filter alone: the wait status of trying what. */
static int under_filter(enum forbidden what)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (sandbox_seccomp() < 0)
			_exit(100);
		switch (what) {
		case DO_SOCKET:
			(void)!socket(AF_INET, SOCK_STREAM, 0);
			break;
		case DO_CONNECT: {
			struct sockaddr_in sa = { .sin_family = AF_INET };
			(void)!connect(0, (struct sockaddr *)&sa, sizeof(sa));
			break;
		}
		case DO_EXEC: {
			char *argv[] = { "/bin/true", NULL };
			execv(argv[0], argv);
			break;
		}
		case DO_PTRACE:
			ptrace(PTRACE_TRACEME, 0, NULL, NULL);
			break;
		case DO_FORK:
			/* glibc's fork() is clone(); the raw one too. */
			if (fork() == 0)
				_exit(0);
			break;
		case DO_OPEN_WRITE:
			_exit(open("/tmp/powerd-privsep-never", O_WRONLY | O_CREAT, 0600) < 0 &&
						errno == EACCES
					? 0
					: 101);
		case DO_OPEN_READ:
			_exit(open("/etc/passwd", O_RDONLY) < 0 && errno == EACCES ? 0 : 102);
		}
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void assert_killed(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void test_seccomp(void **state)
{
	/* valgrind implements neither seccomp(2) nor a filter over its own calls. */
	if (RUNNING_ON_VALGRIND)
		skip();
	assert_killed(under_filter(DO_SOCKET));
	assert_killed(under_filter(DO_CONNECT));
	assert_killed(under_filter(DO_EXEC));
	assert_killed(under_filter(DO_PTRACE));
	assert_killed(under_filter(DO_FORK));
	int status = under_filter(DO_OPEN_WRITE);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(access("/tmp/powerd-privsep-never", F_OK), -1);
	status = under_filter(DO_OPEN_READ);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The whole sandbox in a child (as root, as the tests run): then it is someone else, with no
 * capabilities and no way back. */
static void test_sandbox(void **state)
{
	struct sandbox_user u;
	pid_t parent = getpid();

	if (geteuid() != 0 || RUNNING_ON_VALGRIND)
		skip();
	sandbox_lookup_user(&u);
	assert_true(u.uid != 0 && u.gid != 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (sandbox_enter(&u, 64, parent) < 0)
			_exit(10);
		if (getuid() != u.uid || geteuid() != u.uid || getgid() != u.gid)
			_exit(11);
		/* write(2) on an fd it has still works: stderr is how it logs. */
		if (write(STDERR_FILENO, "", 0) < 0)
			_exit(12);
		/* seteuid(0) is outside the filter: death. */
		(void)!seteuid(0);
		_exit(13);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_killed(status);
}

/* --- the real daemon --- */

struct fx {
	char *tmp;
	char *share;
	char *pc;
	char *cfg;
	char *log;
	uint16_t port;
	uint64_t raw_uj;
	pid_t pid;
};

static int group_setup(void **state)
{
	if (unshare(CLONE_NEWNS) == 0)
		mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void write_counter(struct fx *f)
{
	tu_writef(f->pc, "intel-rapl:0/energy_uj", "%" PRIu64 "\n", f->raw_uj);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->tmp = tu_mkdtemp("powerd-privsep");
	f->share = xasprintf("%s/share", f->tmp);
	f->pc = xasprintf("%s/powercap", f->tmp);
	f->cfg = xasprintf("%s/host.yaml", f->tmp);
	f->log = xasprintf("%s/daemon.log", f->tmp);
	tu_write(f->pc, "intel-rapl:0/name", "package-0\n");
	tu_write(f->pc, "intel-rapl:0/max_energy_range_uj", "262143328850\n");
	f->raw_uj = 1000000;
	write_counter(f);
	f->port = tu_free_port();
	tu_writef(f->tmp, "host.yaml",
		"libvirt_uri: test:///default\ninterval: 200ms\nshare_dir: %s\ntmpfs_size: 1m\n"
		"powercap_root: %s\nmetrics_listen: 127.0.0.1:%u\nstatus_socket: "
		"%s/run/status.sock\n",
		f->share, f->pc, f->port, f->tmp);
	char *argv[] = { POWERD_HOST_BIN, "-c", f->cfg, NULL };
	f->pid = tu_spawn(argv, NULL, f->log);
	assert_int_equal(tu_wait_port(f->port, 10000), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->pid > 0)
		tu_stop(f->pid, 10000);
	if (getenv("POWERD_TEST_VERBOSE")) {
		_cleanup_free_ char *log = tu_read(f->tmp, "daemon.log");
		fprintf(stderr, "--- daemon log ---\n%s\n", log ? log : "");
	}
	tu_umount_under(f->tmp);
	tu_rm_rf(f->tmp);
	free(f->tmp);
	free(f->share);
	free(f->pc);
	free(f->cfg);
	free(f->log);
	free(f);
	return 0;
}

/* A line "Key:\tvalue" of /proc/pid/status. */
static char *proc_status_field(pid_t pid, const char *key)
{
	_cleanup_free_ char *dir = xasprintf("/proc/%d", (int)pid);
	_cleanup_free_ char *all = tu_read(dir, "status");
	size_t n = strlen(key);

	for (char *line = all; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			return xstrdup(line + n + 1 + strspn(line + n + 1, " \t"));
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

/* The inode of the established server-side TCP socket from local port to peer port. */
static unsigned long server_socket_inode(uint16_t port, uint16_t peer)
{
	static const char *tables[] = { "tcp", "tcp6" };

	for (size_t t = 0; t < ARRAY_SIZE(tables); t++) {
		_cleanup_free_ char *all = tu_read("/proc/net", tables[t]);
		for (char *line = all ? strchr(all, '\n') : NULL; line && *++line;) {
			char local[64], remote[64];
			unsigned st;
			unsigned long inode;
			if (sscanf(line, "%*d: %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote,
				    &st, &inode) == 4 &&
				st == 1) {
				const char *lp = strrchr(local, ':'), *rp = strrchr(remote, ':');
				if (lp && rp && strtoul(lp + 1, NULL, 16) == port &&
					strtoul(rp + 1, NULL, 16) == peer)
					return inode;
			}
			line = strchr(line, '\n');
		}
	}
	return 0;
}

/* The pids holding socket:[inode] among all processes. */
static size_t socket_owners(unsigned long inode, pid_t *pids, size_t max)
{
	_cleanup_free_ char *want = xasprintf("socket:[%lu]", inode);
	DIR *proc = opendir("/proc");
	size_t n = 0;

	assert_non_null(proc);
	for (struct dirent *e; (e = readdir(proc));) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		_cleanup_free_ char *fddir = xasprintf("/proc/%s/fd", e->d_name);
		DIR *fds = opendir(fddir);
		if (!fds)
			continue;
		for (struct dirent *fe; (fe = readdir(fds));) {
			char target[64];
			ssize_t len =
				readlinkat(dirfd(fds), fe->d_name, target, sizeof(target) - 1);
			if (len <= 0)
				continue;
			target[len] = '\0';
			if (streq(target, want) && n < max) {
				pids[n++] = (pid_t)atoi(e->d_name);
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return n;
}

static int connect_port(uint16_t port, uint16_t *ret_local_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -errno;
	}
	if (ret_local_port) {
		socklen_t len = sizeof(sa);
		getsockname(fd, (struct sockaddr *)&sa, &len);
		*ret_local_port = ntohs(sa.sin_port);
	}
	return fd;
}

/* GET /metrics until it answers 200 (body into *ret_body if not NULL), for at most 30 s. */
static int wait_200(uint16_t port, char **ret_body)
{
	uint64_t t0 = now_monotonic_ns();
	int status = -1;

	while (status != 200 && now_monotonic_ns() - t0 < 30 * NSEC_PER_SEC) {
		if (ret_body) {
			free(*ret_body);
			*ret_body = NULL;
		}
		status = tu_http_get(port, "/metrics", ret_body);
		if (status != 200)
			pause_ms(10);
	}
	return status;
}

/* The process serving a fresh connection (the only one holding its socket). */
static pid_t serving_pid(struct fx *f)
{
	uint16_t local = 0;
	_cleanup_close_ int fd = connect_port(f->port, &local);
	pid_t pids[4];
	size_t n = 0;

	assert_true(fd >= 0);
	/* The server accepts asynchronously: ask until it has. */
	for (int i = 0; i < 1000 && n == 0; i++) {
		unsigned long inode = server_socket_inode(f->port, local);
		if (inode)
			n = socket_owners(inode, pids, ARRAY_SIZE(pids));
		if (n == 0)
			pause_ms(10);
	}
	assert_int_equal(n, 1);
	/* Ours (another daemon could have taken the "free" port first). */
	_cleanup_free_ char *ppid = proc_status_field(pids[0], "PPid");
	assert_non_null(ppid);
	assert_int_equal(atoi(ppid), f->pid);
	return pids[0];
}

static void test_server_unprivileged(void **state)
{
	struct fx *f = *state;
	pid_t pid = serving_pid(f);

	assert_true(pid != f->pid);
	_cleanup_free_ char *uid = proc_status_field(pid, "Uid");
	_cleanup_free_ char *gid = proc_status_field(pid, "Gid");
	_cleanup_free_ char *eff = proc_status_field(pid, "CapEff");
	_cleanup_free_ char *prm = proc_status_field(pid, "CapPrm");
	_cleanup_free_ char *bnd = proc_status_field(pid, "CapBnd");
	_cleanup_free_ char *nnp = proc_status_field(pid, "NoNewPrivs");
	_cleanup_free_ char *sec = proc_status_field(pid, "Seccomp");
	_cleanup_free_ char *ppid = proc_status_field(pid, "PPid");
	assert_non_null(uid);
	/* Real, effective, saved and filesystem uid, none of them root. */
	unsigned u[4];
	assert_int_equal(sscanf(uid, "%u %u %u %u", &u[0], &u[1], &u[2], &u[3]), 4);
	for (size_t i = 0; i < 4; i++)
		assert_true(u[i] != 0);
	assert_true(strtoul(gid, NULL, 10) != 0);
	assert_string_equal(eff, "0000000000000000");
	assert_string_equal(prm, "0000000000000000");
	assert_string_equal(bnd, "0000000000000000");
	assert_string_equal(nnp, "1");
	assert_string_equal(sec, "2");
	assert_int_equal(atoi(ppid), f->pid);
	/* Its fds: stdio and sockets (listeners, the socketpair, epoll, the connection): no file of
	 * the share, no libvirt, nothing else. */
	_cleanup_free_ char *fddir = xasprintf("/proc/%d/fd", (int)pid);
	DIR *fds = opendir(fddir);
	assert_non_null(fds);
	for (struct dirent *e; (e = readdir(fds));) {
		char target[256];
		if (e->d_name[0] == '.')
			continue;
		ssize_t len = readlinkat(dirfd(fds), e->d_name, target, sizeof(target) - 1);
		assert_true(len > 0);
		target[len] = '\0';
		int fd = atoi(e->d_name);
		if (fd <= 2)
			continue;
		if (!startswith(target, "socket:") && !startswith(target, "anon_inode:") &&
			!startswith(target, "pipe:"))
			fail_msg("server fd %d is %s", fd, target);
	}
	closedir(fds);
	/* It serves the exposition the privileged part rendered. */
	assert_int_equal(wait_200(f->port, NULL), 200);
}

static uint64_t read_energy(struct fx *f)
{
	_cleanup_free_ char *v = tu_read(f->share, "test/intel-rapl:0/energy_uj");
	return v ? strtoull(v, NULL, 10) : 0;
}

static uint64_t heartbeat_seq(struct fx *f)
{
	_cleanup_free_ char *v = tu_read(f->share, "test/.powerd-heartbeat");
	const char *s = v ? strstr(v, "\nseq ") : NULL;
	return s ? strtoull(s + 5, NULL, 10) : 0;
}

static uint64_t wait_energy_above(struct fx *f, uint64_t above)
{
	uint64_t e = 0;

	for (int i = 0; i < 500; i++) {
		f->raw_uj += 200000;
		write_counter(f);
		e = read_energy(f);
		if (e > above)
			return e;
		pause_ms(20);
	}
	return e;
}

static void test_kill_server(void **state)
{
	struct fx *f = *state;
	uint64_t e0 = wait_energy_above(f, 0);
	pid_t server = serving_pid(f);

	assert_true(e0 > 0);
	assert_int_equal(kill(server, SIGKILL), 0);
	uint64_t t0 = now_monotonic_ns();
	/* Accounting goes on meanwhile: the tree keeps rising, the daemon lives. */
	uint64_t e1 = wait_energy_above(f, e0);
	assert_true(e1 > e0);
	assert_int_equal(kill(f->pid, 0), 0);
	/* The endpoint comes back, served by a new process, with a fresh exposition. */
	_cleanup_free_ char *body = NULL;
	int status = wait_200(f->port, &body);
	uint64_t back_ms = (now_monotonic_ns() - t0) / NSEC_PER_MSEC;
	assert_int_equal(status, 200);
	double v;
	assert_int_equal(tu_metric(body, "powerd_domains", &v), 0);
	pid_t again = serving_pid(f);
	assert_true(again != server && again != f->pid);
	fprintf(stderr, "server killed: endpoint back after %" PRIu64 " ms\n", back_ms);
	/* Killed twice quickly: the back-off doubles, the endpoint still returns. */
	assert_int_equal(kill(again, SIGKILL), 0);
	assert_int_equal(wait_200(f->port, NULL), 200);
	_cleanup_free_ char *log = tu_read(f->tmp, "daemon.log");
	assert_non_null(strstr(log, "killed by signal 9"));
}

/* A hung server (stopped: it neither serves nor sends its heartbeat) is killed and replaced. */
static void test_hung_server(void **state)
{
	struct fx *f = *state;
	pid_t server = serving_pid(f);
	uint64_t seq0 = heartbeat_seq(f);

	assert_int_equal(kill(server, SIGSTOP), 0);
	uint64_t t0 = now_monotonic_ns();
	int status = wait_200(f->port, NULL);
	uint64_t back_ms = (now_monotonic_ns() - t0) / NSEC_PER_MSEC;
	if (status != 200)
		kill(server, SIGKILL); /* not left stopped behind a failed test */
	assert_int_equal(status, 200);
	/* Not before the heartbeat was missed for PRIVSEP_HANG_MS (5 s), not much after. */
	assert_true(back_ms >= 4000 && back_ms < 20000);
	assert_true(serving_pid(f) != server);
	/* The ticks went on all along. */
	assert_true(heartbeat_seq(f) > seq0 + 10);
	_cleanup_free_ char *log = tu_read(f->tmp, "daemon.log");
	assert_non_null(strstr(log, "sent no heartbeat"));
	fprintf(stderr, "hung server: endpoint back after %" PRIu64 " ms\n", back_ms);
}

/* The privileged part's tick, as it reports it: the median of n scrapes. */
static double tick_seconds(struct fx *f, int n)
{
	double v[64];
	int got = 0;

	assert_true(n <= 64);
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *body = NULL;
		if (tu_http_get(f->port, "/metrics", &body) == 200 &&
			tu_metric(body, "powerd_tick_duration_seconds", &v[got]) == 0)
			got++;
		pause_ms(100);
	}
	assert_true(got >= n / 2);
	for (int i = 1; i < got; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[got / 2];
}

static void send_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n <= 0)
			return; /* the server may close on us: that is its right */
		s += n;
		len -= (size_t)n;
	}
}

#define HOSTILE 500
#define HELD 200 /* kept open, under the server's 256 connections */

static void test_hostile(void **state)
{
	struct fx *f = *state;
	static const char *junk[] = {
		"\x00\xff\xfe garbage\r\n\r\n",
		"GET /metrics HTTP/9.9\r\n\r\n",
		"GET /../../../etc/shadow HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /metrics HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nxxxx",
		"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n",
		"GET / HTTP/1.1\r\nHost: \x01\x02\x03\r\nX: \xff\xff\r\n\r\n",
		"BREW /pot HTCPCP/1.0\r\n\r\n",
		/* three pipelined requests in one string */
		("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n"
		 "GET /metrics HTTP/1.1\r\n\r\n"),
	};
	int held[HELD];
	size_t n_held = 0;
	pid_t server = serving_pid(f);

	double before = tick_seconds(f, 15);
	_cleanup_free_ char *big = xmalloc(64 * 1024);
	memset(big, 'A', 64 * 1024);
	memcpy(big, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
	uint64_t seq0 = heartbeat_seq(f), t0 = now_monotonic_ns();
	for (int i = 0; i < HOSTILE; i++) {
		int fd = connect_port(f->port, NULL);
		if (fd < 0)
			continue;
		if (n_held < HELD && i % 5 < 2) {
			/* Slow clients: half a request line, or headers without end. */
			send_all(fd, i % 2 ? "GET /met" : "GET /metrics HTTP/1.1\r\nX: y\r\n", 8);
			held[n_held++] = fd;
			continue;
		}
		if (i % 5 == 2)
			send_all(fd, big, 64 * 1024);
		else
			send_all(
				fd, junk[i % ARRAY_SIZE(junk)], strlen(junk[i % ARRAY_SIZE(junk)]));
		close(fd);
	}
	/* While the slow ones are held: scrapes still work and the tick does not move. */
	double during = tick_seconds(f, 15);
	uint64_t seq1 = heartbeat_seq(f), t1 = now_monotonic_ns();
	for (size_t i = 0; i < n_held; i++)
		close(held[i]);
	uint64_t expected = (t1 - t0) / (200 * NSEC_PER_MSEC);
	fprintf(stderr,
		"tick: %.1f us before, %.1f us during %d hostile connections (%zu held); %" PRIu64
		" ticks of %" PRIu64 " expected\n",
		before * 1e6, during * 1e6, HOSTILE, n_held, seq1 - seq0, expected);
	/* The bound: three times the quiet median plus 1 ms (the tick is CPU time of the
	 * privileged process, which the load runs beside, not in). */
	assert_true(during <= 3 * before + 0.001);
	/* Ticks went on (wall clock): at least half the intervals that passed, whatever else the
	 * machine runs (the test suite runs in parallel with others). */
	assert_true((seq1 - seq0) * 2 >= expected);
	/* And the server survived it all: the same process serves. */
	if (serving_pid(f) != server) {
		_cleanup_free_ char *log = tu_read(f->tmp, "daemon.log");
		fail_msg("the server was replaced during the hostile load:\n%s", log ? log : "");
	}
}

/* SIGHUP with another metrics_listen: the privileged part opens it and restarts the server on
 * it; the old port is closed. */
static void test_reload_listen(void **state)
{
	struct fx *f = *state;
	uint16_t port2 = tu_free_port();
	pid_t server = serving_pid(f);

	tu_writef(f->tmp, "host.yaml",
		"libvirt_uri: test:///default\ninterval: 200ms\nshare_dir: %s\ntmpfs_size: 1m\n"
		"powercap_root: %s\nmetrics_listen: 127.0.0.1:%u\n",
		f->share, f->pc, port2);
	assert_int_equal(kill(f->pid, SIGHUP), 0);
	assert_int_equal(wait_200(port2, NULL), 200);
	int fd = connect_port(f->port, NULL);
	assert_true(fd < 0);
	f->port = port2;
	pid_t again = serving_pid(f);
	assert_true(again != server && again != f->pid);
	_cleanup_free_ char *uid = proc_status_field(again, "Uid");
	assert_true(strtoul(uid, NULL, 10) != 0);
}

/* Socket activation: the socket systemd would pass is served, and survives a reload that
 * changes metrics_listen (which it then does not use). */
static void test_activated(void **state)
{
	_cleanup_free_ char *tmp = tu_mkdtemp("powerd-privsep-act");
	_cleanup_free_ char *cfg = xasprintf("%s/host.yaml", tmp);
	_cleanup_free_ char *log = xasprintf("%s/daemon.log", tmp);
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sa_len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sa_len), 0);
	uint16_t port = ntohs(sa.sin_port), other = tu_free_port();
	tu_write(tmp, "pc/intel-rapl:0/name", "package-0\n");
	tu_write(tmp, "pc/intel-rapl:0/energy_uj", "1000\n");
	tu_write(tmp, "pc/intel-rapl:0/max_energy_range_uj", "262143328850\n");
	tu_writef(tmp, "host.yaml",
		"libvirt_uri: test:///default\ninterval: 200ms\nshare_dir: %s/share\n"
		"powercap_root: %s/pc\nmetrics_listen: 127.0.0.1:%u\n",
		tmp, tmp, other);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char pid_str[32];
		int log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (log_fd < 0 || dup2(log_fd, STDERR_FILENO) < 0 || dup2(lfd, 3) < 0 ||
			fcntl(3, F_SETFD, 0) < 0)
			_exit(127);
		snprintf(pid_str, sizeof(pid_str), "%d", (int)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pid_str, 1);
		unsetenv("NOTIFY_SOCKET");
		execl(POWERD_HOST_BIN, POWERD_HOST_BIN, "-c", cfg, (char *)NULL);
		_exit(127);
	}
	close(lfd);
	assert_int_equal(wait_200(port, NULL), 200);
	assert_true(connect_port(other, NULL) < 0);
	tu_writef(tmp, "host.yaml",
		"libvirt_uri: test:///default\ninterval: 200ms\nshare_dir: %s/share\n"
		"powercap_root: %s/pc\nmetrics_listen: 127.0.0.1:%u\n",
		tmp, tmp, tu_free_port());
	assert_int_equal(kill(pid, SIGHUP), 0);
	pause_ms(500);
	assert_int_equal(wait_200(port, NULL), 200);
	int status = tu_stop(pid, 10000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	tu_umount_under(tmp);
	tu_rm_rf(tmp);
}

/* powerd-host status against the running daemon: exit status, and the output into *ret. */
static int run_status(struct fx *f, char **ret)
{
	_cleanup_free_ char *out = xasprintf("%s/status.out", f->tmp);
	char *argv[] = { POWERD_HOST_BIN, "-c", f->cfg, "status", NULL };
	int status = tu_wait(tu_spawn(argv, NULL, out), 10000);

	assert_true(WIFEXITED(status));
	if (ret)
		*ret = tu_read(f->tmp, "status.out");
	return WEXITSTATUS(status);
}

static void test_status(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *out = NULL;
	int rc = -1;

	/* From the server process, over the unix socket the privileged part made. */
	for (int i = 0; i < 200 && rc != 0; i++) {
		free(out);
		out = NULL;
		rc = run_status(f, &out);
		if (rc != 0)
			pause_ms(20);
	}
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "DOMAIN"));
	assert_non_null(strstr(out, "healthy; libvirt connected; 1 domains"));
	/* The stock domain's line: name, state, share, channel (none yet), CPU source. */
	char name[64], st[32], share[32], channel[32], cpu[32];
	const char *line = strstr(out, "\ntest ");
	assert_non_null(line);
	assert_int_equal(
		sscanf(line, "%63s %31s %31s %31s %31s", name, st, share, channel, cpu), 5);
	assert_string_equal(name, "test");
	assert_string_equal(st, "running");
	assert_string_equal(share, "tmpfs");
	assert_string_equal(cpu, "libvirt");
	/* The socket is the server's: a connection to it is held by the unprivileged process. */
	_cleanup_free_ char *sock = xasprintf("%s/run/status.sock", f->tmp);
	struct stat stb;
	assert_int_equal(stat(sock, &stb), 0);
	assert_true(S_ISSOCK(stb.st_mode));
	assert_int_equal(stb.st_mode & 0777, 0666);
	/* A second daemon on the same status socket leaves it to the first, and its stop does not
	 * remove it. */
	tu_writef(f->tmp, "second.yaml",
		"libvirt_uri: test:///default\ninterval: 200ms\nshare_dir: %s/share2\n"
		"powercap_root: %s\nmetrics_listen: \"\"\nstatus_socket: %s\n",
		f->tmp, f->pc, sock);
	_cleanup_free_ char *cfg2 = xasprintf("%s/second.yaml", f->tmp);
	_cleanup_free_ char *log2 = xasprintf("%s/second.log", f->tmp);
	char *argv2[] = { POWERD_HOST_BIN, "-c", cfg2, NULL };
	pid_t second = tu_spawn(argv2, NULL, log2);
	_cleanup_free_ char *l2 = NULL;
	for (int i = 0; i < 500 && !(l2 && strstr(l2, "another powerd-host answers")); i++) {
		free(l2);
		l2 = tu_read(f->tmp, "second.log");
		pause_ms(10);
	}
	assert_non_null(strstr(l2, "another powerd-host answers"));
	tu_stop(second, 10000);
	assert_int_equal(run_status(f, NULL), 0);
	/* Stopped: not running, exit 3, and the socket is gone. */
	tu_stop(f->pid, 10000);
	f->pid = 0;
	assert_int_equal(run_status(f, NULL), 3);
	assert_int_equal(access(sock, F_OK), -1);
}

/* Running but not healthy: libvirt cannot be reached. */
static void test_status_unhealthy(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *out = NULL;
	int rc = -1;

	tu_stop(f->pid, 10000);
	tu_writef(f->tmp, "host.yaml",
		"libvirt_uri: test:///nonexistent/powerd-no-such.xml\ninterval: 200ms\n"
		"share_dir: %s\npowercap_root: %s\nmetrics_listen: \"\"\n"
		"status_socket: %s/run/status.sock\n",
		f->share, f->pc, f->tmp);
	char *argv[] = { POWERD_HOST_BIN, "-c", f->cfg, NULL };
	f->pid = tu_spawn(argv, NULL, f->log);
	for (int i = 0; i < 200; i++) {
		free(out);
		out = NULL;
		rc = run_status(f, &out);
		if (rc == 1 && out && strstr(out, "libvirt is not connected"))
			break;
		pause_ms(20);
	}
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "libvirt is not connected"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_seccomp),
		cmocka_unit_test(test_sandbox),
		cmocka_unit_test_setup_teardown(test_server_unprivileged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hung_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_listen, setup, teardown),
		cmocka_unit_test(test_activated),
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_unhealthy, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
