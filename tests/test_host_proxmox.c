/* powerd-host on Proxmox VE (DESIGN.md §5), with real parts: VM configs in qemu-server's format
 * (and hostile ones), the QMP client and the port plug against a real qemu started as
 * qemu-server starts it (QMP socket, -pidfile, -daemonize, the agent's virtio-serial qga0; TCG,
 * -S: it never runs a guest), discovery from a fixture run_dir with real processes whose command
 * line carries -pidfile, the scope cgroup's acceptance on a fixture cgroup tree and in the real
 * cgroups of this hybrid machine (as on Proxmox VE before 7), the channel's state and reason in the
 * domain manager, and the pve-hook and attach/detach commands of the real binary (attach with a
 * stand-in qm on PATH). Mounts happen in a private mount namespace. */
#include "tests/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "common/log.h"
#include "hostd/accounting.h"
#include "hostd/cputime.h"
#include "hostd/domains.h"
#include "hostd/host_config.h"
#include "hostd/pve_conf.h"
#include "hostd/pve_lock.h"
#include "hostd/pve_mark.h"
#include "hostd/pve_port.h"
#include "hostd/pve_proc.h"
#include "hostd/qmp.h"

#define QEMU "/usr/bin/qemu-system-x86_64"

static struct event_base *base;
/* Every qemu started, killed at the end even when a test failed half-way. */
static pid_t qemus[64];
static size_t n_qemus;

/* --- configs ---------------------------------------------------------------------------- */

static void test_vmid(void **state)
{
	uint32_t v;

	assert_true(pve_vmid_parse("100", 3, &v));
	assert_int_equal(v, 100);
	assert_true(pve_vmid_parse("999999999", 9, &v));
	assert_false(pve_vmid_parse("99", 2, &v));	    /* below 100 */
	assert_false(pve_vmid_parse("0100", 4, &v));	    /* leading zero */
	assert_false(pve_vmid_parse("1000000000", 10, &v)); /* above the maximum */
	assert_false(pve_vmid_parse("+100", 4, &v));
	assert_false(pve_vmid_parse("10a", 3, &v));
	assert_false(pve_vmid_parse("", 0, &v));
}

static void test_hookscript(void **state)
{
	assert_true(pve_hookscript_is_powerd("local:snippets/powerd-hook"));
	assert_true(pve_hookscript_is_powerd("cephfs-1:snippets/powerd-hook"));
	assert_false(pve_hookscript_is_powerd("local:snippets/powerd-hook.sh"));
	assert_false(pve_hookscript_is_powerd("local:snippets/other"));
	assert_false(pve_hookscript_is_powerd(":snippets/powerd-hook"));
	assert_false(pve_hookscript_is_powerd("Local:snippets/powerd-hook"));
	assert_false(pve_hookscript_is_powerd("local:snippets/../powerd-hook"));
	assert_false(pve_hookscript_is_powerd("snippets/powerd-hook"));
}

static int parse(const char *text, struct pve_conf *c, char *err)
{
	return pve_conf_parse(text, strlen(text), c, err, 256);
}

static void test_conf(void **state)
{
	struct pve_conf c;
	char err[256];

	assert_int_equal(parse("#web server\n#  of the shop\nagent: 1\nboot: order=scsi0\n"
			       "cores: 2\nhookscript: local:snippets/powerd-hook\nname: web1\n"
			       "smbios1: uuid=6A3C2F1E-1111-2222-3333-444455556666,base64=0\n"
			       "\n[snap1]\nname: old\nhookscript: local:snippets/other\nagent: 0\n",
				 &c, err),
		0);
	assert_string_equal(c.name, "web1"); /* the snapshot's name is not the VM's */
	assert_string_equal(c.hookscript, "local:snippets/powerd-hook");
	assert_true(c.has_agent_bus);
	assert_string_equal(c.uuid, "6a3c2f1e-1111-2222-3333-444455556666");
	assert_string_equal(c.lock, "");
	assert_int_equal(parse("lock: snapshot-delete\n[snap1]\nlock: backup\n", &c, err), 0);
	assert_string_equal(c.lock, "snapshot-delete"); /* the VM's, not a snapshot's */

	assert_int_equal(
		parse("agent: enabled=1,fstrim_cloned_disks=1\r\nname: a\r\n", &c, err), 0);
	assert_true(c.has_agent_bus);
	assert_string_equal(c.name, "a");
	assert_int_equal(parse("agent: 1,type=isa\n", &c, err), 0);
	assert_false(c.has_agent_bus); /* the agent on ISA serial: no qga0 */
	assert_int_equal(parse("agent: 0\n", &c, err), 0);
	assert_false(c.has_agent_bus);
	assert_int_equal(parse("memory: 512\n", &c, err), 0);
	assert_false(c.has_agent_bus);
	assert_string_equal(c.name, "");
	assert_string_equal(c.hookscript, "");
}

static void test_conf_hostile(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} bad[] = {
		{ "name: web1\nnot a key line\n", "line 2: not a \"key: value\" line" },
		{ "name: web 1\n", "line 1: name: not a DNS name" },
		{ "name: \n", "line 1: name: empty or too long" },
		{ "agent: yes\n", "line 1: agent: not an agent setting" },
		{ "agent: 1,type=usb\n", "line 1: agent: not an agent setting" },
		{ "smbios1: uuid=not-a-uuid\n", "line 1: smbios1: uuid is not a UUID" },
		{ "lock: Migrate\n", "line 1: lock: not a lock name" },
		{ "lock: \n", "line 1: lock: empty or too long" },
		{ "name: a\x1b[2Jb\n", "line 1: name: a control character" },
		{ "Name: upper\n", "line 1: not a \"key: value\" line" },
		{ ": nokey\n", "line 1: not a \"key: value\" line" },
	};
	struct pve_conf c;
	char err[256];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(parse(bad[i].text, &c, err), -EINVAL);
		assert_string_equal(err, bad[i].want);
	}
	char nul[] = "name: a\0b\n";
	assert_int_equal(pve_conf_parse(nul, sizeof(nul) - 1, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
	/* a name longer than PVE_NAME_MAX */
	_cleanup_free_ char *longname = xmalloc(PVE_NAME_MAX + 16);
	memset(longname, 'a', PVE_NAME_MAX + 1);
	longname[PVE_NAME_MAX + 1] = '\0';
	_cleanup_free_ char *text = xasprintf("name: %s\n", longname);
	assert_int_equal(parse(text, &c, err), -EINVAL);
}

static void test_conf_read(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("powerd-pveconf");
	struct pve_conf c;
	char err[512];

	tu_write(dir, "100.conf", "name: web1\nagent: 1\n");
	assert_int_equal(pve_conf_read(dir, 100, &c, err, sizeof(err)), 0);
	assert_string_equal(c.name, "web1");
	assert_int_equal(pve_conf_read(dir, 101, &c, err, sizeof(err)), -ENOENT);
	/* a symlink is not followed (a config is a file qemu-server wrote) */
	_cleanup_free_ char *target = xasprintf("%s/100.conf", dir);
	_cleanup_free_ char *link = xasprintf("%s/102.conf", dir);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(pve_conf_read(dir, 102, &c, err, sizeof(err)), -ELOOP);
	/* a file larger than PVE_CONF_MAX is refused, not read without end */
	_cleanup_free_ char *big = xasprintf("%s/103.conf", dir);
	int fd = open(big, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, PVE_CONF_MAX + 1), 0);
	close(fd);
	assert_int_equal(pve_conf_read(dir, 103, &c, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "103.conf: larger than"));
	/* a directory */
	_cleanup_free_ char *sub = xasprintf("%s/104.conf", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_not_equal(pve_conf_read(dir, 104, &c, err, sizeof(err)), 0);
	tu_rm_rf(dir);
}

/* --- a real qemu, as qemu-server starts it ----------------------------------------------- */

/* qemu with its QMP socket, pid file and (with_agent) the agent's virtio-serial bus qga0,
 * daemonized; -S: no guest ever runs. Returns its pid. */
static pid_t start_qemu_as(const char *run_dir, uint32_t vmid, bool with_agent, bool is_incoming)
{
	_cleanup_free_ char *qmp =
		xasprintf("socket,id=qmp,path=%s/%u.qmp,server=on,wait=off", run_dir, vmid);
	_cleanup_free_ char *pidfile = xasprintf("%s/%u.pid", run_dir, vmid);
	char *argv[32] = { QEMU, "-machine", "pc", "-accel", "tcg", "-nodefaults", "-display",
		"none", "-S", "-m", "32", "-chardev", qmp, "-mon", "chardev=qmp,mode=control",
		"-pidfile", pidfile, "-daemonize" };
	size_t n = 18;

	if (is_incoming) { /* a migration target, waiting for a state that never comes */
		argv[n++] = "-incoming";
		argv[n++] = "defer";
	}
	if (with_agent) {
		argv[n++] = "-device";
		argv[n++] = "virtio-serial,id=qga0,bus=pci.0,addr=0x8";
	}
	pid_t child = tu_spawn(argv, NULL, "/dev/null");
	pid_t pid;

	/* -daemonize: the first process exits once qemu is up (monitor listening) */
	int status = tu_wait(child, 20000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(pve_proc_read_pid(run_dir, vmid, &pid), 0);
	if (n_qemus < ARRAY_SIZE(qemus))
		qemus[n_qemus++] = pid;
	return pid;
}

static pid_t start_qemu(const char *run_dir, uint32_t vmid, bool with_agent)
{
	return start_qemu_as(run_dir, vmid, with_agent, false);
}

/* Whether pid is gone within timeout_ms (qemu daemonized: not our child, no wait(2)). */
static bool is_gone_within(pid_t pid, int timeout_ms)
{
	for (int i = 0; i < timeout_ms / 10 && kill(pid, 0) == 0; i++)
		usleep(10000);
	return kill(pid, 0) == -1;
}

static void stop_qemu(pid_t pid)
{
	if (pid > 0 && kill(pid, SIGKILL) == 0)
		is_gone_within(pid, 5000); /* gone within a few ms */
}

static bool has_qemu(void)
{
	return access(QEMU, X_OK) == 0;
}

/* The port's number and name, as qemu has them. */
static int port_prop(const char *run_dir, uint32_t vmid, const char *prop, char *ret, size_t size)
{
	_cleanup_free_ char *path = pve_port_qmp_path(run_dir, vmid);
	struct json_object *args = json_object_new_object(), *v = NULL;
	struct qmp *q;
	int r = qmp_open(path, 2000, &q);

	if (r < 0) {
		json_object_put(args);
		return r;
	}
	json_object_object_add(
		args, "path", json_object_new_string("/machine/peripheral/" PVE_PORT_DEVICE_ID));
	json_object_object_add(args, "property", json_object_new_string(prop));
	r = qmp_execute(q, "qom-get", args, &v);
	if (r == 0)
		snprintf(ret, size, "%s", json_object_get_string(v));
	json_object_put(v);
	json_object_put(args);
	qmp_close(q);
	return r;
}

static void test_port_plug(void **state)
{
	_cleanup_free_ char *run = tu_mkdtemp("powerd-pverun");
	enum pve_port_result res;
	char err[256], v[64];

	if (!has_qemu())
		skip();
	pid_t pid = start_qemu(run, 100, true);
	assert_int_equal(pve_port_plug(run, 100, 2000, false, &res, err, sizeof(err)), 0);
	assert_int_equal(res, PVE_PORT_PLUGGED);
	assert_int_equal(port_prop(run, 100, "nr", v, sizeof(v)), 0);
	assert_string_equal(v, "2");
	assert_int_equal(port_prop(run, 100, "name", v, sizeof(v)), 0);
	assert_string_equal(v, "org.powerd.energy.0");
	/* qemu listens on the port's socket */
	_cleanup_free_ char *sock = pve_port_socket_path(run, 100);
	struct stat st;
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	/* idempotent */
	assert_int_equal(pve_port_plug(run, 100, 2000, false, &res, err, sizeof(err)), 0);
	assert_int_equal(res, PVE_PORT_WAS_PLUGGED);
	/* and undone */
	assert_int_equal(pve_port_unplug(run, 100, 2000, err, sizeof(err)), 0);
	assert_int_equal(port_prop(run, 100, "nr", v, sizeof(v)), -EREMOTEIO);
	assert_int_equal(pve_port_plug(run, 100, 2000, false, &res, err, sizeof(err)), 0);
	assert_int_equal(res, PVE_PORT_PLUGGED);
	stop_qemu(pid);

	/* a migration target waiting for the state: only the hook (is_incoming_ok) plugs there */
	pid = start_qemu_as(run, 101, true, true);
	assert_int_equal(pve_port_plug(run, 101, 2000, false, &res, err, sizeof(err)), -EAGAIN);
	assert_non_null(strstr(err, "incoming migration"));
	assert_int_equal(port_prop(run, 101, "nr", v, sizeof(v)), -EREMOTEIO);
	assert_int_equal(pve_port_plug(run, 101, 2000, true, &res, err, sizeof(err)), 0);
	assert_int_equal(port_prop(run, 101, "nr", v, sizeof(v)), 0);
	stop_qemu(pid);
	tu_rm_rf(run);
}

static void test_port_no_agent(void **state)
{
	_cleanup_free_ char *run = tu_mkdtemp("powerd-pverun");
	enum pve_port_result res;
	char err[256];

	if (!has_qemu())
		skip();
	pid_t pid = start_qemu(run, 101, false);
	assert_int_equal(pve_port_plug(run, 101, 2000, false, &res, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "qga0.0"));
	/* the chardev added for it was taken back: a later plug starts clean */
	char v[64];
	assert_int_equal(port_prop(run, 101, "nr", v, sizeof(v)), -EREMOTEIO);
	stop_qemu(pid);
	tu_rm_rf(run);
}

/* QMP serves one client: while another holds it, the plug gives up within its budget. */
static void test_port_qmp_busy(void **state)
{
	_cleanup_free_ char *run = tu_mkdtemp("powerd-pverun");
	_cleanup_free_ char *path = NULL;
	enum pve_port_result res;
	struct qmp *other;
	char err[256];

	if (!has_qemu())
		skip();
	pid_t pid = start_qemu(run, 102, true);
	path = pve_port_qmp_path(run, 102);
	assert_int_equal(qmp_open(path, 2000, &other), 0);
	uint64_t t0 = now_monotonic_ns();
	assert_int_equal(pve_port_plug(run, 102, 300, false, &res, err, sizeof(err)), -ETIMEDOUT);
	uint64_t took_ms = (now_monotonic_ns() - t0) / NSEC_PER_MSEC;
	assert_true(took_ms >= 250 && took_ms < 1500);
	qmp_close(other);
	/* free again: plugged */
	assert_int_equal(pve_port_plug(run, 102, 2000, false, &res, err, sizeof(err)), 0);
	stop_qemu(pid);
	tu_rm_rf(run);
}

/* A QMP server that is not qemu (something else listening there): refused as not QMP. */
static void test_qmp_not_qmp(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("powerd-qmp");
	_cleanup_free_ char *path = xasprintf("%s/x.qmp", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct qmp *q;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	pid_t child = fork();
	if (child == 0) {
		int c = accept(l, NULL, NULL);
		static const char hello[] = "{\"hello\": 1}\n";
		if (write(c, hello, sizeof(hello) - 1) < 0)
			_exit(1);
		char buf[64];
		while (read(c, buf, sizeof(buf)) > 0)
			;
		_exit(0);
	}
	assert_int_equal(qmp_open(path, 1000, &q), -EPROTO);
	_cleanup_free_ char *none = xasprintf("%s/none.qmp", dir);
	assert_int_equal(qmp_open(none, 1000, &q), -ENOENT);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(l);
	tu_rm_rf(dir);
}

/* --- the scope's cgroup ------------------------------------------------------------------- */

static void test_scope_cgroup(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("powerd-pvecg");
	_cleanup_free_ char *proc = xasprintf("%s/proc", dir);
	_cleanup_free_ char *cg = xasprintf("%s/cgroup", dir);
	struct cpu_source *s;
	uint64_t ns;

	tu_write(proc, "4242/cgroup", "0::/qemu.slice/100.scope\n");
	tu_write(proc, "4242/stat",
		"4242 (kvm) S 1 4242 4242 0 -1 4194560 0 0 0 0 700 300 0 0 20 0 5 0 100 0 0 "
		"18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n");
	tu_write(proc, "4343/cgroup", "0::/qemu.slice/101.scope\n");
	tu_write(proc, "4343/stat",
		"4343 (kvm) S 1 4343 4343 0 -1 4194560 0 0 0 0 700 300 0 0 20 0 5 0 100 0 0 "
		"18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n");
	tu_write(cg, "qemu.slice/100.scope/cpu.stat", "usage_usec 1500000\nuser_usec 1\n");
	tu_write(cg, "qemu.slice/101.scope/cpu.stat", "usage_usec 9\n");

	/* qemu in its own scope: the scope is read */
	assert_int_equal(cpu_source_open_in(proc, cg, 4242, "/qemu.slice/100.scope", &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP2);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 1500000000ull);
	assert_false(cpu_source_has_foreign_cgroup(s));
	cpu_source_free(s);
	/* vmid 100's qemu found in another VM's scope: never read it, the process instead */
	assert_int_equal(cpu_source_open_in(proc, cg, 4343, "/qemu.slice/100.scope", &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_PROCESS);
	assert_true(cpu_source_has_foreign_cgroup(s));
	cpu_source_free(s);
	/* libvirt's rules would not take a Proxmox scope at all */
	assert_int_equal(cpu_source_open(proc, cg, 4242, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_PROCESS);
	cpu_source_free(s);
	tu_rm_rf(dir);
}

/* --- the manager --------------------------------------------------------------------------- */

struct fx {
	char *tmp, *run, *conf, *share, *pc, *proc, *lock;
	struct host_config cfg;
	struct accounting *acct;
	struct domains *d;
	pid_t kids[8];
	size_t n_kids;
};

struct until {
	bool (*pred)(struct fx *, const char *);
	struct fx *f;
	const char *name;
};

static bool until_pred(void *arg)
{
	const struct until *u = arg;
	return u->pred(u->f, u->name);
}

static bool run_until(
	bool (*pred)(struct fx *, const char *), struct fx *f, const char *name, int timeout_ms)
{
	struct until u = { pred, f, name };

	return tu_loop_until(base, until_pred, &u, timeout_ms);
}

static bool is_running(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == 0 && v.is_running;
}

static bool is_stopped(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == 0 && !v.is_running;
}

static bool is_gone(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == -ENOENT;
}

static enum channel_state want_channel;
static bool has_channel_state(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == 0 && v.channel == want_channel;
}

static const char *want_reason;
static bool has_channel_reason(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == 0 && v.channel == want_channel &&
	       strstr(v.channel_reason, want_reason);
}

/* VM name (a vmid)'s qemu has no port powerd-energy0 (qom-get finds no such device). */
static bool has_no_port(struct fx *f, const char *name)
{
	char nr[16];
	return port_prop(f->run, (uint32_t)strtoul(name, NULL, 10), "nr", nr, sizeof(nr)) ==
	       -EREMOTEIO;
}

/* What this node's port mark of vmid holds; NULL without one. */
static char *mark_of(const char *marks_dir, uint32_t vmid)
{
	_cleanup_free_ char *name = xasprintf("%u.port", vmid);

	return tu_read(marks_dir, name);
}

static bool is_marked_pid(const char *marks_dir, uint32_t vmid, pid_t pid)
{
	_cleanup_free_ char *m = mark_of(marks_dir, vmid);
	_cleanup_free_ char *want = xasprintf("pid %d\n", (int)pid);

	return m && streq(m, want);
}

static bool has_no_mark(struct fx *f, const char *name)
{
	_cleanup_free_ char *dir = xasprintf("%s/powerd", f->tmp);
	_cleanup_free_ char *m = mark_of(dir, (uint32_t)strtoul(name, NULL, 10));

	return !m;
}

static void set_str(char **p, const char *v)
{
	free(*p);
	*p = xstrdup(v);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->tmp = tu_mkdtemp("powerd-pve");
	f->run = xasprintf("%s/run", f->tmp);
	f->conf = xasprintf("%s/conf", f->tmp);
	f->share = xasprintf("%s/share", f->tmp);
	f->pc = xasprintf("%s/powercap", f->tmp);
	f->lock = xasprintf("%s/lock", f->tmp); /* made by whoever locks first, as qemu-server */
	assert_int_equal(mkdir(f->run, 0755), 0);
	assert_int_equal(mkdir(f->conf, 0755), 0);
	tu_write(f->pc, "intel-rapl:0/name", "package-0\n");
	tu_write(f->pc, "intel-rapl:0/max_energy_range_uj", "262143328850\n");
	tu_write(f->pc, "intel-rapl:0/energy_uj", "1000000\n");
	host_config_init(&f->cfg);
	f->cfg.manager = MANAGER_PROXMOX;
	f->cfg.interval_ms = 100;
	set_str(&f->cfg.pve_run_dir, f->run);
	set_str(&f->cfg.pve_config_dir, f->conf);
	set_str(&f->cfg.pve_lock_dir, f->lock);
	set_str(&f->cfg.share_dir, f->share);
	set_str(&f->cfg.powercap_root, f->pc);
	f->cfg.tmpfs_size = 1 << 20;
	assert_int_equal(accounting_new(&f->cfg, &f->acct), 0);
	assert_int_equal(domains_new(base, &f->cfg, f->acct, &f->d), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	domains_free(f->d);
	accounting_free(f->acct);
	host_config_free(&f->cfg);
	for (size_t i = 0; i < f->n_kids; i++) {
		kill(f->kids[i], SIGKILL);
		waitpid(f->kids[i], NULL, 0);
	}
	tu_umount_under(f->tmp);
	tu_rm_rf(f->tmp);
	free(f->tmp);
	free(f->run);
	free(f->conf);
	free(f->share);
	free(f->pc);
	free(f->lock);
	free(f);
	return 0;
}

/* A process standing in for a VM's qemu: this test program again, sleeping, its command line
 * carrying -pidfile <pidfile_arg>; the pid file names it. It forks nothing (a child would
 * outlive it holding our output). */
static char self_exe[4096];

static pid_t fake_vm(struct fx *f, const char *pidfile_arg, const char *pidfile)
{
	char *argv[] = { self_exe, "--fake-qemu", "-id", "100", "-pidfile", (char *)pidfile_arg,
		"-daemonize", NULL };
	pid_t pid = tu_spawn(argv, NULL, "/dev/null");

	f->kids[f->n_kids++] = pid;
	/* the command line is the new one once exec happened */
	_cleanup_free_ char *cmd = xasprintf("/proc/%d/cmdline", (int)pid);
	for (int i = 0; i < 500; i++) {
		char buf[8192];
		size_t len;
		if (read_file_at(AT_FDCWD, cmd, buf, sizeof(buf) - 1, &len) == 0 &&
			len > strlen(self_exe) + 1) {
			buf[len] = '\0';
			if (streq(buf + strlen(self_exe) + 1, "--fake-qemu"))
				break;
		}
		usleep(2000);
	}
	_cleanup_free_ char *content = xasprintf("%d\n", (int)pid);
	tu_write("/", pidfile, content);
	return pid;
}

static void kill_kid(struct fx *f, pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	for (size_t i = 0; i < f->n_kids; i++)
		if (f->kids[i] == pid)
			f->kids[i] = f->kids[--f->n_kids];
}

static void test_discovery(void **state)
{
	struct fx *f = *state;
	struct domain_view v;

	/* at start-up: a configured VM that does not run, and a running one */
	tu_write(f->conf, "100.conf", "name: web1\n");
	tu_write(f->conf, "101.conf", "name: db\nagent: 1\n");
	_cleanup_free_ char *pf101 = xasprintf("%s/101.pid", f->run);
	pid_t p101 = fake_vm(f, pf101, pf101);
	domains_start(f->d);
	assert_true(is_stopped(f, "100"));
	assert_true(is_running(f, "101"));
	assert_int_equal(domains_lookup(f->d, "101", &v), 0);
	assert_string_equal(v.title, "db");
	assert_true(v.is_persistent);
	/* the share is named by vmid */
	_cleanup_free_ char *share101 = xasprintf("%s/101/intel-rapl:0/energy_uj", f->share);
	assert_int_equal(access(share101, R_OK), 0);

	/* a start noticed from run_dir (inotify), well within two intervals */
	_cleanup_free_ char *pf100 = xasprintf("%s/100.pid", f->run);
	uint64_t t0 = now_monotonic_ns();
	pid_t p100 = fake_vm(f, pf100, pf100);
	assert_true(run_until(is_running, f, "100", 2000));
	assert_true(now_monotonic_ns() - t0 <
		    2 * f->cfg.interval_ms * NSEC_PER_MSEC + 200 * NSEC_PER_MSEC);
	assert_int_equal(domains_lookup(f->d, "100", &v), 0);
	assert_string_equal(v.title, "web1");

	/* qemu killed (its pid file stays): noticed from its pidfd; configured: shut off */
	kill_kid(f, p100);
	assert_true(run_until(is_stopped, f, "100", 2000));
	/* one without a config (migrated away meanwhile): dropped when it stops */
	_cleanup_free_ char *conf101 = xasprintf("%s/101.conf", f->conf);
	assert_int_equal(unlink(conf101), 0);
	kill_kid(f, p101);
	assert_true(run_until(is_gone, f, "101", 2000));
}

static void test_discovery_strict(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *pf = xasprintf("%s/102.pid", f->run);
	_cleanup_free_ char *other = xasprintf("%s/103.pid", f->run);
	_cleanup_free_ char *via_link = xasprintf("%s/link/104.pid", f->tmp);
	_cleanup_free_ char *link = xasprintf("%s/link", f->tmp);
	_cleanup_free_ char *pf104 = xasprintf("%s/104.pid", f->run);

	/* a pid file naming a process whose command line names another pid file */
	fake_vm(f, other, pf);
	/* a pid file that is not a vmid's */
	tu_write(f->run, "99.pid", "1\n");
	tu_write(f->run, "abc.pid", "1\n");
	/* the pid file's directory reached through a link (/var/run → /run): the same VM */
	assert_int_equal(symlink(f->run, link), 0);
	fake_vm(f, via_link, pf104);
	/* a pid file naming a pid that no longer exists */
	tu_write(f->run, "105.pid", "999999\n");
	domains_start(f->d);
	assert_true(is_gone(f, "102"));
	assert_true(is_gone(f, "103"));
	assert_true(is_gone(f, "99"));
	assert_true(is_running(f, "104"));
	assert_true(is_gone(f, "105"));
	assert_int_equal((int)domains_count(f->d), 1);
}

/* A rescan reads run_dir again only when its watch saw something; another directory put at
 * run_dir's path (the watch stays on the old one, which sees nothing) is read again all the
 * same: a VM started in it is noticed within two intervals. */
static void test_run_dir_replaced(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *old = xasprintf("%s.old", f->run);
	_cleanup_free_ char *pf = xasprintf("%s/106.pid", f->run);

	domains_start(f->d);
	assert_int_equal((int)domains_count(f->d), 0);
	/* a rescan with the watch live and nothing seen: the cached listing */
	assert_int_equal(domains_reconcile(f->d), 0);
	assert_int_equal(rename(f->run, old), 0);
	assert_int_equal(mkdir(f->run, 0755), 0);
	uint64_t t0 = now_monotonic_ns();
	fake_vm(f, pf, pf);
	assert_true(run_until(is_running, f, "106", 2000));
	assert_true(now_monotonic_ns() - t0 <
		    2 * f->cfg.interval_ms * NSEC_PER_MSEC + 200 * NSEC_PER_MSEC);
	/* and its exit, from the watch and pidfd on the new one */
	kill_kid(f, f->kids[f->n_kids - 1]);
	assert_true(run_until(is_gone, f, "106", 2000));
	tu_rm_rf(old);
}

/* include/exclude match the vmid or the name. */
static void test_include_by_name(void **state)
{
	struct fx *f = *state;

	free(f->cfg.exclude.v);
	f->cfg.exclude.v = xcalloc(2, sizeof(char *));
	f->cfg.exclude.v[0] = xstrdup("test-*");
	f->cfg.exclude.n = 1;
	tu_write(f->conf, "100.conf", "name: test-a\n");
	tu_write(f->conf, "101.conf", "name: prod-b\n");
	tu_write(f->conf, "102.conf", "name: prod-c\n");
	domains_start(f->d);
	assert_true(is_gone(f, "100"));
	assert_true(is_stopped(f, "101"));
	memcpy(f->cfg.exclude.v[0], "102", 4);
	domains_set_config(f->d, &f->cfg);
	assert_true(is_stopped(f, "100"));
	assert_true(is_gone(f, "102"));
}

/* --- a hybrid node's scopes, in real cgroups ------------------------------------------------ */

/* This machine is hybrid like a Proxmox VE node before 7: v1 controllers (cpuacct among them) and
 * name=systemd under /sys/fs/cgroup, cgroup2 at /sys/fs/cgroup/unified. The test makes VM scopes
 * there as systemd makes qemu-server's (qemu.slice/<vmid>.scope in the unified, name=systemd and
 * cpuacct trees), for vmids of this process's own so that runs side by side never meet, and
 * removes every cgroup it made in its teardown, after a failed assertion too. */
#define CG_ROOT "/sys/fs/cgroup"
#define CG_MADE_MAX 16

static struct {
	const char *unified, *cpuacct, *systemd; /* mount points; NULL where absent */
	char *made[CG_MADE_MAX];		 /* cgroups made here, in creation order */
	size_t n_made;
} hy;

static bool is_cgroup_fs(const char *path, bool is_v2)
{
	struct statfs st;

	return statfs(path, &st) == 0 &&
	       (unsigned long)st.f_type ==
		       (unsigned long)(is_v2 ? CGROUP2_SUPER_MAGIC : CGROUP_SUPER_MAGIC);
}

/* The hybrid trees at their usual places, or false (a pure v1 or v2 host: nothing to do here). */
static bool hybrid_find(void)
{
	static const char *const cpuacct[] = { CG_ROOT "/cpuacct", CG_ROOT "/cpu,cpuacct",
		CG_ROOT "/cpuacct,cpu" };

	hy.unified = is_cgroup_fs(CG_ROOT "/unified", true) ? CG_ROOT "/unified" : NULL;
	hy.systemd = is_cgroup_fs(CG_ROOT "/systemd", false) ? CG_ROOT "/systemd" : NULL;
	hy.cpuacct = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(cpuacct) && !hy.cpuacct; i++) {
		_cleanup_free_ char *usage = xasprintf("%s/cpuacct.usage", cpuacct[i]);
		if (is_cgroup_fs(cpuacct[i], false) && access(usage, R_OK) == 0)
			hy.cpuacct = cpuacct[i];
	}
	return hy.unified && hy.cpuacct;
}

static void cg_make(const char *tree, const char *cg)
{
	_cleanup_free_ char *path = xasprintf("%s%s", tree, cg);

	if (mkdir(path, 0755) == 0) {
		assert_true(hy.n_made < CG_MADE_MAX);
		hy.made[hy.n_made++] = TAKE_PTR(path);
		return;
	}
	assert_int_equal(errno, EEXIST); /* qemu.slice may be another run's */
}

static void cg_move(const char *tree, const char *cg, pid_t pid)
{
	_cleanup_free_ char *procs = xasprintf("%s%s", tree, cg);
	_cleanup_free_ char *content = xasprintf("%d\n", (int)pid);

	tu_write(procs, "cgroup.procs", content);
}

/* pid into cg of every hybrid tree, as systemd moves a scope's process. */
static void cg_move_all(const char *cg, pid_t pid)
{
	cg_move(hy.unified, cg, pid);
	cg_move(hy.cpuacct, cg, pid);
	if (hy.systemd)
		cg_move(hy.systemd, cg, pid);
}

static uint64_t cpuacct_usage(const char *cg)
{
	_cleanup_free_ char *dir = xasprintf("%s%s", hy.cpuacct, cg);
	_cleanup_free_ char *text = tu_read(dir, "cpuacct.usage");
	uint64_t ns;

	assert_int_equal(parse_u64_content(text, strlen(text), &ns), 0);
	return ns;
}

/* usage_usec of cg's cpu.stat in the unified tree, in ns */
static uint64_t cpustat_usage(const char *cg)
{
	_cleanup_free_ char *dir = xasprintf("%s%s", hy.unified, cg);
	_cleanup_free_ char *text = tu_read(dir, "cpu.stat");
	unsigned long long us;

	assert_int_equal(sscanf(text, "usage_usec %llu", &us), 1);
	return us * 1000u;
}

/* The fixture's teardown reaps every process (so the cgroups are empty), then the cgroups go,
 * the newest first; a cgroup still busy a moment after its last process was reaped is retried. */
static int teardown_hybrid(void **state)
{
	int r = teardown(state);

	for (size_t i = hy.n_made; i-- > 0;) {
		for (int t = 0; t < 100 && rmdir(hy.made[i]) < 0 && errno == EBUSY; t++)
			usleep(10 * 1000);
		free(hy.made[i]);
	}
	hy.n_made = 0;
	return r;
}

struct cpu_sources {
	const char *name[2];
	const char *source[2];
};

static void collect_source(
	void *arg, const char *name, const struct domain_view *v, const struct acct_domain *acct)
{
	struct cpu_sources *c = arg;

	for (int i = 0; i < 2; i++)
		if (streq(name, c->name[i]))
			c->source[i] = acct ? accounting_domain_cpu_source(acct) : NULL;
}

/* VM A's qemu in its own scope, with a busy process beside it: the manager reads the scope
 * (cgroup2, the unified tree's cpu.stat), and the number is the scope's: between two reads of the
 * same scope's cpu.stat, far above the qemu process's own. VM B's qemu found in A's scope:
 * refused, its process read, counted as a cgroup error. Where only the v1 tree is in reach
 * (cgroup_root at the cpuacct mount; a kernel without cpu.stat in cgroup2 takes the same path),
 * A's cpuacct.usage itself, and B's still refused. */
static void test_hybrid_scope(void **state)
{
	struct fx *f = *state;
	uint32_t a = 100000000u + 2u * (uint32_t)getpid(), b = a + 1;
	char na[16], nb[16];
	int go[2];

	if (!hybrid_find())
		skip();
	snprintf(na, sizeof(na), "%u", a);
	snprintf(nb, sizeof(nb), "%u", b);
	_cleanup_free_ char *scope_a = xasprintf("/qemu.slice/%u.scope", a);
	_cleanup_free_ char *scope_b = xasprintf("/qemu.slice/%u.scope", b);
	const char *trees[] = { hy.unified, hy.cpuacct, hy.systemd };
	for (size_t i = 0; i < ARRAY_SIZE(trees); i++) {
		if (!trees[i])
			continue;
		cg_make(trees[i], "/qemu.slice");
		cg_make(trees[i], scope_a);
		cg_make(trees[i], scope_b);
	}
	_cleanup_free_ char *conf_a = xasprintf("%u.conf", a);
	_cleanup_free_ char *conf_b = xasprintf("%u.conf", b);
	tu_write(f->conf, conf_a, "name: busy\n");
	tu_write(f->conf, conf_b, "name: astray\n");

	/* qemus and a busy process, spinning only once it is in A's scope in every tree */
	_cleanup_free_ char *pf_a = xasprintf("%s/%u.pid", f->run, a);
	_cleanup_free_ char *pf_b = xasprintf("%s/%u.pid", f->run, b);
	pid_t qa = fake_vm(f, pf_a, pf_a);
	pid_t qb = fake_vm(f, pf_b, pf_b);
	cg_move_all(scope_a, qa);
	cg_move_all(scope_a, qb);
	assert_int_equal(pipe(go), 0);
	pid_t busy = fork();
	assert_true(busy >= 0);
	if (busy == 0) {
		volatile uint64_t n = 0;
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		for (;;)
			n++;
	}
	f->kids[f->n_kids++] = busy;
	close(go[0]);
	cg_move_all(scope_a, busy);
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);

	/* the manager: A from its scope, B refused */
	domains_start(f->d);
	assert_true(is_running(f, na));
	assert_true(is_running(f, nb));
	struct cpu_sources src = { { na, nb }, { NULL, NULL } };
	domains_foreach(f->d, collect_source, &src);
	assert_string_equal(src.source[0], "cgroup2");
	assert_string_equal(src.source[1], "process");
	struct strbuf out = { 0 };
	double v;
	accounting_render(f->acct, false, &out);
	assert_int_equal(tu_metric(out.buf, "powerd_errors_total{kind=\"cgroup\"}", &v), 0);
	assert_true(v == 1);
	strbuf_done(&out);

	/* the number is the scope's: wait for the busy process to have used 0.3 s */
	for (int i = 0; i < 1000 && cpuacct_usage(scope_a) < 300 * NSEC_PER_MSEC; i++)
		usleep(10 * 1000);
	struct cpu_source *s;
	uint64_t ns, before, after, own;
	assert_int_equal(cpu_source_open_in("/proc", CG_ROOT, qa, scope_a, &s), 0);
	_cleanup_free_ char *want2 = xasprintf("%s%s/cpu.stat", hy.unified, scope_a);
	assert_string_equal(cpu_source_path(s), want2);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP2);
	/* the same tree's counter on both sides: the two trees do not count exactly the same time,
	 * since a process moved into one runs a moment before it is in the other */
	before = cpustat_usage(scope_a);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	after = cpustat_usage(scope_a);
	cpu_source_free(s);
	assert_true(before >= 300 * NSEC_PER_MSEC);
	assert_true(ns >= before && ns <= after);
	_cleanup_free_ char *qa_stat = xasprintf("/proc/%d/stat", (int)qa);
	assert_int_equal(cpu_source_open_in("/proc", "/nonexistent", qa, scope_a, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_PROCESS);
	assert_string_equal(cpu_source_path(s), qa_stat);
	assert_int_equal(cpu_source_read(s, &own), 0);
	cpu_source_free(s);
	assert_true(own < before / 2);

	/* only the v1 tree in reach: cpuacct.usage of A's scope */
	assert_int_equal(cpu_source_open_in("/proc", hy.cpuacct, qa, scope_a, &s), 0);
	_cleanup_free_ char *want1 = xasprintf("%s%s/cpuacct.usage", hy.cpuacct, scope_a);
	assert_string_equal(cpu_source_path(s), want1);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP1);
	assert_false(cpu_source_has_foreign_cgroup(s));
	before = cpuacct_usage(scope_a);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	after = cpuacct_usage(scope_a);
	cpu_source_free(s);
	assert_true(ns >= before && ns <= after);

	/* B in A's scope is refused in either tree */
	const char *roots[] = { CG_ROOT, hy.cpuacct };
	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		assert_int_equal(cpu_source_open_in("/proc", roots[i], qb, scope_b, &s), 0);
		assert_int_equal(cpu_source_kind(s), CPU_SOURCE_PROCESS);
		assert_true(cpu_source_has_foreign_cgroup(s));
		cpu_source_free(s);
	}
}

/* Channel states and reasons, with a real qemu for the plug. */
static void test_channel_states(void **state)
{
	struct fx *f = *state;
	struct domain_view v;

	if (!has_qemu())
		skip();
	tu_write(f->conf, "100.conf",
		"name: hooked\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	tu_write(f->conf, "101.conf", "name: plain\nagent: 1\n");
	tu_write(
		f->conf, "102.conf", "name: other\nagent: 1\nhookscript: local:snippets/mine.sh\n");
	tu_write(f->conf, "103.conf", "name: noagent\nhookscript: local:snippets/powerd-hook\n");
	pid_t q[4];
	for (int i = 0; i < 4; i++)
		q[i] = start_qemu(f->run, 100 + (uint32_t)i, i != 3);
	domains_start(f->d);

	want_channel = CHANNEL_CONNECTED;
	assert_true(run_until(has_channel_state, f, "100", 10000));
	char nr[16];
	assert_int_equal(port_prop(f->run, 100, "nr", nr, sizeof(nr)), 0);
	assert_string_equal(nr, "2");
	/* marked for a migration target's hook: <config_dir>/../powerd/<vmid>.port */
	_cleanup_free_ char *marks = xasprintf("%s/powerd", f->tmp);
	assert_true(is_marked_pid(marks, 100, q[0]));

	want_channel = CHANNEL_NO_HOOKSCRIPT;
	assert_true(run_until(has_channel_state, f, "101", 10000));
	assert_int_equal(domains_lookup(f->d, "101", &v), 0);
	assert_non_null(
		strstr(v.channel_reason, "qm set 101 --hookscript local:snippets/powerd-hook"));
	/* untouched: no port was plugged into it, and none is marked */
	assert_int_equal(port_prop(f->run, 101, "nr", nr, sizeof(nr)), -EREMOTEIO);
	assert_true(has_no_mark(f, "101"));

	assert_true(run_until(has_channel_state, f, "102", 10000));
	assert_int_equal(domains_lookup(f->d, "102", &v), 0);
	assert_non_null(strstr(v.channel_reason, "local:snippets/mine.sh"));

	want_channel = CHANNEL_NO_CONTROLLER;
	assert_true(run_until(has_channel_state, f, "103", 10000));
	assert_int_equal(domains_lookup(f->d, "103", &v), 0);
	assert_non_null(strstr(v.channel_reason, "qm set 103 --agent 1"));

	/* the hookscript set later (qm set): noticed, plugged, connected */
	tu_write(f->conf, "101.conf",
		"name: plain\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	want_channel = CHANNEL_CONNECTED;
	assert_true(run_until(has_channel_state, f, "101", 10000));
	assert_true(is_marked_pid(marks, 101, q[1]));

	/* and taken off by hand (qm set --delete hookscript): the port comes out again, else its
	 * migration target (no hook) would not match this qemu */
	tu_write(f->conf, "101.conf", "name: plain\nagent: 1\n");
	want_channel = CHANNEL_NO_HOOKSCRIPT;
	assert_true(run_until(has_channel_state, f, "101", 10000));
	assert_true(run_until(has_no_port, f, "101", 10000));
	assert_true(has_no_mark(f, "101"));
	tu_write(f->conf, "101.conf",
		"name: plain\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	want_channel = CHANNEL_CONNECTED;
	assert_true(run_until(has_channel_state, f, "101", 10000));

	struct strbuf out = { 0 };
	domains_render(f->d, &out);
	assert_non_null(
		strstr(out.buf, "powerd_domain_transport{domain=\"102\",transport=\"channel\","
				"state=\"no_hookscript\",reason=\"its hookscript is"));
	assert_non_null(strstr(out.buf, "powerd_domain_info{domain=\"101\",uuid=\"\",instance_name="
					"\"plain\""));
	strbuf_done(&out);

	/* its qemu gone: so is its mark */
	stop_qemu(q[0]);
	assert_true(run_until(has_no_mark, f, "100", 5000));
	for (int i = 1; i < 4; i++)
		stop_qemu(q[i]);
}

/* Another process holding VM vmid's lock as qemu-server takes it (pve_lock.h: the file opened
 * for appending, created, flock LOCK_EX), as a migration holds it on its source: a child that
 * locks, says so, and lets go when *release_fd is closed. Returns once it holds the lock. */
static pid_t hold_lock(const char *lock_dir, uint32_t vmid, int *release_fd)
{
	int ready[2], release[2];
	char c;

	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(release, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char path[4096];
		close(ready[0]);
		close(release[1]);
		snprintf(path, sizeof(path), "%s/lock-%u.conf", lock_dir, vmid);
		(void)mkdir(lock_dir, 0755);
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 || flock(fd, LOCK_EX) < 0 || write(ready[1], "1", 1) != 1)
			_exit(1);
		(void)!read(release[0], &c, 1); /* EOF: let go */
		_exit(0);
	}
	close(ready[1]);
	close(release[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*release_fd = release[1];
	return pid;
}

/* Whether process pid has path open within timeout_ms (/proc/<pid>/fd). */
static bool has_fd_within(pid_t pid, const char *path, int timeout_ms)
{
	_cleanup_free_ char *dir = xasprintf("/proc/%d/fd", (int)pid);

	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		DIR *dp = opendir(dir);
		struct dirent *e;
		bool found = false;
		while (dp && !found && (e = readdir(dp))) {
			char link[4096];
			_cleanup_free_ char *fd = xasprintf("%s/%s", dir, e->d_name);
			ssize_t n = readlink(fd, link, sizeof(link) - 1);
			if (n > 0) {
				link[n] = '\0';
				found = streq(link, path);
			}
		}
		if (dp)
			closedir(dp);
		if (found)
			return true;
		usleep(10000);
	}
	return false;
}

static void release_lock(pid_t pid, int release_fd)
{
	int status;

	close(release_fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* release_lock for a holder the fixture would otherwise kill at teardown (f->kids) */
static void release_kid_lock(struct fx *f, pid_t pid, int release_fd)
{
	for (size_t i = 0; i < f->n_kids; i++)
		if (f->kids[i] == pid)
			f->kids[i] = f->kids[--f->n_kids];
	release_lock(pid, release_fd);
}

static void test_lock(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("powerd-pvelock");
	_cleanup_free_ char *lock = xasprintf("%s/lock", dir); /* made by the first to lock */
	struct pve_conf c;
	char err[256];
	int release;

	tu_write(dir, "100.conf", "agent: 1\nhookscript: local:snippets/powerd-hook\n");
	tu_write(dir, "101.conf", "agent: 1\nlock: backup\n");
	/* free: taken, on the file qemu-server uses, with the config read under it */
	int fd = pve_lock_ports(lock, dir, 100, 0, &c, err, sizeof(err));
	assert_true(fd >= 0);
	assert_true(c.has_agent_bus);
	/* while powerd holds it, qemu-server (another open file) cannot have it */
	_cleanup_free_ char *path = xasprintf("%s/lock-100.conf", lock);
	_cleanup_close_ int other = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(other >= 0);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	close(fd);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
	assert_int_equal(flock(other, LOCK_UN), 0);
	/* held by another process: not waited for */
	pid_t holder = hold_lock(lock, 100, &release);
	assert_int_equal(pve_lock_try(lock, 100, 0, err, sizeof(err)), -EWOULDBLOCK);
	assert_non_null(strstr(err, "config locked by qemu-server"));
	assert_non_null(strstr(err, "lock-100.conf"));
	assert_int_equal(pve_lock_ports(lock, dir, 100, 0, &c, err, sizeof(err)), -EWOULDBLOCK);
	release_lock(holder, release);
	fd = pve_lock_try(lock, 100, 0, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	/* a lock: line (qemu-server works on the VM without the flock) */
	assert_int_equal(pve_lock_ports(lock, dir, 101, 0, &c, err, sizeof(err)), -EBUSY);
	assert_string_equal(c.lock, "backup");
	assert_string_equal(err, "config locked by qemu-server (lock: backup)");
	fd = pve_lock_try(lock, 101, 0, err, sizeof(err)); /* and let go on that error */
	assert_true(fd >= 0);
	close(fd);
	/* no config */
	assert_int_equal(pve_lock_ports(lock, dir, 102, 0, &c, err, sizeof(err)), -ENOENT);
	tu_rm_rf(dir);
}

/* The race that lost guests: powerd-host decides to plug a hooked VM's port while qemu-server
 * migrates it (a migration holds the VM's lock on the source from before its target's hook
 * reads this node's mark until the end). It must leave the port out and say why, and plug it
 * once qemu-server lets go; a config with a lock: line is not plugged either. */
static void test_channel_locked(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *marks = xasprintf("%s/powerd", f->tmp);
	char nr[16];
	int release;

	if (!has_qemu())
		skip();
	tu_write(f->conf, "100.conf",
		"name: busy\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	tu_write(f->conf, "101.conf",
		"name: migrating\nagent: 1\nhookscript: local:snippets/powerd-hook\n"
		"lock: migrate\n");
	pid_t q100 = start_qemu(f->run, 100, true);
	pid_t q101 = start_qemu(f->run, 101, true);
	pid_t holder = hold_lock(f->lock, 100, &release);
	f->kids[f->n_kids++] = holder;
	domains_start(f->d);

	want_channel = CHANNEL_CONNECTING;
	want_reason = "config locked by qemu-server (";
	assert_true(run_until(has_channel_reason, f, "100", 10000));
	assert_true(has_no_port(f, "100")); /* the check ran, and left the port out */
	assert_true(has_no_mark(f, "100"));
	want_reason = "config locked by qemu-server (lock: migrate): retried";
	assert_true(run_until(has_channel_reason, f, "101", 10000));
	assert_true(has_no_port(f, "101"));
	assert_true(has_no_mark(f, "101"));
	struct strbuf out = { 0 };
	domains_render(f->d, &out);
	assert_non_null(strstr(out.buf,
		"powerd_domain_transport{domain=\"101\",transport=\"channel\",state=\"connecting\","
		"reason=\"config locked by qemu-server (lock: migrate): retried\"} 1"));
	strbuf_done(&out);

	/* qemu-server lets go: plugged at the next check, and marked */
	release_kid_lock(f, holder, release);
	want_channel = CHANNEL_CONNECTED;
	assert_true(run_until(has_channel_state, f, "100", 10000));
	assert_int_equal(port_prop(f->run, 100, "nr", nr, sizeof(nr)), 0);
	assert_true(is_marked_pid(marks, 100, q100));
	/* 101 stays out while its config is locked, however often it is checked */
	assert_true(has_no_port(f, "101"));
	/* qm unlock: the config without lock: is noticed and the VM plugged */
	tu_write(f->conf, "101.conf",
		"name: migrating\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	assert_true(run_until(has_channel_state, f, "101", 10000));
	assert_true(is_marked_pid(marks, 101, q101));
	/* detach's work done while powerd-host could not take the lock: the mark and the port
	 * out, the hookscript off; then given again (attach, qm set) while qemu-server holds the
	 * VM. Once free, the port goes in and its mark is written anew (the daemon had marked
	 * this qemu itself before: what it remembers is no longer so). */
	holder = hold_lock(f->lock, 100, &release);
	f->kids[f->n_kids++] = holder;
	assert_int_equal(pve_mark_clear(f->conf, 100, 0), 0);
	char err[256];
	assert_int_equal(pve_port_unplug(f->run, 100, 2000, err, sizeof(err)), 0);
	tu_write(f->conf, "100.conf", "name: busy\nagent: 1\n");
	want_channel = CHANNEL_NO_HOOKSCRIPT;
	assert_true(run_until(has_channel_state, f, "100", 10000));
	tu_write(f->conf, "100.conf",
		"name: busy\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	want_channel = CHANNEL_CONNECTING;
	want_reason = "config locked by qemu-server (";
	assert_true(run_until(has_channel_reason, f, "100", 10000));
	assert_true(has_no_port(f, "100"));
	release_kid_lock(f, holder, release);
	want_channel = CHANNEL_CONNECTED;
	assert_true(run_until(has_channel_state, f, "100", 10000));
	assert_true(is_marked_pid(marks, 100, q100));
	/* powerd-host stops (an upgrade, a restart): the ports stay in the running qemus, and so
	 * must their marks, else a migration meanwhile would find none and plug no port on its
	 * target while the source has one */
	domains_free(f->d);
	f->d = NULL;
	assert_true(is_marked_pid(marks, 100, q100));
	assert_true(is_marked_pid(marks, 101, q101));
	stop_qemu(q100);
	stop_qemu(q101);
}

/* Marks at start-up: a stale one goes; one whose qemu runs without powerd's hookscript (taken
 * off while powerd-host was stopped) has its port taken out, mark first. */
static void test_marks_at_start(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *marks = xasprintf("%s/powerd", f->tmp);
	enum pve_port_result res;
	char err[256];

	if (!has_qemu())
		skip();
	tu_write(f->conf, "100.conf", "name: unhooked\nagent: 1\n");
	tu_write(f->conf, "101.conf",
		"name: hooked\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	pid_t q100 = start_qemu(f->run, 100, true);
	pid_t q101 = start_qemu(f->run, 101, true);
	assert_int_equal(pve_port_plug(f->run, 100, 2000, false, &res, err, sizeof(err)), 0);
	assert_int_equal(pve_port_plug(f->run, 101, 2000, false, &res, err, sizeof(err)), 0);
	assert_int_equal(pve_mark_set(f->conf, 100, q100), 0);
	assert_true(is_marked_pid(marks, 100, q100));
	assert_int_equal(pve_mark_set(f->conf, 101, q101), 0);
	tu_write(marks, "102.port", "pid 999999\n"); /* its qemu is long gone */
	tu_write(marks, "103.port", "not a mark\n");
	tu_write(marks, "notes.txt", "an operator's file\n");
	domains_start(f->d);
	assert_true(has_no_mark(f, "102"));
	assert_true(has_no_mark(f, "103"));
	_cleanup_free_ char *notes = tu_read(marks, "notes.txt");
	assert_non_null(notes);
	/* 100: its port comes out and its mark goes */
	assert_true(run_until(has_no_port, f, "100", 10000));
	assert_true(has_no_mark(f, "100"));
	/* 101: kept and connected */
	want_channel = CHANNEL_CONNECTED;
	assert_true(run_until(has_channel_state, f, "101", 10000));
	assert_true(is_marked_pid(marks, 101, q101));
	stop_qemu(q100);
	stop_qemu(q101);
}

/* This node's marks directory read-only, as pmxcfs is without quorum (a read-only bind mount in
 * the test's own mount namespace: root writes through a mode, not through this). */
static void marks_read_only(const char *config_dir, const char *marks)
{
	assert_int_equal(mount(marks, marks, NULL, MS_BIND, NULL), 0);
	assert_int_equal(mount(NULL, marks, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), 0);
	assert_int_equal(pve_mark_set(config_dir, 999, 1), -EROFS);
}

/* A plug whose mark cannot be written: a migration started before the mark is written would
 * plug no port on its target while the source has one. The port comes out again at once, the
 * channel says why, and the whole plug is retried until the mark can be written. */
static void test_mark_unwritable(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *marks = xasprintf("%s/powerd", f->tmp);
	char nr[16];

	if (!has_qemu())
		skip();
	tu_write(f->conf, "100.conf",
		"name: noquorum\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	pid_t q = start_qemu(f->run, 100, true);
	assert_int_equal(pve_mark_dir_make(f->conf), 0);
	marks_read_only(f->conf, marks);
	domains_start(f->d);

	want_channel = CHANNEL_CONNECTING;
	want_reason = "port mark not written (Read-only file system): port taken out again, "
		      "retried";
	assert_true(run_until(has_channel_reason, f, "100", 10000));
	assert_true(has_no_port(f, "100"));
	assert_true(has_no_mark(f, "100"));
	struct strbuf out = { 0 };
	domains_render(f->d, &out);
	assert_non_null(strstr(out.buf, "reason=\"port mark not written (Read-only file system): "
					"port taken out again, retried\"} 1"));
	strbuf_done(&out);
	/* and not plugged again while no mark can be written, so that the guest does not see the
	 * port come and go: with QMP held by another client, a retry that went to QMP would end
	 * in "did not answer; trying again" (the retries come after 1 s and 2 s more; what is
	 * awaited here must not come) */
	_cleanup_free_ char *qmp_path = pve_port_qmp_path(f->run, 100);
	struct qmp *other;
	assert_int_equal(qmp_open(qmp_path, 2000, &other), 0);
	want_reason = "; trying again";
	assert_false(run_until(has_channel_reason, f, "100", 3500));
	want_reason = "port mark not written (Read-only file system): port taken out again, "
		      "retried";
	assert_true(has_channel_reason(f, "100"));
	qmp_close(other);

	/* quorum back: plugged and marked at a retry */
	assert_int_equal(umount2(marks, 0), 0);
	want_channel = CHANNEL_CONNECTED;
	assert_true(run_until(has_channel_state, f, "100", 10000));
	assert_int_equal(port_prop(f->run, 100, "nr", nr, sizeof(nr)), 0);
	assert_true(is_marked_pid(marks, 100, q));
	stop_qemu(q);
}

/* A qemu that exited: its mark is read and removed only under qemu-server's lock. Held (by a
 * qm start whose hook writes the new qemu's mark meanwhile, or by the migration that moves the
 * VM away), the mark stays; once free, the next listing removes it, whether the VM is still
 * tracked (100: stopped) or not (101: its config moved away). */
static void test_mark_exited_locked(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *marks = xasprintf("%s/powerd", f->tmp);
	pid_t q[2], holder[2];
	int release[2];

	if (!has_qemu())
		skip();
	tu_write(f->conf, "100.conf",
		"name: stopped\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	tu_write(f->conf, "101.conf",
		"name: moved\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	q[0] = start_qemu(f->run, 100, true);
	q[1] = start_qemu(f->run, 101, true);
	domains_start(f->d);
	want_channel = CHANNEL_CONNECTED;
	assert_true(run_until(has_channel_state, f, "100", 10000));
	assert_true(run_until(has_channel_state, f, "101", 10000));
	assert_true(is_marked_pid(marks, 100, q[0]));
	assert_true(is_marked_pid(marks, 101, q[1]));

	for (int i = 0; i < 2; i++) {
		holder[i] = hold_lock(f->lock, 100 + i, &release[i]);
		f->kids[f->n_kids++] = holder[i];
		stop_qemu(q[i]);
	}
	_cleanup_free_ char *c101 = xasprintf("%s/101.conf", f->conf);
	assert_int_equal(unlink(c101), 0);
	assert_true(run_until(is_stopped, f, "100", 10000)); /* the listing saw them exit */
	assert_true(run_until(is_gone, f, "101", 10000));
	assert_true(is_marked_pid(marks, 100, q[0])); /* and left their marks */
	assert_true(is_marked_pid(marks, 101, q[1]));
	for (int i = 1; i >= 0; i--) /* the second holder has the first's release end too */
		release_kid_lock(f, holder[i], release[i]);
	assert_true(run_until(has_no_mark, f, "100", 10000));
	assert_true(run_until(has_no_mark, f, "101", 10000));
}

/* Every VM's QMP hung (qemu stuck on its storage: the socket accepts, no greeting ever comes),
 * powerd-host (re)started: each channel check waits out its 0.5 s budget, and the loop gets back
 * between them, so ticks and the watchdog go on. Without that, four such VMs would hold it 2 s. */
struct gap {
	struct event *ev;
	uint64_t last_ns, max_ns;
};

static void gap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gap *g = arg;
	uint64_t now = now_monotonic_ns();

	if (g->last_ns && now - g->last_ns > g->max_ns)
		g->max_ns = now - g->last_ns;
	g->last_ns = now;
}

static bool is_unanswered(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == 0 && v.channel == CHANNEL_CONNECTING &&
	       v.channel_reason && strstr(v.channel_reason, "no answer in time");
}

static void test_channel_hung_qmp(void **state)
{
	struct fx *f = *state;
	const struct timeval every = { 0, 10 * 1000 };
	struct gap g = { 0 };
	int socks[4];

	for (int i = 0; i < 4; i++) {
		char conf[16];
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(conf, sizeof(conf), "%d.conf", 100 + i);
		tu_write(f->conf, conf, "agent: 1\nhookscript: local:snippets/powerd-hook\n");
		_cleanup_free_ char *qmp = xasprintf("%s/%d.qmp", f->run, 100 + i);
		assert_true(strlen(qmp) < sizeof(sa.sun_path));
		memcpy(sa.sun_path, qmp, strlen(qmp) + 1);
		socks[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(socks[i] >= 0);
		assert_int_equal(bind(socks[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(listen(socks[i], 16), 0); /* never accepted */
		_cleanup_free_ char *pf = xasprintf("%s/%d.pid", f->run, 100 + i);
		fake_vm(f, pf, pf);
	}
	g.ev = event_new(base, -1, EV_PERSIST, gap_cb, &g);
	event_add(g.ev, &every);
	domains_start(f->d);
	g.last_ns = now_monotonic_ns(); /* the checks are due: the loop has not turned since */
	for (int i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof(name), "%d", 100 + i);
		assert_true(run_until(is_unanswered, f, name, 10000));
	}
	event_free(g.ev);
	/* about one check's 0.5 s between two turns of the loop (2 s if all four held it) */
	assert_true(g.max_ns < 1500 * NSEC_PER_MSEC);
	for (int i = 0; i < 4; i++)
		close(socks[i]);
}

/* --- the commands ----------------------------------------------------------------------- */

static char *write_config(const char *dir, const char *run, const char *conf)
{
	tu_writef(dir, "h.yaml",
		"manager: proxmox\nproxmox: { config_dir: %s, run_dir: %s, lock_dir: %s/lock }\n"
		"metrics_listen: \"\"\nstatus_socket: \"\"\n",
		conf, run, dir);
	return xasprintf("%s/h.yaml", dir);
}

static int run_host(char *const argv[], char *const env[], const char *log)
{
	pid_t pid = tu_spawn(argv, env, log);
	int status = tu_wait(pid, 20000);

	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* pmxcfs's layout: <pve>/local is a link to nodes/<this node> (qemu-server's config_dir is
 * <pve>/local/qemu-server), and the source of a migration is another nodes/<node>. */
static char *pve_layout(const char *dir)
{
	_cleanup_free_ char *local = xasprintf("%s/pve/local", dir);

	tu_write(dir, "pve/nodes/nodeB/qemu-server/.keep", "");
	tu_write(dir, "pve/nodes/nodeA/qemu-server/.keep", "");
	assert_int_equal(symlink("nodes/nodeB", local), 0);
	return xasprintf("%s/pve/local/qemu-server", dir);
}

static int hook(
	const char *cfg, const char *vmid, const char *phase, const char *from, const char *log)
{
	char *argv[] = { POWERD_HOST_BIN, "-c", (char *)cfg, "pve-hook", (char *)vmid,
		(char *)phase, NULL };
	_cleanup_free_ char *env = from ? xasprintf("PVE_MIGRATED_FROM=%s", from) : NULL;
	char *envp[] = { env, NULL };

	return run_host(argv, envp, log);
}

static void test_pve_hook(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("powerd-pvehook");
	_cleanup_free_ char *run = xasprintf("%s/run", dir);
	_cleanup_free_ char *log = xasprintf("%s/log", dir);
	_cleanup_free_ char *marks_b = xasprintf("%s/pve/nodes/nodeB/powerd", dir);
	_cleanup_free_ char *marks_a = xasprintf("%s/pve/nodes/nodeA/powerd", dir);
	char nr[16];

	if (!has_qemu())
		skip();
	assert_int_equal(mkdir(run, 0755), 0);
	_cleanup_free_ char *conf = pve_layout(dir);
	_cleanup_free_ char *cfg = write_config(dir, run, conf);
	pid_t q = start_qemu(run, 100, true);
	/* phases other than pre-start, post-start, post-stop: nothing */
	assert_int_equal(hook(cfg, "100", "pre-stop", NULL, log), 0);
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), -EREMOTEIO);
	/* post-start: the port is there when it returns, and marked on this node */
	assert_int_equal(hook(cfg, "100", "post-start", NULL, log), 0);
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), 0);
	assert_string_equal(nr, "2");
	assert_true(is_marked_pid(marks_b, 100, q));
	assert_int_equal(hook(cfg, "100", "post-start", NULL, log), 0); /* again: fine */
	/* a late post-stop while a qemu runs: the mark stays; pre-start (a new qemu): it goes */
	assert_int_equal(hook(cfg, "100", "post-stop", NULL, log), 0);
	assert_true(is_marked_pid(marks_b, 100, q));
	assert_int_equal(hook(cfg, "100", "pre-start", NULL, log), 0);
	assert_null(mark_of(marks_b, 100));
	assert_int_equal(hook(cfg, "100", "post-start", NULL, log), 0);
	stop_qemu(q);
	assert_int_equal(hook(cfg, "100", "post-stop", NULL, log), 0);
	assert_null(mark_of(marks_b, 100));
	/* not a vmid */
	assert_int_equal(hook(cfg, "0100", "post-start", NULL, log), 2);

	/* Migration targets (PVE_MIGRATED_FROM=nodeA, qemu waiting with -incoming). The source
	 * node keeps no marks: it cannot be known whether its qemu has the port, so the incoming
	 * qemu is stopped and the hook fails, before the source is touched. */
	q = start_qemu_as(run, 103, true, true);
	assert_int_equal(hook(cfg, "103", "post-start", "nodeA", log), 1);
	assert_true(is_gone_within(q, 3000));
	_cleanup_free_ char *out = tu_read(dir, "log");
	assert_non_null(strstr(out, "cannot tell whether its qemu on nodeA has powerd's port"));
	/* ... unless the target has no agent bus: then neither has a port */
	q = start_qemu_as(run, 102, false, true);
	assert_int_equal(hook(cfg, "102", "post-start", "nodeA", log), 0);
	assert_int_equal(kill(q, 0), 0);
	stop_qemu(q);

	/* nodeA keeps marks, none for 104: its qemu runs without the port (the hookscript was
	 * set while powerd-host could not plug it): the target must not have one either */
	assert_int_equal(mkdir(marks_a, 0755), 0);
	q = start_qemu_as(run, 104, true, true);
	assert_int_equal(hook(cfg, "104", "post-start", "nodeA", log), 0);
	assert_int_equal(kill(q, 0), 0);
	assert_int_equal(port_prop(run, 104, "nr", nr, sizeof(nr)), -EREMOTEIO);
	assert_null(mark_of(marks_b, 104));
	stop_qemu(q);

	/* marked on nodeA: plugged before the state comes, and marked here */
	tu_write(marks_a, "105.port", "pid 4242\n");
	q = start_qemu_as(run, 105, true, true);
	assert_int_equal(hook(cfg, "105", "post-start", "nodeA", log), 0);
	assert_int_equal(port_prop(run, 105, "nr", nr, sizeof(nr)), 0);
	assert_true(is_marked_pid(marks_b, 105, q));
	stop_qemu(q);

	/* a mark that is not one, and a source that is not a node name: unknown, refused */
	tu_write(marks_a, "106.port", "garbage");
	q = start_qemu_as(run, 106, true, true);
	assert_int_equal(hook(cfg, "106", "post-start", "nodeA", log), 1);
	assert_true(is_gone_within(q, 3000));
	q = start_qemu_as(run, 107, true, true);
	assert_int_equal(hook(cfg, "107", "post-start", "../nodeA", log), 1);
	assert_true(is_gone_within(q, 3000));

	/* an incoming qemu without PVE_MIGRATED_FROM (qemu-server's remote migration, from
	 * another cluster): the source cannot be known, refused; without the bus, fine */
	q = start_qemu_as(run, 108, true, true);
	assert_int_equal(hook(cfg, "108", "post-start", NULL, log), 1);
	assert_true(is_gone_within(q, 3000));
	free(out);
	out = tu_read(dir, "log");
	assert_non_null(strstr(out, "VM 108: its qemu waits for an incoming migration without "
				    "PVE_MIGRATED_FROM"));
	q = start_qemu_as(run, 109, false, true);
	assert_int_equal(hook(cfg, "109", "post-start", NULL, log), 0);
	assert_int_equal(kill(q, 0), 0);
	stop_qemu(q);

	/* marked, but the port cannot be plugged (port 2 taken by another device): the
	 * incoming qemu is stopped and the hook fails */
	tu_write(marks_a, "101.port", "pid 4243\n");
	q = start_qemu_as(run, 101, true, true);
	{
		_cleanup_free_ char *path = pve_port_qmp_path(run, 101);
		struct qmp *s;
		struct json_object *a = json_object_new_object();
		assert_int_equal(qmp_open(path, 2000, &s), 0);
		json_object_object_add(a, "id", json_object_new_string("x"));
		json_object_object_add(
			a, "backend", json_tokener_parse("{\"type\":\"null\",\"data\":{}}"));
		assert_int_equal(qmp_execute(s, "chardev-add", a, NULL), 0);
		json_object_put(a);
		a = json_tokener_parse("{\"driver\":\"virtserialport\",\"id\":\"taken\",\"bus\":"
				       "\"qga0.0\",\"nr\":2,\"chardev\":\"x\",\"name\":\"x\"}");
		assert_int_equal(qmp_execute(s, "device_add", a, NULL), 0);
		json_object_put(a);
		qmp_close(s);
	}
	assert_int_equal(hook(cfg, "101", "post-start", "nodeA", log), 1);
	assert_true(is_gone_within(q, 3000));

	/* this node's marks cannot be written (no quorum). A start: the port comes out again
	 * (a migration once qm start lets go would plug none on its target), the start goes on */
	marks_read_only(conf, marks_b);
	q = start_qemu(run, 110, true);
	assert_int_equal(hook(cfg, "110", "pre-start", NULL, log), 0);
	assert_int_equal(hook(cfg, "110", "post-start", NULL, log), 0);
	assert_int_equal(kill(q, 0), 0);
	assert_int_equal(port_prop(run, 110, "nr", nr, sizeof(nr)), -EREMOTEIO);
	assert_null(mark_of(marks_b, 110));
	free(out);
	out = tu_read(dir, "log");
	assert_non_null(strstr(out, "VM 110: port mark not written in "));
	stop_qemu(q);
	/* a migration target: the port stays, as the incoming state has it */
	tu_write(marks_a, "111.port", "pid 4244\n");
	q = start_qemu_as(run, 111, true, true);
	assert_int_equal(hook(cfg, "111", "post-start", "nodeA", log), 0);
	assert_int_equal(port_prop(run, 111, "nr", nr, sizeof(nr)), 0);
	assert_null(mark_of(marks_b, 111));
	free(out);
	out = tu_read(dir, "log");
	assert_non_null(strstr(out, "VM 111: cannot mark the port in "));
	stop_qemu(q);
	assert_int_equal(umount2(marks_b, 0), 0);
	tu_rm_rf(dir);
}

/* attach/detach through a stand-in qm that edits the config as `qm set` would. */
static void test_attach(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("powerd-pveattach");
	_cleanup_free_ char *run = xasprintf("%s/run", dir);
	_cleanup_free_ char *conf = xasprintf("%s/conf", dir);
	_cleanup_free_ char *bin = xasprintf("%s/bin", dir);
	_cleanup_free_ char *log = xasprintf("%s/log", dir);
	char nr[16];

	if (!has_qemu())
		skip();
	assert_int_equal(mkdir(run, 0755), 0);
	tu_write(conf, "100.conf", "name: web1\nagent: 1\n");
	tu_write(conf, "101.conf", "name: other\nagent: 1\nhookscript: local:snippets/mine\n");
	tu_writef(bin, "qm",
		"#!/bin/sh\n# qm set VMID --hookscript V | --delete hookscript\n"
		"echo \"$@\" >>%s/qm.log\nf=%s/$2.conf\n"
		"grep -v '^hookscript:' \"$f\" >\"$f.new\"\n"
		"[ \"$3\" = --hookscript ] && echo \"hookscript: $4\" >>\"$f.new\"\n"
		"mv \"$f.new\" \"$f\"\n",
		dir, conf);
	_cleanup_free_ char *qm = xasprintf("%s/qm", bin);
	assert_int_equal(chmod(qm, 0755), 0);
	_cleanup_free_ char *cfg = write_config(dir, run, conf);
	_cleanup_free_ char *path = xasprintf("PATH=%s:/usr/bin:/bin", bin);
	char *env[] = { path, NULL };
	pid_t q = start_qemu(run, 100, true);

	char *attach[] = { POWERD_HOST_BIN, "-c", cfg, "attach", "100", "--channel", NULL };
	assert_int_equal(run_host(attach, env, log), 0);
	_cleanup_free_ char *c100 = tu_read(conf, "100.conf");
	assert_non_null(strstr(c100, "hookscript: local:snippets/powerd-hook"));
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), 0); /* plugged at once */
	_cleanup_free_ char *marks = xasprintf("%s/powerd", dir);
	assert_true(is_marked_pid(marks, 100, q));

	char *detach[] = { POWERD_HOST_BIN, "-c", cfg, "detach", "100", "--channel", NULL };
	assert_int_equal(run_host(detach, env, log), 0);
	free(c100);
	c100 = tu_read(conf, "100.conf");
	assert_null(strstr(c100, "hookscript"));
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), -EREMOTEIO);
	assert_null(mark_of(marks, 100));

	/* another hookscript: refused, nothing changed, the message says how to chain */
	char *attach101[] = { POWERD_HOST_BIN, "-c", cfg, "attach", "101", "--channel", NULL };
	assert_int_equal(run_host(attach101, env, log), 1);
	_cleanup_free_ char *c101 = tu_read(conf, "101.conf");
	assert_non_null(strstr(c101, "hookscript: local:snippets/mine"));
	_cleanup_free_ char *out = tu_read(dir, "log");
	assert_non_null(strstr(out, "powerd-host pve-hook"));
	_cleanup_free_ char *qmlog = tu_read(dir, "qm.log");
	assert_non_null(qmlog);
	assert_null(strstr(qmlog, "101"));
	/* another storage */
	char *attach_st[] = { POWERD_HOST_BIN, "-c", cfg, "attach", "100", "--channel", "--storage",
		"cephfs", NULL };
	assert_int_equal(run_host(attach_st, env, log), 0);
	free(c100);
	c100 = tu_read(conf, "100.conf");
	assert_non_null(strstr(c100, "hookscript: cephfs:snippets/powerd-hook"));
	assert_true(is_marked_pid(marks, 100, q));

	/* qemu-server holds the VM (a migration): detach waits as qm does (10 s), then changes
	 * nothing, and says so */
	_cleanup_free_ char *lock = xasprintf("%s/lock", dir);
	int release;
	pid_t holder = hold_lock(lock, 100, &release);
	assert_int_equal(run_host(detach, env, log), 1);
	free(c100);
	c100 = tu_read(conf, "100.conf");
	assert_non_null(strstr(c100, "hookscript: cephfs:snippets/powerd-hook"));
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), 0);
	assert_true(is_marked_pid(marks, 100, q));
	free(out);
	out = tu_read(dir, "log");
	assert_non_null(strstr(out, "nothing changed: the energy channel's port and mark stay: "
				    "config locked by qemu-server"));
	release_lock(holder, release);
	assert_int_equal(run_host(detach, env, log), 0);
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), -EREMOTEIO);
	/* attach while the lock is held a moment (the daemon plugging, a qm set): it waits, and
	 * plugs once the lock is free */
	tu_write(
		conf, "100.conf", "name: web1\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	holder = hold_lock(lock, 100, &release);
	pid_t att = tu_spawn(attach, env, log);
	_cleanup_free_ char *lock100 = xasprintf("%s/lock-100.conf", lock);
	assert_true(has_fd_within(att, lock100, 10000)); /* it tries while the lock is held */
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), -EREMOTEIO);
	release_lock(holder, release);
	int status = tu_wait(att, 20000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), 0);
	assert_true(is_marked_pid(marks, 100, q));
	/* a lock: line (a backup runs): attach refuses before qm set, detach changes nothing */
	tu_write(conf, "101.conf", "name: other\nagent: 1\nlock: backup\n");
	free(qmlog);
	qmlog = tu_read(dir, "qm.log");
	assert_int_equal(run_host(attach101, env, log), 1);
	_cleanup_free_ char *qmlog2 = tu_read(dir, "qm.log");
	assert_string_equal(qmlog, qmlog2);
	tu_write(conf, "100.conf",
		"name: web1\nagent: 1\nhookscript: local:snippets/powerd-hook\nlock: backup\n");
	assert_int_equal(run_host(detach, env, log), 1);
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), 0);
	assert_true(is_marked_pid(marks, 100, q));
	free(out);
	out = tu_read(dir, "log");
	assert_non_null(strstr(out, "config locked by qemu-server (lock: backup)"));
	tu_write(
		conf, "100.conf", "name: web1\nagent: 1\nhookscript: local:snippets/powerd-hook\n");
	/* the mark cannot be written (no quorum): the port comes out again, attach fails and
	 * says so; once it can, attach plugs and marks */
	assert_int_equal(run_host(detach, env, log), 0);
	marks_read_only(conf, marks);
	assert_int_equal(run_host(attach, env, log), 1);
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), -EREMOTEIO);
	assert_null(mark_of(marks, 100));
	free(out);
	out = tu_read(dir, "log");
	assert_non_null(strstr(out, "port mark not written in "));
	assert_non_null(strstr(out, "(Read-only file system): port taken out again"));
	assert_int_equal(umount2(marks, 0), 0);
	assert_int_equal(run_host(attach, env, log), 0);
	assert_int_equal(port_prop(run, 100, "nr", nr, sizeof(nr)), 0);
	assert_true(is_marked_pid(marks, 100, q));
	stop_qemu(q);
	/* detach of a stopped VM removes the mark its last qemu left (stopped while none ran) */
	tu_write(marks, "100.port", "pid 4242\n");
	assert_int_equal(run_host(detach, env, log), 0);
	assert_null(mark_of(marks, 100));
	tu_rm_rf(dir);
}

static int group_setup(void **state)
{
	if (unshare(CLONE_NEWNS) == 0)
		mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL);
	log_set_max_level(LOG_WARNING);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	assert_non_null(base);
	return 0;
}

static int group_teardown(void **state)
{
	for (size_t i = 0; i < n_qemus; i++)
		stop_qemu(qemus[i]);
	event_base_free(base);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && streq(argv[1], "--fake-qemu")) {
		for (;;)
			pause();
	}
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		return 1;
	self_exe[n] = '\0';
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vmid),
		cmocka_unit_test(test_hookscript),
		cmocka_unit_test(test_conf),
		cmocka_unit_test(test_conf_hostile),
		cmocka_unit_test(test_conf_read),
		cmocka_unit_test(test_port_plug),
		cmocka_unit_test(test_port_no_agent),
		cmocka_unit_test(test_port_qmp_busy),
		cmocka_unit_test(test_qmp_not_qmp),
		cmocka_unit_test(test_scope_cgroup),
		cmocka_unit_test_setup_teardown(test_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery_strict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_dir_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_include_by_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hybrid_scope, setup, teardown_hybrid),
		cmocka_unit_test_setup_teardown(test_channel_states, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_hung_qmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_marks_at_start, setup, teardown),
		cmocka_unit_test(test_lock),
		cmocka_unit_test_setup_teardown(test_channel_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mark_unwritable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mark_exited_locked, setup, teardown),
		cmocka_unit_test(test_pve_hook),
		cmocka_unit_test(test_attach),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
