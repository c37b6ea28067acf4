/* The loop's cost per VM with each domain manager (issue 16): what powerd-host does every
 * interval for N running VMs, the shared tick (accounting_tick) plus the manager's own periodic
 * work, with Proxmox's manager next to libvirt's, both in this process, measured side by side
 * (paired: a burst of load elsewhere hits both); and the discovery, the first full listing.
 *   bench_manager N [RUNS]
 * proxmox: N qemu stand-ins, each a shell blocked on a pipe whose command line carries
 * -pidfile <run_dir>/<vmid>.pid and which wrote that pid file itself (as qemu does), each in its
 * own scope qemu.slice/<vmid>.scope of the cgroup v2 hierarchy seen from a cgroup namespace (as
 * on a Proxmox node: CPU time from the scope's cpu.stat), and a config <config_dir>/<vmid>.conf
 * in qemu-server's format each (without powerd's hookscript: the channel is left alone, with its
 * reason). The loop work is the tick every interval and, every PVE_RESCAN_INTERVALS (2)
 * intervals, the backstop rescan (domains_reconcile: what the manager's rescan timer calls), with
 * inotify on run_dir and config_dir and a pidfd per qemu live; then the loop's pending events.
 * libvirt: libvirt's test driver from a file of N running domains, in-process (as bench_define);
 * its manager has no periodic work (events only, none here). The test driver has no qemu
 * process, so its manager would take CPU time from the driver (virDomainGetInfo, answered from
 * memory); a qemu:///system node's manager reads the domain's machine scope instead. So, as
 * there: N more stand-ins, each in machine.slice/machine-qemu\x2d<id>\x2dvm<vmid>.scope/libvirt/
 * emulator (where libvirt puts qemu's main thread), its pid file in a directory as libvirt's
 * /run/libvirt/qemu/<name>.pid, and each domain given that pid as libvirt's manager does when it
 * sees the domain run (its pid file read, domains_set_pid, within the listing), timed as part of
 * its discovery: both managers read one cpu.stat per VM and tick. --libvirt-driver leaves the
 * driver's CPU time (the comparison made before; bench=manager_*_driver lines).
 * Both: shares mounted (tmpfs, in a private mount namespace), trees written every tick,
 * channel: auto, one fixture powercap tree (advanced before every interval, not timed), host CPU
 * time from the real /proc/stat.
 * Prints a line per manager: CPU per VM per tick of the whole loop work and of the tick alone
 * (medians of the runs; each run interleaves the four a rescan period at a time), Proxmox's over
 * libvirt's run by run (median), CPU of one rescan, and the discovery: wall and CPU time of
 * domains_start() (every VM found, its share mounted, its tree laid out). Needs root. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/harness.h"
#include "common/log.h"
#include "common/util.h"
#include "hostd/accounting.h"
#include "hostd/domains.h"
#include "hostd/host_config.h"
#include "hostd/libvirt_loop.h"
#include "hostd/manager.h"

#define COUNT_MAX 3000
#define VMID_BASE 100
#define RESCAN_EVERY 2 /* manager_proxmox.c's PVE_RESCAN_INTERVALS */

enum { PVE, LIBVIRT, SIDES };

/* One manager's daemon state. */
struct side {
	struct host_config cfg;
	struct accounting *a;
	struct domains *d;
};

struct ctx {
	size_t n;
	struct fixture *f;
	struct event_base *base;
	struct side side[SIDES];
	char *cg_root;		/* the cgroup v2 hierarchy from our cgroup namespace */
	bool is_libvirt_driver; /* libvirt's CPU time from its test driver, not the scopes */
	/* the qemu stand-ins, each side's */
	pid_t *kids[SIDES];
	int hold_fd[SIDES]; /* the write end of the pipe they wait on: closed, they exit */
	char *lv_pid_dir;   /* libvirt's: where their pid files are (/run/libvirt/qemu) */
};

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = xstrdup(value);
}

static void set_take(char **field, char *value)
{
	free(*field);
	*field = value;
}

static void xmkdir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		bench_die(path, errno);
}

static void write_text(const char *path, const char *text)
{
	FILE *out = fopen(path, "we");

	if (!out || fputs(text, out) < 0 || fclose(out) != 0)
		bench_die(path, errno ? errno : EIO);
}

/* --- proxmox: the node ------------------------------------------------------------------- */

/* A config as qemu-server writes one (a typical Linux VM), without powerd's hookscript. */
static void write_pve_conf(const char *dir, uint32_t vmid)
{
	_cleanup_free_ char *path = xasprintf("%s/%u.conf", dir, vmid);
	_cleanup_free_ char *text = xasprintf(
		"agent: 1\nboot: order=scsi0;net0\ncores: 2\ncpu: x86-64-v2-AES\nmemory: 2048\n"
		"meta: creation-qemu=7.2.0,ctime=1733480000\nname: vm%u\n"
		"net0: virtio=BC:24:11:%02X:%02X:%02X,bridge=vmbr0,firewall=1\nnuma: 0\n"
		"ostype: l26\nscsi0: local-lvm:vm-%u-disk-0,iothread=1,size=32G\n"
		"scsihw: virtio-scsi-single\nsmbios1: uuid=6f0c3a8e-2b1d-4f5e-9a7c-%012x\n"
		"sockets: 1\nvmgenid: 3c6a0b52-55d6-4b0c-9bc1-%012x\n",
		vmid, (vmid >> 16) & 0xff, (vmid >> 8) & 0xff, vmid & 0xff, vmid, vmid, vmid);

	write_text(path, text);
}

/* A qemu stand-in born in cgroup dir: a shell that writes its pid file and waits for EOF on the
 * pipe; its command line is "sh -c … -pidfile <pidfile>", as qemu's. */
static pid_t spawn_standin(const char *cgroup_dir, const char *pidfile, int wait_fd)
{
	_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", cgroup_dir);

	pid_t pid = fork();
	if (pid < 0)
		bench_die("fork", errno);
	if (pid > 0)
		return pid;
	int fd = open(procs, O_WRONLY | O_CLOEXEC);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1 || null < 0 || dup2(wait_fd, 0) < 0 ||
		dup2(null, 1) < 0 || dup2(null, 2) < 0)
		_exit(127);
	execl("/bin/sh", "sh", "-c", "echo $$ >\"$1\" && read x", "-pidfile", pidfile,
		(char *)NULL);
	_exit(127);
}

static void wait_pidfile(const char *path, pid_t pid)
{
	for (int t = 0;; t++) {
		char buf[32];
		size_t len;
		if (read_file_at(AT_FDCWD, path, buf, sizeof(buf) - 1, &len) == 0 && len > 0 &&
			buf[len - 1] == '\n' && strtol(buf, NULL, 10) == (long)pid)
			return;
		if (t > 10000)
			bench_die(path, ETIMEDOUT);
		usleep(1000);
	}
}

static int hold_pipe(struct ctx *c, int side)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0)
		bench_die("pipe", errno);
	c->hold_fd[side] = fds[1];
	c->kids[side] = xcalloc(c->n, sizeof(*c->kids[side]));
	return fds[0];
}

/* The node's directories, configs and running VMs, every pid file written. */
static void pve_node(struct ctx *c, struct host_config *cfg)
{
	_cleanup_free_ char *slice = xasprintf("%s/qemu.slice", c->cg_root);

	set_take(&cfg->pve_run_dir, xasprintf("%s/run-qemu-server", c->f->root));
	set_take(&cfg->pve_config_dir, xasprintf("%s/etc-pve-local-qemu-server", c->f->root));
	xmkdir(cfg->pve_run_dir);
	xmkdir(cfg->pve_config_dir);
	xmkdir(slice);
	int wait_fd = hold_pipe(c, PVE);
	for (size_t i = 0; i < c->n; i++) {
		_cleanup_free_ char *scope = xasprintf("%s/%zu.scope", slice, VMID_BASE + i);
		_cleanup_free_ char *pidfile =
			xasprintf("%s/%zu.pid", cfg->pve_run_dir, VMID_BASE + i);
		write_pve_conf(cfg->pve_config_dir, (uint32_t)(VMID_BASE + i));
		xmkdir(scope);
		c->kids[PVE][i] = spawn_standin(scope, pidfile, wait_fd);
	}
	close(wait_fd);
	for (size_t i = 0; i < c->n; i++) {
		_cleanup_free_ char *path =
			xasprintf("%s/%zu.pid", cfg->pve_run_dir, VMID_BASE + i);
		wait_pidfile(path, c->kids[PVE][i]);
	}
}

/* libvirt's scope of domain vm<vmid> (id: libvirt's domain id), below the cgroup root. */
static char *lv_scope(struct ctx *c, size_t i, const char *below)
{
	return xasprintf("%s/machine.slice/machine-qemu\\x2d%zu\\x2dvm%zu.scope%s", c->cg_root,
		i + 1, VMID_BASE + i, below);
}

/* libvirt's qemu stand-ins (on a qemu:///system node): each in its scope's libvirt/emulator. */
static void libvirt_standins(struct ctx *c)
{
	_cleanup_free_ char *slice = xasprintf("%s/machine.slice", c->cg_root);

	c->lv_pid_dir = xasprintf("%s/run-libvirt-qemu", c->f->root);
	xmkdir(c->lv_pid_dir);
	xmkdir(slice);
	int wait_fd = hold_pipe(c, LIBVIRT);
	for (size_t i = 0; i < c->n; i++) {
		_cleanup_free_ char *scope = lv_scope(c, i, "");
		_cleanup_free_ char *lv = lv_scope(c, i, "/libvirt");
		_cleanup_free_ char *emu = lv_scope(c, i, "/libvirt/emulator");
		_cleanup_free_ char *pidfile =
			xasprintf("%s/vm%zu.pid", c->lv_pid_dir, VMID_BASE + i);
		xmkdir(scope);
		xmkdir(lv);
		xmkdir(emu);
		c->kids[LIBVIRT][i] = spawn_standin(emu, pidfile, wait_fd);
	}
	close(wait_fd);
	for (size_t i = 0; i < c->n; i++) {
		_cleanup_free_ char *path = xasprintf("%s/vm%zu.pid", c->lv_pid_dir, VMID_BASE + i);
		wait_pidfile(path, c->kids[LIBVIRT][i]);
	}
}

/* What libvirt's manager does on a qemu:///system node for each domain of its listing that runs
 * (manager_libvirt.c's lv_set_cpu: its qemu's pid file read, the pid's cgroup resolved). */
static void libvirt_set_pids(struct ctx *c)
{
	struct side *sd = &c->side[LIBVIRT];
	size_t n;
	struct domain *const *v = domains_all(sd->d, &n);

	accounting_listing_begin(sd->a);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *path = xasprintf("%s/%s.pid", c->lv_pid_dir, v[i]->name);
		char buf[32];
		size_t len;
		uint64_t pid;
		if (read_file_at(AT_FDCWD, path, buf, sizeof(buf), &len) < 0 ||
			parse_u64_content(buf, len, &pid) < 0 || pid == 0 || pid > INT32_MAX)
			bench_die(path, EINVAL);
		if (domains_set_pid(sd->d, v[i], (pid_t)pid, NULL) < 0)
			bench_die("domains_set_pid", EIO);
		v[i]->pid = (pid_t)pid;
		v[i]->has_cpu_reader = false;
	}
	accounting_listing_end(sd->a);
}

static void standins_stop(struct ctx *c, int side)
{
	if (!c->kids[side])
		return;
	close(c->hold_fd[side]); /* EOF: every shell exits */
	for (size_t i = 0; i < c->n; i++)
		waitpid(c->kids[side][i], NULL, 0);
	for (size_t i = 0; i < c->n; i++) {
		_cleanup_free_ char *scope =
			xasprintf("%s/qemu.slice/%zu.scope", c->cg_root, VMID_BASE + i);
		_cleanup_free_ char *emu = lv_scope(c, i, "/libvirt/emulator");
		_cleanup_free_ char *lv = lv_scope(c, i, "/libvirt");
		_cleanup_free_ char *lscope = lv_scope(c, i, "");
		if (side == PVE) {
			rmdir(scope);
		} else {
			rmdir(emu);
			rmdir(lv);
			rmdir(lscope);
		}
	}
	_cleanup_free_ char *slice =
		xasprintf("%s/%s", c->cg_root, side == PVE ? "qemu.slice" : "machine.slice");
	rmdir(slice);
	free(c->kids[side]);
	c->kids[side] = NULL;
}

/* --- libvirt: the test driver's node ----------------------------------------------------- */

static char *libvirt_node(struct ctx *c)
{
	_cleanup_free_ char *path = xasprintf("%s/node.xml", c->f->root);
	FILE *out = fopen(path, "we");

	if (!out)
		bench_die(path, errno);
	fputs("<node>\n", out);
	for (size_t i = 0; i < c->n; i++)
		fprintf(out,
			"<domain type='test'><name>vm%zu</name>"
			"<uuid>6f0c3a8e-2b1d-4f5e-9a7c-%012zx</uuid><memory>2097152</memory>"
			"<vcpu>2</vcpu><os><type>hvm</type></os><devices/></domain>\n",
			VMID_BASE + i, VMID_BASE + i);
	fputs("</node>\n", out);
	if (fclose(out) != 0)
		bench_die(path, EIO);
	return xasprintf("test://%s", path);
}

/* --- the loop ---------------------------------------------------------------------------- */

/* One interval of one manager: the tick, then (with the manager) the rescan when due and the
 * loop's events. */
static void interval(struct ctx *c, int side, bool with_manager, unsigned t)
{
	struct side *sd = &c->side[side];
	int r = accounting_tick(sd->a);

	if (r < 0)
		bench_die("accounting_tick", -r);
	if (!with_manager)
		return;
	if (side == PVE && t % RESCAN_EVERY == RESCAN_EVERY - 1 &&
		(r = domains_reconcile(sd->d)) < 0)
		bench_die("rescan", -r);
	event_base_loop(c->base, EVLOOP_NONBLOCK);
}

/* One run: ticks intervals of each manager with its work and as many of its tick alone,
 * interleaved a rescan period at a time, in turns (a burst of load elsewhere hits all four
 * alike); the fixture advanced before each interval (not timed). CPU µs an interval of each. */
static void run(struct ctx *c, unsigned ticks, double ret_full[SIDES], double ret_alone[SIDES])
{
	uint64_t ns[SIDES][2] = { { 0, 0 }, { 0, 0 } };

	for (unsigned t = 0; t < ticks; t += RESCAN_EVERY)
		for (int k = 0; k < 2 * SIDES; k++) {
			/* the order turns each period: pve, lv, pve alone, lv alone; then lv first
			 */
			int side = (k + t / RESCAN_EVERY) % SIDES;
			int with = k < SIDES;
			for (unsigned i = 0; i < RESCAN_EVERY; i++) {
				fixture_advance(c->f);
				uint64_t t0 = bench_cpu_ns();
				interval(c, side, with, i);
				ns[side][with] += bench_cpu_ns() - t0;
			}
		}
	for (int side = 0; side < SIDES; side++) {
		ret_full[side] = (double)ns[side][1] / 1e3 / ticks;
		ret_alone[side] = (double)ns[side][0] / 1e3 / ticks;
	}
}

/* Every VM tracked, running, with the expected CPU-time source; that source's name. */
static const char *check_tracked(struct ctx *c, int side)
{
	size_t n;
	struct domain *const *v = domains_all(c->side[side].d, &n);
	const char *want = side == LIBVIRT && c->is_libvirt_driver ? "libvirt" : "cgroup2";

	if (n != c->n)
		bench_die("not every VM is tracked", EIO);
	for (size_t i = 0; i < n; i++) {
		const char *src = accounting_domain_cpu_source(v[i]->acct);
		if (!v[i]->is_running || !src || !streq(src, want)) {
			fprintf(stderr, "bench_manager: %s: %s, CPU source %s\n", v[i]->name,
				v[i]->is_running ? "running" : "not running", src ? src : "none");
			bench_die("a VM is not as set up", EIO);
		}
		if (side == PVE && (!v[i]->title || !startswith(v[i]->title, "vm")))
			bench_die("a VM's config was not read", EIO);
	}
	return want;
}

static void side_new(struct ctx *c, int side, const char *share)
{
	struct side *sd = &c->side[side];
	int r;

	host_config_init(&sd->cfg);
	set_take(&sd->cfg.share_dir, xasprintf("%s/%s", c->f->root, share));
	set_str(&sd->cfg.powercap_root, c->f->powercap_root);
	set_str(&sd->cfg.proc_root, "/proc");
	/* the rescan is called at its due intervals: the manager's own timer never fires */
	sd->cfg.interval_ms = 3600 * 1000;
	if (side == PVE) {
		sd->cfg.manager = MANAGER_PROXMOX;
		set_str(&sd->cfg.cgroup_root, c->cg_root);
		pve_node(c, &sd->cfg);
	} else {
		sd->cfg.manager = MANAGER_LIBVIRT;
		set_str(&sd->cfg.cgroup_root, c->cg_root);
		set_take(&sd->cfg.libvirt_uri, libvirt_node(c));
		if (!c->is_libvirt_driver)
			libvirt_standins(c);
	}
	if ((r = accounting_new(&sd->cfg, &sd->a)) < 0)
		bench_die("accounting_new", -r);
	if ((r = domains_new(c->base, &sd->cfg, sd->a, &sd->d)) < 0)
		bench_die("domains_new", -r);
}

struct discovery {
	double ms, cpu_ms;
};

static void discover(struct ctx *c, int side, struct discovery *ret)
{
	uint64_t w0 = bench_wall_ns(), c0 = bench_cpu_ns();

	domains_start(c->side[side].d);
	if (side == LIBVIRT && !c->is_libvirt_driver)
		libvirt_set_pids(c);
	ret->ms = (double)(bench_wall_ns() - w0) / 1e6;
	ret->cpu_ms = (double)(bench_cpu_ns() - c0) / 1e6;
	if (!domains_is_connected(c->side[side].d))
		bench_die("not connected", ENOTCONN);
	event_base_loop(c->base, EVLOOP_NONBLOCK); /* the channel checks */
	check_tracked(c, side);
}

static int bench(struct ctx *c, unsigned runs)
{
	bench_raise_nofile();
	log_set_max_level(LOG_ERR);
	c->base = event_base_new();
	if (!c->base || libvirt_loop_register(c->base) < 0)
		bench_die("event loop", EIO);
	fixture_new(0, &c->f);
	side_new(c, PVE, "share-pve");
	side_new(c, LIBVIRT, "share-libvirt");

	/* What the test driver alone costs at connection (libvirtd's work on a real node). */
	uint64_t c0 = bench_cpu_ns();
	virConnectPtr conn = virConnectOpenReadOnly(c->side[LIBVIRT].cfg.libvirt_uri);
	if (!conn)
		bench_die(c->side[LIBVIRT].cfg.libvirt_uri, EIO);
	virConnectClose(conn);
	double driver_ms = (double)(bench_cpu_ns() - c0) / 1e6;
	struct discovery disc[SIDES];
	discover(c, PVE, &disc[PVE]);
	discover(c, LIBVIRT, &disc[LIBVIRT]);

	/* the first ticks lay out trees and have no previous sample: not steady state */
	double full[SIDES][BENCH_RUNS_MAX], alone[SIDES][BENCH_RUNS_MAX], f1[SIDES], a1[SIDES];
	run(c, 2 * RESCAN_EVERY, f1, a1);
	unsigned ticks = bench_ticks_for(c->n, 10);
	ticks += ticks % RESCAN_EVERY;
	double ratio[BENCH_RUNS_MAX], rescan[BENCH_RUNS_MAX];
	runs = runs > BENCH_RUNS_MAX ? BENCH_RUNS_MAX : runs ? runs : 1;
	for (unsigned k = 0; k < runs; k++) {
		run(c, ticks, f1, a1);
		for (int side = 0; side < SIDES; side++) {
			full[side][k] = f1[side];
			alone[side][k] = a1[side];
		}
		ratio[k] = f1[PVE] / f1[LIBVIRT];
		/* one rescan alone (the listing and what it defers) */
		uint64_t t0 = bench_cpu_ns();
		if (domains_reconcile(c->side[PVE].d) < 0)
			bench_die("rescan", EIO);
		event_base_loop(c->base, EVLOOP_NONBLOCK);
		rescan[k] = (double)(bench_cpu_ns() - t0) / 1e3;
	}
	double paired = bench_median(ratio, runs), us_rescan = bench_median(rescan, runs);
	for (int side = 0; side < SIDES; side++) {
		const char *src = check_tracked(c, side);
		double us_full = bench_median(full[side], runs);
		double us_alone = bench_median(alone[side], runs);
		printf("bench=manager_%s%s n=%zu runs=%u ticks=%u us_per_tick=%.2f us_per_vm=%.3f "
		       "tick_us_per_vm=%.3f ratio_to_libvirt=%.3f rescan_us=%.1f "
		       "discovery_ms=%.1f discovery_cpu_ms=%.1f driver_ms=%.1f cpu_source=%s "
		       "maxrss_kib=%ld\n",
			side == PVE ? "proxmox" : "libvirt", c->is_libvirt_driver ? "_driver" : "",
			c->n, runs, ticks, us_full, us_full / (double)c->n, us_alone / (double)c->n,
			side == PVE ? paired : 1.0, side == PVE ? us_rescan : 0.0, disc[side].ms,
			disc[side].cpu_ms, side == PVE ? 0.0 : driver_ms, src, bench_maxrss_kib());
	}
	fflush(stdout);

	for (int side = 0; side < SIDES; side++) {
		domains_free(c->side[side].d);
		accounting_free(c->side[side].a);
	}
	standins_stop(c, PVE);
	standins_stop(c, LIBVIRT);
	free(c->lv_pid_dir);
	for (int side = 0; side < SIDES; side++)
		host_config_free(&c->side[side].cfg);
	fixture_free(c->f);
	libvirt_loop_flush();
	libvirt_loop_shutdown();
	event_base_free(c->base);
	return 0;
}

/* --- the cgroup v2 hierarchy for the stand-ins ------------------------------------------- */

/* Kill what is left in dir's subtree and remove it, depth first. */
static void cg_remove(const char *dir)
{
	_cleanup_free_ char *kill_file = xasprintf("%s/cgroup.kill", dir);
	_cleanup_free_ char *slice = xasprintf("%s/qemu.slice", dir);
	_cleanup_free_ char *mslice = xasprintf("%s/machine.slice", dir);
	int fd = open(kill_file, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, "1", 1) < 0)
			fprintf(stderr, "bench_manager: %s: %s\n", kill_file, strerror(errno));
		close(fd);
	}
	for (size_t i = 0; i < COUNT_MAX; i++) {
		_cleanup_free_ char *scope = xasprintf("%s/%zu.scope", slice, VMID_BASE + i);
		_cleanup_free_ char *lscope = xasprintf(
			"%s/machine-qemu\\x2d%zu\\x2dvm%zu.scope", mslice, i + 1, VMID_BASE + i);
		_cleanup_free_ char *lv = xasprintf("%s/libvirt", lscope);
		_cleanup_free_ char *emu = xasprintf("%s/libvirt/emulator", lscope);
		for (int t = 0; t < 100 && rmdir(scope) < 0 && errno == EBUSY; t++)
			usleep(10000); /* killed, not yet gone */
		for (int t = 0; t < 100 && rmdir(emu) < 0 && errno == EBUSY; t++)
			usleep(10000);
		rmdir(lv);
		rmdir(lscope);
	}
	rmdir(slice);
	rmdir(mslice);
	if (rmdir(dir) < 0)
		fprintf(stderr, "bench_manager: cgroup %s left behind: %s\n", dir, strerror(errno));
}

/* This process stays outside and cleans up; a child moves into a cgroup of its own,
 * makes it its cgroup namespace's root (so that a stand-in's /proc/PID/cgroup reads
 * "0::/qemu.slice/<vmid>.scope", as on a node) and runs the benchmark. */
static int bench_in_cgroup(struct ctx *c, unsigned runs)
{
	const char *tmpdir = getenv("BENCH_TMPDIR");
	_cleanup_free_ char *dir = xasprintf("%s/powerd-bench-cg.XXXXXX", tmpdir ? tmpdir : "/tmp");

	if (!mkdtemp(dir))
		bench_die("mkdtemp", errno);
	_cleanup_free_ char *full = xasprintf("%s/full", dir);
	_cleanup_free_ char *ns = xasprintf("%s/ns", dir);
	_cleanup_free_ char *base = xasprintf("%s/powerd-bench.%d", full, (int)getpid());
	xmkdir(full);
	xmkdir(ns);
	if (mount("cgroup2", full, "cgroup2", 0, NULL) < 0)
		bench_die("mount cgroup2", errno);
	xmkdir(base);
	fflush(stdout);
	pid_t child = fork();
	if (child < 0)
		bench_die("fork", errno);
	if (child == 0) {
		_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", base);
		write_text(procs, "0");
		if (unshare(CLONE_NEWCGROUP) < 0)
			bench_die("unshare cgroup", errno);
		if (mount("cgroup2", ns, "cgroup2", 0, NULL) < 0)
			bench_die("mount cgroup2 in the namespace", errno);
		c->cg_root = ns;
		_exit(bench(c, runs));
	}
	int status = 0;
	waitpid(child, &status, 0);
	cg_remove(base);
	umount2(ns, MNT_DETACH);
	umount2(full, MNT_DETACH);
	rmdir(ns);
	rmdir(full);
	rmdir(dir);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
	struct ctx c = { .hold_fd = { -1, -1 } };
	int argi = 1;

	if (argc > 1 && streq(argv[1], "--libvirt-driver")) {
		c.is_libvirt_driver = true;
		argi++;
	}
	if (argc <= argi) {
		fprintf(stderr, "usage: bench_manager [--libvirt-driver] N [RUNS]\n");
		return 2;
	}
	c.n = strtoul(argv[argi], NULL, 10);
	unsigned runs = argc > argi + 1 ? (unsigned)strtoul(argv[argi + 1], NULL, 10) : 5;
	if (c.n == 0 || c.n > COUNT_MAX)
		bench_die("N: 1 to 3000", EINVAL);
	if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		bench_die("private mount namespace", errno);
	return bench_in_cgroup(&c, runs);
}
