/* CPU time sources: fixture proc and cgroup trees laid out as on real hosts (cgroup v2 under
 * systemd and cgroupfs, v1 hybrid), /proc/<pid>/stat with a hostile comm, garbage, and the real
 * /proc of this process. */
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
		cmocka_unit_test_setup_teardown(test_host_cpu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_proc, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
