/* CPU time sources: fixture proc and cgroup trees laid out as on real hosts (cgroup v2 under
 * systemd and cgroupfs, v1 hybrid), /proc/<pid>/stat with a hostile comm, garbage, and the real
 * /proc of this process; mountinfo fixtures of hybrid, pure v2 and pure v1 hosts, cgroups that are
 * not a domain's own (issue 10 #5), two domains in one cgroup; a Proxmox VE hybrid node's VM scope.
 */
#include "tests/testutil.h"

#include <inttypes.h>

#include "common/strbuf.h"
#include "hostd/cputime.h"

struct fixture {
	char *dir;
	char *proc;
	char *cg;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->dir = tu_mkdtemp("powerd-cputime");
	f->proc = xasprintf("%s/proc", f->dir);
	f->cg = xasprintf("%s/cgroup", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rm_rf(f->dir);
	free(f->dir);
	free(f->proc);
	free(f->cg);
	free(f);
	return 0;
}

static uint64_t tick_ns(void)
{
	return NSEC_PER_SEC / (uint64_t)sysconf(_SC_CLK_TCK);
}

/* A /proc/<pid>/stat line with utime and stime as fields 14 and 15. */
static void write_pid_stat(
	const struct fixture *f, int pid, const char *comm, uint64_t ut, uint64_t st)
{
	_cleanup_free_ char *rel = xasprintf("%d/stat", pid);
	tu_writef(f->proc, rel,
		"%d (%s) S 1 %d %d 0 -1 4194560 5000 0 12 0 %" PRIu64 " %" PRIu64
		" 0 0 20 0 4 0 123456 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 "
		"17"
		" 3 0 0 0 0 0\n",
		pid, comm, pid, pid, ut, st);
}

static void write_cgroup(const struct fixture *f, int pid, const char *content)
{
	_cleanup_free_ char *rel = xasprintf("%d/cgroup", pid);
	tu_write(f->proc, rel, content);
}

static void cpu_stat(const struct fixture *f, const char *cgpath, uint64_t usec)
{
	_cleanup_free_ char *rel = xasprintf("%s/cpu.stat", cgpath);
	tu_writef(f->cg, rel,
		"usage_usec %" PRIu64 "\nuser_usec 1\nsystem_usec 2\nnr_periods 0\n"
		"nr_throttled 0\nthrottled_usec 0\n",
		usec);
}

static void test_v2_systemd(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;
	const char *scope = "machine.slice/machine-qemu\\x2d1\\x2dvm.scope";

	write_cgroup(
		f, 100, "0::/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt/emulator\n");
	write_pid_stat(f, 100, "qemu-system-x86", 1, 1);
	cpu_stat(f, scope, 5000);
	/* the leaves have their own, smaller, numbers: they must not be the ones read */
	_cleanup_free_ char *leaf = xasprintf("%s/libvirt/emulator", scope);
	_cleanup_free_ char *mid = xasprintf("%s/libvirt", scope);
	cpu_stat(f, leaf, 7);
	cpu_stat(f, mid, 9);

	assert_int_equal(cpu_source_open(f->proc, f->cg, 100, &s), 0);
	_cleanup_free_ char *want = xasprintf("%s/%s/cpu.stat", f->cg, scope);
	assert_string_equal(cpu_source_path(s), want);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 5000 * 1000);
	/* the kept fd sees the next value (same inode, as cgroupfs) */
	cpu_stat(f, scope, 6500);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 6500 * 1000);
	/* garbage: a read error, not a wrong number */
	_cleanup_free_ char *rel = xasprintf("%s/cpu.stat", scope);
	tu_write(f->cg, rel, "usage_usec 12x\n");
	assert_int_equal(cpu_source_read(s, &ns), -EINVAL);
	tu_write(f->cg, rel, "user_usec 12\n");
	assert_int_equal(cpu_source_read(s, &ns), -EINVAL);
	tu_write(f->cg, rel, "usage_usec \n");
	assert_int_equal(cpu_source_read(s, &ns), -EINVAL);
	tu_write(f->cg, rel, "usage_usec 99999999999999999999\n");
	assert_true(cpu_source_read(s, &ns) < 0);
	cpu_source_free(s);
}

static void test_v2_cgroupfs(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;

	write_cgroup(f, 101, "0::/machine/qemu-1-vm.libvirt-qemu/emulator\n");
	cpu_stat(f, "machine/qemu-1-vm.libvirt-qemu", 42);
	cpu_stat(f, "machine/qemu-1-vm.libvirt-qemu/emulator", 1);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 101, &s), 0);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 42000);
	cpu_source_free(s);
}

static void test_v1(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;

	/* hybrid: the unified line names a cgroup without cpu.stat, so v1 cpuacct is used */
	write_cgroup(f, 102,
		"12:memory:/machine/qemu-2-vm.libvirt-qemu/emulator\n"
		"4:cpu,cpuacct:/machine/qemu-2-vm.libvirt-qemu/emulator\n"
		"1:name=systemd:/machine/qemu-2-vm.libvirt-qemu\n"
		"0::/machine/qemu-2-vm.libvirt-qemu\n");
	tu_write(f->cg, "cpu,cpuacct/machine/qemu-2-vm.libvirt-qemu/cpuacct.usage", "987654321\n");
	tu_write(f->cg, "cpu,cpuacct/machine/qemu-2-vm.libvirt-qemu/emulator/cpuacct.usage", "5\n");
	assert_int_equal(cpu_source_open(f->proc, f->cg, 102, &s), 0);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 987654321);
	tu_write(f->cg, "cpu,cpuacct/machine/qemu-2-vm.libvirt-qemu/cpuacct.usage", "12 3\n");
	assert_int_equal(cpu_source_read(s, &ns), -EINVAL);
	cpu_source_free(s);

	/* cpuacct mounted alone */
	write_cgroup(f, 103, "3:cpuacct:/machine/qemu-3-vm.libvirt-qemu/emulator\n");
	tu_write(f->cg, "cpuacct/machine/qemu-3-vm.libvirt-qemu/cpuacct.usage", "77\n");
	assert_int_equal(cpu_source_open(f->proc, f->cg, 103, &s), 0);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 77);
	cpu_source_free(s);
}

static void test_proc_stat_fallback(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;

	/* no cgroup file at all; a comm with spaces and parens that mimic the fields */
	write_pid_stat(f, 200, "qemu) S 1 2 3 4 5 6 7 8 9 10 11 12 (x", 150, 50);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 200, &s), 0);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 200 * tick_ns());
	write_pid_stat(f, 200, "qemu) S 1 2 3 4 5 6 7 8 9 10 11 12 (x", 151, 60);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 211 * tick_ns());
	/* truncated or garbled */
	tu_write(f->proc, "200/stat", "200 (qemu) S 1 2 3\n");
	assert_int_equal(cpu_source_read(s, &ns), -EINVAL);
	tu_write(f->proc, "200/stat", "200 (qemu S 1 2 3\n");
	assert_int_equal(cpu_source_read(s, &ns), -EINVAL);
	cpu_source_free(s);

	/* the root cgroup is the host, not the domain; a cgroup without the file; ".." */
	write_cgroup(f, 201, "0::/\n");
	write_pid_stat(f, 201, "qemu", 1, 2);
	cpu_stat(f, "", 999999);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 201, &s), 0);
	assert_non_null(strstr(cpu_source_path(s), "/201/stat"));
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 3 * tick_ns());
	cpu_source_free(s);
	write_cgroup(f, 201, "0::/machine/../../etc\n");
	assert_int_equal(cpu_source_open(f->proc, f->cg, 201, &s), 0);
	assert_non_null(strstr(cpu_source_path(s), "/201/stat"));
	cpu_source_free(s);

	/* garbage cpu.stat at open: fall back to the process */
	write_cgroup(f, 202, "0::/machine/vm\n");
	tu_write(f->cg, "machine/vm/cpu.stat", "usage_usec -1\n");
	write_pid_stat(f, 202, "q", 10, 0);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 202, &s), 0);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 10 * tick_ns());
	cpu_source_free(s);

	/* no process */
	assert_int_equal(cpu_source_open(f->proc, f->cg, 999, &s), -ENOENT);
}

/* proc/self/mountinfo naming mounts at or below the fixture's cgroup root; mount points are
 * escaped as the kernel does (the fixture root may hold a space) */
static void write_mountinfo(const struct fixture *f, const char *const *lines, size_t n)
{
	struct strbuf b = { 0 };
	_cleanup_free_ char *esc = NULL;
	struct strbuf e = { 0 };

	for (const char *c = f->cg; *c; c++)
		if (*c == ' ')
			strbuf_puts(&e, "\\040");
		else
			strbuf_printf(&e, "%c", *c);
	esc = xstrdup(e.buf);
	strbuf_done(&e);
	strbuf_puts(&b, "22 1 0:21 / /proc rw,nosuid - proc proc rw\n");
	for (size_t i = 0; i < n; i++)
		strbuf_printf(&b, "%zu 22 0:%zu %s\n", 30 + i, 30 + i, lines[i]);
	_cleanup_free_ char *all = xstrdup(b.buf);
	strbuf_done(&b);
	/* every "@" in the lines stands for the escaped cgroup root */
	struct strbuf o = { 0 };
	for (const char *c = all; *c; c++)
		if (*c == '@')
			strbuf_puts(&o, esc);
		else
			strbuf_printf(&o, "%c", *c);
	tu_write(f->proc, "self/mountinfo", o.buf);
	strbuf_done(&o);
}

static int setup_space(void **state)
{
	struct fixture *f;

	setup(state);
	f = *state;
	free(f->cg);
	f->cg = xasprintf("%s/cgroup root", f->dir);
	return 0;
}

/* This machine (Debian 12 under a systemd that is not PID 1, stock qemu.conf): v1 controllers
 * under a tmpfs, cgroup2 at unified/; libvirt puts qemu in a per-domain cgroup everywhere except
 * cpuacct, which stays at the root. */
static void test_hybrid_unified(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;
	static const char *const mounts[] = {
		"/ @ rw,relatime - tmpfs tmpfs rw,mode=755",
		"/ @/cpu rw,relatime - cgroup cgroup rw,cpu",
		"/ @/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
		"/ @/memory rw,relatime - cgroup cgroup rw,memory",
		"/ @/systemd rw,relatime - cgroup cgroup rw,name=systemd",
		"/ @/unified rw,relatime shared:9 - cgroup2 cgroup2 rw",
		"/ /elsewhere rw - cgroup2 cgroup2 rw",
	};
	const char *dom = "machine/qemu-3-vm.libvirt-qemu";

	write_mountinfo(f, mounts, ARRAY_SIZE(mounts));
	write_cgroup(f, 300,
		"9:name=systemd:/\n8:pids:/\n4:memory:/machine/qemu-3-vm.libvirt-qemu/emulator\n"
		"2:cpuacct:/\n1:cpu:/machine/qemu-3-vm.libvirt-qemu/emulator\n"
		"0::/machine/qemu-3-vm.libvirt-qemu/emulator\n");
	write_pid_stat(f, 300, "qemu-system-x86", 1, 1);
	/* decoys: the cpuacct root (the whole host), a v2 file where the v2 tree is not mounted */
	tu_write(f->cg, "cpuacct/cpuacct.usage", "999999999999\n");
	_cleanup_free_ char *decoy = xasprintf("%s/cpu.stat", dom);
	tu_write(f->cg, decoy, "usage_usec 1\n");
	_cleanup_free_ char *uni = xasprintf("unified/%s", dom);
	cpu_stat(f, uni, 2286000);
	_cleanup_free_ char *leaf = xasprintf("%s/emulator", uni);
	cpu_stat(f, leaf, 5);

	assert_int_equal(cpu_source_open(f->proc, f->cg, 300, &s), 0);
	_cleanup_free_ char *want = xasprintf("%s/%s/cpu.stat", f->cg, uni);
	assert_string_equal(cpu_source_path(s), want);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP2);
	assert_string_equal(cpu_source_kind_name(cpu_source_kind(s)), "cgroup2");
	assert_false(cpu_source_has_foreign_cgroup(s));
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, UINT64_C(2286000000));
	cpu_source_free(s);

	/* the same with cpuacct per domain too: v2 still wins (it has the whole cgroup) */
	write_cgroup(f, 301,
		"2:cpuacct:/machine/qemu-4-vm.libvirt-qemu/emulator\n"
		"0::/machine/qemu-4-vm.libvirt-qemu/emulator\n");
	tu_write(f->cg, "cpuacct/machine/qemu-4-vm.libvirt-qemu/cpuacct.usage", "7\n");
	cpu_stat(f, "unified/machine/qemu-4-vm.libvirt-qemu", 8);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 301, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP2);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 8000);
	cpu_source_free(s);

	/* v2 present but without usage (an old kernel): cpuacct of the domain */
	tu_write(f->cg, "unified/machine/qemu-4-vm.libvirt-qemu/cpu.stat", "");
	assert_int_equal(cpu_source_open(f->proc, f->cg, 301, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP1);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 7);
	cpu_source_free(s);
}

/* A Proxmox VE node before 7 (hybrid: v1 controllers co-mounted as systemd mounts them, cgroup2 at
 * unified/): qemu-server's transient scope qemu.slice/<vmid>.scope made by systemd in the unified
 * and name=systemd trees and in each v1 controller the unit accounts, the others at the root. The
 * scope is accepted only as vmid's own (cpu_source_open_in), never the slice of all VMs. */
static void test_proxmox_hybrid(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;
	static const char *const mounts[] = {
		"/ @ ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755",
		"/ @/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
		"rw,nsdelegate",
		"/ @/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup "
		"rw,xattr,name=systemd",
		"/ @/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup "
		"rw,cpu,cpuacct",
		"/ @/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory",
		"/ @/blkio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,blkio",
	};
	const char *own = "/qemu.slice/100.scope";

	write_mountinfo(f, mounts, ARRAY_SIZE(mounts));
	write_cgroup(f, 400,
		"12:blkio:/qemu.slice/100.scope\n11:memory:/qemu.slice/100.scope\n"
		"8:pids:/qemu.slice/100.scope\n4:cpu,cpuacct:/qemu.slice/100.scope\n"
		"2:cpuset:/\n1:name=systemd:/qemu.slice/100.scope\n0::/qemu.slice/100.scope\n");
	write_pid_stat(f, 400, "kvm", 1, 1);
	/* decoys: the host, the slice of every VM, another VM */
	tu_write(f->cg, "cpu,cpuacct/cpuacct.usage", "999999999999999\n");
	tu_write(f->cg, "cpu,cpuacct/qemu.slice/cpuacct.usage", "88888888888\n");
	tu_write(f->cg, "cpu,cpuacct/qemu.slice/101.scope/cpuacct.usage", "4444\n");
	cpu_stat(f, "unified", 999999999);
	cpu_stat(f, "unified/qemu.slice", 88888888);
	cpu_stat(f, "unified/qemu.slice/101.scope", 4);
	tu_write(f->cg, "cpu,cpuacct/qemu.slice/100.scope/cpuacct.usage", "3141592653\n");
	cpu_stat(f, "unified/qemu.slice/100.scope", 3141592);

	/* a kernel with cpu.stat in every cgroup2 (4.15 and later): the unified tree's scope */
	assert_int_equal(cpu_source_open_in(f->proc, f->cg, 400, own, &s), 0);
	_cleanup_free_ char *want2 = xasprintf("%s/unified/qemu.slice/100.scope/cpu.stat", f->cg);
	assert_string_equal(cpu_source_path(s), want2);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP2);
	assert_false(cpu_source_has_foreign_cgroup(s));
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, UINT64_C(3141592000));
	cpu_source_free(s);

	/* an older kernel (no cpu.stat in the unified tree): v1 cpuacct of the same scope */
	_cleanup_free_ char *stat2 = xasprintf("%s/unified/qemu.slice/100.scope/cpu.stat", f->cg);
	assert_int_equal(unlink(stat2), 0);
	assert_int_equal(cpu_source_open_in(f->proc, f->cg, 400, own, &s), 0);
	_cleanup_free_ char *want1 =
		xasprintf("%s/cpu,cpuacct/qemu.slice/100.scope/cpuacct.usage", f->cg);
	assert_string_equal(cpu_source_path(s), want1);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP1);
	assert_false(cpu_source_has_foreign_cgroup(s));
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, UINT64_C(3141592653));
	cpu_source_free(s);

	/* a scope without CPU accounting in v1 (cpuacct left at the slice): the slice is every
	 * VM's, never read; the process instead, flagged */
	write_cgroup(f, 401,
		"4:cpu,cpuacct:/qemu.slice\n1:name=systemd:/qemu.slice/100.scope\n"
		"0::/qemu.slice/100.scope\n");
	write_pid_stat(f, 401, "kvm", 30, 12);
	assert_int_equal(cpu_source_open_in(f->proc, f->cg, 401, own, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_PROCESS);
	assert_true(cpu_source_has_foreign_cgroup(s));
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 42 * tick_ns());
	cpu_source_free(s);

	/* vmid 100's qemu in VM 101's scope (both trees): neither is read for 100 */
	write_cgroup(f, 402,
		"4:cpu,cpuacct:/qemu.slice/101.scope\n1:name=systemd:/qemu.slice/101.scope\n"
		"0::/qemu.slice/101.scope\n");
	write_pid_stat(f, 402, "kvm", 5, 5);
	assert_int_equal(cpu_source_open_in(f->proc, f->cg, 402, own, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_PROCESS);
	assert_true(cpu_source_has_foreign_cgroup(s));
	cpu_source_free(s);
	/* nor would libvirt's rules take a Proxmox scope */
	assert_int_equal(cpu_source_open(f->proc, f->cg, 400, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_PROCESS);
	assert_true(cpu_source_has_foreign_cgroup(s));
	cpu_source_free(s);
}

/* Pure v2 at the cgroup root (systemd's default since 247) */
static void test_pure_v2(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;
	static const char *const mounts[] = {
		"/ @ rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
		"rw,nsdelegate,memory_recursiveprot",
	};
	const char *scope = "machine.slice/machine-qemu\\x2d1\\x2dvm.scope";

	write_mountinfo(f, mounts, ARRAY_SIZE(mounts));
	write_cgroup(
		f, 310, "0::/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt/emulator\n");
	cpu_stat(f, scope, 123);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 310, &s), 0);
	_cleanup_free_ char *want = xasprintf("%s/%s/cpu.stat", f->cg, scope);
	assert_string_equal(cpu_source_path(s), want);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP2);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 123000);
	cpu_source_free(s);

	/* a domain in a custom partition below machine.slice */
	write_cgroup(f, 311,
		"0::/machine.slice/machine-prod.slice/machine-qemu\\x2d2\\x2dvm.scope/libvirt/"
		"emulator\n");
	cpu_stat(f, "machine.slice/machine-prod.slice/machine-qemu\\x2d2\\x2dvm.scope", 5);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 311, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP2);
	cpu_source_free(s);
}

/* Pure v1 (cgroup_no_v1 unset, no unified mount): cpu,cpuacct co-mounted, and a container
 * whose cpuacct mount shows only its own subtree. */
static void test_pure_v1(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;
	static const char *const mounts[] = {
		"/ @ ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755",
		"/ @/systemd rw shared:9 - cgroup cgroup rw,xattr,name=systemd",
		"/ @/cpu,cpuacct rw shared:12 - cgroup cgroup rw,cpu,cpuacct",
		"/ @/memory rw shared:13 - cgroup cgroup rw,memory",
	};

	write_mountinfo(f, mounts, ARRAY_SIZE(mounts));
	write_cgroup(f, 320,
		"5:memory:/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt/emulator\n"
		"3:cpu,cpuacct:/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt/emulator\n"
		"1:name=systemd:/machine.slice/machine-qemu\\x2d1\\x2dvm.scope\n0::/\n");
	tu_write(f->cg, "cpu,cpuacct/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/cpuacct.usage",
		"4242\n");
	/* "0::/" with no v2 mounted says nothing: not a foreign cgroup */
	assert_int_equal(cpu_source_open(f->proc, f->cg, 320, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP1);
	assert_string_equal(cpu_source_kind_name(cpu_source_kind(s)), "cgroup1");
	assert_false(cpu_source_has_foreign_cgroup(s));
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 4242);
	cpu_source_free(s);

	/* a container's view: the mount shows /lxc/c1 at its point */
	static const char *const ct[] = {
		"/lxc/c1 @/cpuacct rw - cgroup cgroup rw,cpuacct",
	};
	write_mountinfo(f, ct, ARRAY_SIZE(ct));
	write_cgroup(f, 321, "2:cpuacct:/lxc/c1/machine/qemu-1-vm.libvirt-qemu/emulator\n");
	tu_write(f->cg, "cpuacct/machine/qemu-1-vm.libvirt-qemu/cpuacct.usage", "55\n");
	assert_int_equal(cpu_source_open(f->proc, f->cg, 321, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP1);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 55);
	cpu_source_free(s);
	/* a cgroup outside what the mount shows is not reachable there */
	write_cgroup(f, 322, "2:cpuacct:/lxc/c2/machine/qemu-1-vm.libvirt-qemu/emulator\n");
	write_pid_stat(f, 322, "qemu", 3, 0);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 322, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_PROCESS);
	cpu_source_free(s);
}

/* Issue 10 #5: qemu not in a per-domain cgroup (cgroup_controllers = [], a containerised
 * libvirtd): its cgroup is libvirtd's, or the root, or a container's. Never read it. */
static void test_foreign_cgroup(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;
	static const char *const mounts[] = {
		"/ @/cpuacct rw - cgroup cgroup rw,cpuacct",
		"/ @/unified rw - cgroup2 cgroup2 rw",
	};
	static const char *const cgroups[] = {
		"2:cpuacct:/system.slice/libvirtd.service\n0::/system.slice/libvirtd.service\n",
		"2:cpuacct:/\n0::/\n",
		"0::/machine.slice/libpod-0123abcd.scope\n",
		"0::/machine.slice\n",
		"0::/machine\n",
		"0::/user.slice/qemu-1-vm.libvirt-qemu\n",
	};

	write_mountinfo(f, mounts, ARRAY_SIZE(mounts));
	tu_write(f->cg, "cpuacct/cpuacct.usage", "1000000000000\n");
	tu_write(f->cg, "cpuacct/system.slice/libvirtd.service/cpuacct.usage", "1000000000\n");
	cpu_stat(f, "unified", 1000000000);
	cpu_stat(f, "unified/system.slice/libvirtd.service", 1000000);
	cpu_stat(f, "unified/machine.slice/libpod-0123abcd.scope", 1000000);
	cpu_stat(f, "unified/machine.slice", 1000000);
	cpu_stat(f, "unified/machine", 1000000);
	cpu_stat(f, "unified/user.slice/qemu-1-vm.libvirt-qemu", 1000000);
	for (size_t i = 0; i < ARRAY_SIZE(cgroups); i++) {
		write_cgroup(f, 330, cgroups[i]);
		write_pid_stat(f, 330, "qemu-system-x86", 4, 6);
		assert_int_equal(cpu_source_open(f->proc, f->cg, 330, &s), 0);
		assert_int_equal(cpu_source_kind(s), CPU_SOURCE_PROCESS);
		assert_string_equal(cpu_source_kind_name(cpu_source_kind(s)), "process");
		assert_true(cpu_source_has_foreign_cgroup(s));
		assert_int_equal(cpu_source_read(s, &ns), 0);
		assert_int_equal(ns, 10 * tick_ns());
		cpu_source_free(s);
	}
}

/* Two domains resolved to one cgroup: the identity survives the switch to the process. */
static void test_shared_cgroup(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *a, *b, *c;
	uint64_t ns;

	write_cgroup(f, 340, "0::/machine/qemu-1-vm.libvirt-qemu/emulator\n");
	write_cgroup(f, 341, "0::/machine/qemu-1-vm.libvirt-qemu\n");
	write_cgroup(f, 342, "0::/machine/qemu-2-other.libvirt-qemu/emulator\n");
	cpu_stat(f, "machine/qemu-1-vm.libvirt-qemu", 77);
	cpu_stat(f, "machine/qemu-2-other.libvirt-qemu", 88);
	write_pid_stat(f, 340, "qemu", 1, 0);
	write_pid_stat(f, 341, "qemu", 2, 0);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 340, &a), 0);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 341, &b), 0);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 342, &c), 0);
	assert_true(cpu_source_is_same_cgroup(a, b));
	assert_false(cpu_source_is_same_cgroup(a, c));
	assert_int_equal(cpu_source_use_process(b), 0);
	assert_int_equal(cpu_source_kind(b), CPU_SOURCE_PROCESS);
	assert_int_equal(cpu_source_read(b, &ns), 0);
	assert_int_equal(ns, 2 * tick_ns());
	assert_true(cpu_source_is_same_cgroup(a, b));
	/* no process left: the cgroup stays */
	assert_int_equal(cpu_source_use_process(c), -ENOENT);
	assert_int_equal(cpu_source_kind(c), CPU_SOURCE_CGROUP2);
	assert_int_equal(cpu_source_read(c, &ns), 0);
	assert_int_equal(ns, 88000);
	cpu_source_free(a);
	cpu_source_free(b);
	cpu_source_free(c);
}

static void test_mountinfo_hostile(void **state)
{
	struct fixture *f = *state;
	struct cpu_source *s;
	uint64_t ns;
	static const char *const mounts[] = {
		"",
		"- cgroup2",
		"/ @/a",
		"/ @/b rw - cgroup2",
		"/ @/c rw - cgroup",
		"relative @/d rw - cgroup2 cgroup2 rw",
		"/ @/unified rw - cgroup2 cgroup2 rw",
	};

	write_mountinfo(f, mounts, ARRAY_SIZE(mounts));
	write_cgroup(f, 350, "0::/machine/qemu-1-vm.libvirt-qemu/emulator\n");
	cpu_stat(f, "unified/machine/qemu-1-vm.libvirt-qemu", 9);
	cpu_stat(f, "d/machine/qemu-1-vm.libvirt-qemu", 10);
	assert_int_equal(cpu_source_open(f->proc, f->cg, 350, &s), 0);
	assert_int_equal(cpu_source_kind(s), CPU_SOURCE_CGROUP2);
	assert_int_equal(cpu_source_read(s, &ns), 0);
	assert_int_equal(ns, 9000);
	cpu_source_free(s);
}

static void test_host_cpu(void **state)
{
	struct fixture *f = *state;
	struct host_cpu *h;
	uint64_t busy, all;

	tu_write(f->proc, "stat",
		"cpu  100 5 50 1000 20 3 2 1 7 0\n"
		"cpu0 50 2 25 500 10 1 1 0 3 0\n"
		"intr 12345 1 2 3\n");
	assert_int_equal(host_cpu_open(f->proc, &h), 0);
	assert_int_equal(host_cpu_read(h, &busy, &all), 0);
	/* guest (7) is inside user: not counted twice; steal (1) is not busy (the host's own
	 * hypervisor ran something else), it stays in all */
	assert_int_equal(all, (100 + 5 + 50 + 1000 + 20 + 3 + 2 + 1) * tick_ns());
	assert_int_equal(busy, (100 + 5 + 50 + 3 + 2) * tick_ns());
	tu_write(f->proc, "stat", "cpu  200 5 50 1100 20 3 2 900 7 0\n");
	assert_int_equal(host_cpu_read(h, &busy, &all), 0);
	assert_int_equal(busy, (200 + 5 + 50 + 3 + 2) * tick_ns());
	/* an old kernel's 8 fields */
	tu_write(f->proc, "stat", "cpu  1 2 3 4 5 6 7 8\n");
	assert_int_equal(host_cpu_read(h, &busy, &all), 0);
	assert_int_equal(all, 36 * tick_ns());
	/* a future kernel's extra field is ignored, not fatal */
	tu_write(f->proc, "stat", "cpu  1 2 3 4 5 6 7 8 9 10 11\n");
	assert_int_equal(host_cpu_read(h, &busy, &all), 0);
	assert_int_equal(all, 36 * tick_ns());
	static const char *const bad[] = { "cpu  1 2 3\n", "cpu  1 2 3 4 5 6 7 x\n",
		"cpu0 1 2 3 4 5 6 7 8\n", "cpu  1 2 3 4 5 6 7 8", "",
		"cpu  1 2 3 4 5 6 7 8 9 10 1x\n" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		tu_write(f->proc, "stat", bad[i]);
		assert_int_equal(host_cpu_read(h, &busy, &all), -EINVAL);
	}
	host_cpu_free(h);

	/* a long first chunk (many CPUs and interrupts): only the first line matters */
	struct strbuf b = { 0 };
	strbuf_puts(&b, "cpu  10 0 10 80 0 0 0 0 0 0\n");
	for (int i = 0; i < 2000; i++)
		strbuf_printf(&b, "cpu%d 1 0 1 8 0 0 0 0 0 0\n", i);
	tu_write(f->proc, "stat", b.buf);
	strbuf_done(&b);
	assert_int_equal(host_cpu_open(f->proc, &h), 0);
	assert_int_equal(host_cpu_read(h, &busy, &all), 0);
	assert_int_equal(busy, 20 * tick_ns());
	host_cpu_free(h);

	tu_write(f->proc, "stat", "garbage\n");
	assert_int_equal(host_cpu_open(f->proc, &h), -EINVAL);
}

static void test_real_proc(void **state)
{
	struct cpu_source *s;
	struct host_cpu *h;
	uint64_t ns1, ns2, busy1, all1, busy2, all2;

	assert_int_equal(cpu_source_open("/proc", "/sys/fs/cgroup", getpid(), &s), 0);
	print_message("own cpu source: %s\n", cpu_source_path(s));
	assert_int_equal(cpu_source_read(s, &ns1), 0);
	/* burn a little CPU so the number moves */
	volatile uint64_t x = 0;
	for (uint64_t i = 0; i < 50000000; i++)
		x += i;
	(void)x;
	assert_int_equal(cpu_source_read(s, &ns2), 0);
	assert_true(ns2 >= ns1);
	cpu_source_free(s);

	assert_int_equal(host_cpu_open("/proc", &h), 0);
	assert_int_equal(host_cpu_read(h, &busy1, &all1), 0);
	assert_int_equal(host_cpu_read(h, &busy2, &all2), 0);
	assert_true(all1 > 0 && busy1 <= all1);
	assert_true(all2 >= all1 && busy2 >= busy1);
	host_cpu_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_v2_systemd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_cgroupfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proc_stat_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hybrid_unified, setup_space, teardown),
		cmocka_unit_test_setup_teardown(test_proxmox_hybrid, setup_space, teardown),
		cmocka_unit_test_setup_teardown(test_pure_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pure_v1, setup_space, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_cgroup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_cgroup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mountinfo_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_cpu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_proc, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
