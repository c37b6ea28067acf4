/* In-guest attribution on fixture trees: cgroup v2 and v1 services, processes from a proc tree,
 * shares by busy CPU time, Σ ≤ VM energy exactly, vanished consumers dropped. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "guestd/cpuacct.h"
#include "guestd/ledger.h"

static char *dir;
static uint64_t tick_ns;

static int setup(void **state)
{
	dir = tu_mkdtemp("test_guest_attribution");
	tick_ns = NSEC_PER_SEC / (uint64_t)sysconf(_SC_CLK_TCK);
	return 0;
}

static int teardown(void **state)
{
	tu_rm_rf(dir);
	free(dir);
	return 0;
}

/* A fresh sub-directory per test. */
static char *subdir(const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);

	assert_int_equal(mkdir(p, 0755), 0);
	return p;
}

/* /proc/stat with the given busy (user) and idle ticks, plus iowait and steal that must not
 * count as busy. */
static void write_proc_stat(const char *proc, uint64_t user, uint64_t system, uint64_t idle)
{
	tu_writef(proc, "stat",
		"cpu  %llu 0 %llu %llu 77 0 0 55 0 0\n"
		"cpu0 %llu 0 %llu %llu 77 0 0 55 0 0\n"
		"intr 12345\nctxt 999\n",
		(unsigned long long)user, (unsigned long long)system, (unsigned long long)idle,
		(unsigned long long)user, (unsigned long long)system, (unsigned long long)idle);
}

static void test_parse_stat(void **state)
{
	uint64_t ns;

	/* user nice system idle iowait irq softirq steal guest guest_nice */
	assert_int_equal(cpuacct_parse_stat("cpu  10 2 3 1000 50 4 1 9 6 0\n", &ns), 0);
	assert_int_equal(ns, (10 + 2 + 3 + 4 + 1) * tick_ns);
	assert_int_equal(cpuacct_parse_stat("cpu  1 2 3 4\n", &ns), 0);
	assert_int_equal(ns, 6 * tick_ns);
	assert_int_equal(cpuacct_parse_stat("cpu0 1 2 3 4\n", &ns), -EINVAL);
	assert_int_equal(cpuacct_parse_stat("cpu  x\n", &ns), -EINVAL);
	assert_int_equal(cpuacct_parse_stat("", &ns), -EINVAL);
}

static void write_v2_unit(const char *cg, const char *unit, uint64_t usage_usec)
{
	_cleanup_free_ char *rel = xasprintf("system.slice/%s/cpu.stat", unit);

	tu_writef(cg, rel, "usage_usec %llu\nuser_usec 1\nsystem_usec 2\nnr_periods 0\n",
		(unsigned long long)usage_usec);
}

static struct ledger_entry *find(struct ledger *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->v[i].s.key, key))
			return &l->v[i];
	return NULL;
}

static void units_tick(struct ledger *l, const char *proc, const char *cg, uint64_t energy_uj)
{
	struct cpu_samples s;
	uint64_t busy;

	assert_int_equal(cpuacct_busy_ns(proc, &busy), 0);
	assert_int_equal(cpuacct_units(cg, &s), 0);
	ledger_update(l, energy_uj, busy, &s);
	assert_null(s.v);
}

static void test_units_v2(void **state)
{
	_cleanup_free_ char *proc = subdir("v2proc");
	_cleanup_free_ char *cg = subdir("v2cg");
	struct ledger l = { 0 };
	uint64_t busy_usec_per_tick = tick_ns / 1000;

	tu_write(cg, "cgroup.controllers", "cpu io memory pids\n");
	tu_write(cg, "system.slice/cgroup.controllers", "cpu\n");
	tu_write(cg, "system.slice/user.slice.not/cpu.stat", "usage_usec 1\n");
	write_v2_unit(cg, "a.service", 5000);
	write_v2_unit(cg, "b.service", 7000);
	write_v2_unit(cg, "c.service", 0);
	write_proc_stat(proc, 1000, 0, 50000);
	assert_int_equal(cpuacct_cgroup_layout(cg), CGROUP_LAYOUT_V2);

	units_tick(&l, proc, cg, 123456); /* baseline: nothing attributed */
	assert_int_equal(l.n, 3);
	assert_int_equal(ledger_sum_uj(&l), 0);
	assert_non_null(find(&l, "a.service"));
	assert_null(find(&l, "user.slice.not"));

	/* 100 busy ticks; a ran 30 ticks' worth, b 50, c nothing: a gets 30 %, b 50 %. The 9000
	 * idle ticks would halve both shares if idle were discounted again. */
	write_proc_stat(proc, 1100, 0, 59000);
	write_v2_unit(cg, "a.service", 5000 + 30 * busy_usec_per_tick);
	write_v2_unit(cg, "b.service", 7000 + 50 * busy_usec_per_tick);
	units_tick(&l, proc, cg, 1000000);
	assert_int_equal(find(&l, "a.service")->interval_uj, 300000);
	assert_int_equal(find(&l, "b.service")->interval_uj, 500000);
	assert_int_equal(find(&l, "c.service")->total_uj, 0);

	/* Shares that do not divide evenly: Σ stays ≤ the VM energy, exactly, every interval. */
	uint64_t vm_uj = 1000000;
	for (int i = 1; i <= 50; i++) {
		write_proc_stat(proc, 1100 + 3 * (uint64_t)i, 0, 59000);
		write_v2_unit(cg, "a.service", 5000 + (30 + (uint64_t)i) * busy_usec_per_tick);
		write_v2_unit(cg, "b.service", 7000 + (50 + (uint64_t)i) * busy_usec_per_tick);
		write_v2_unit(cg, "c.service", (uint64_t)i * busy_usec_per_tick);
		units_tick(&l, proc, cg, 1000);
		vm_uj += 1000;
		assert_true(ledger_sum_uj(&l) <= vm_uj);
	}
	/* Each third of 50 000 µJ, floored once over the run (remainders carried). */
	assert_int_equal(find(&l, "a.service")->total_uj, 300000 + 16666);
	/* 20 % of the second interval was nobody's (busy outside system.slice): unattributed. */
	assert_int_equal(ledger_sum_uj(&l), 800000 + 3 * 16666);

	/* b stops: its cgroup disappears and it is dropped; the others keep their totals. */
	_cleanup_free_ char *b_stat = xasprintf("%s/system.slice/b.service/cpu.stat", cg);
	_cleanup_free_ char *b_dir = xasprintf("%s/system.slice/b.service", cg);
	assert_int_equal(unlink(b_stat), 0);
	assert_int_equal(rmdir(b_dir), 0);
	uint64_t a_before = find(&l, "a.service")->total_uj;
	units_tick(&l, proc, cg, 0);
	assert_int_equal(l.n, 2);
	assert_null(find(&l, "b.service"));
	assert_int_equal(find(&l, "a.service")->total_uj, a_before);

	/* A new service after the baseline started since the last sample: all its time counts. */
	write_proc_stat(proc, 1350, 0, 59000);
	write_v2_unit(cg, "d.service", 50 * busy_usec_per_tick);
	units_tick(&l, proc, cg, 2000);
	assert_int_equal(find(&l, "d.service")->interval_uj, 1000);
	ledger_free(&l);
}

static void test_units_v1(void **state)
{
	_cleanup_free_ char *proc = subdir("v1proc");
	_cleanup_free_ char *cg = subdir("v1cg");
	_cleanup_free_ char *cg2 = subdir("v1splitcg");
	struct ledger l = { 0 };

	write_proc_stat(proc, 100, 100, 0);
	tu_write(cg, "cpu,cpuacct/system.slice/cpuacct.usage", "999999\n");
	tu_writef(cg, "cpu,cpuacct/system.slice/x.service/cpuacct.usage", "%llu\n",
		(unsigned long long)(10 * tick_ns));
	tu_write(cg, "cpu,cpuacct/system.slice/y.service/cpuacct.usage", "garbage\n");
	assert_int_equal(cpuacct_cgroup_layout(cg), CGROUP_LAYOUT_V1);
	units_tick(&l, proc, cg, 0);
	assert_int_equal(l.n, 1); /* an unreadable unit is skipped, not fatal */

	write_proc_stat(proc, 150, 150, 0); /* 100 busy ticks */
	tu_writef(cg, "cpu,cpuacct/system.slice/x.service/cpuacct.usage", "%llu\n",
		(unsigned long long)(35 * tick_ns));
	units_tick(&l, proc, cg, 4000);
	assert_int_equal(find(&l, "x.service")->interval_uj, 1000);
	ledger_free(&l);

	tu_write(cg2, "cpuacct/system.slice/z.service/cpuacct.usage", "1\n");
	assert_int_equal(cpuacct_cgroup_layout(cg2), CGROUP_LAYOUT_V1_SPLIT);
	struct cpu_samples s;
	assert_int_equal(cpuacct_units(cg2, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.v[0].unit, "z.service");
	assert_int_equal(s.v[0].cpu_ns, 1);
	cpu_samples_free(&s);

	_cleanup_free_ char *none = subdir("nocg");
	assert_int_equal(cpuacct_cgroup_layout(none), CGROUP_LAYOUT_NONE);
	assert_int_equal(cpuacct_units(none, &s), -ENOENT);
}

/* A cgroup v2 tree shaped like a real systemd machine's: services directly in system.slice and in
 * nested slices, scopes, the user manager's own sub-tree, containers in machine.slice. Usage of a
 * slice is the sum of its children (plus what exited children left behind): only the units that
 * hold processes are consumers, named by their leaf unit name. */
static void write_v2(const char *cg, const char *rel, uint64_t usage_usec)
{
	_cleanup_free_ char *p = xasprintf("%s/cpu.stat", rel);

	tu_writef(cg, p, "usage_usec %llu\nuser_usec 1\nsystem_usec 2\n",
		(unsigned long long)usage_usec);
}

static void write_v2_nested(const char *cg, uint64_t k)
{
	/* k busy ticks' worth for every unit: 9 units */
	uint64_t u = k * tick_ns / 1000;

	write_v2(cg, "init.scope", u);
	write_v2(cg, "system.slice", 999999999); /* a slice: never a consumer */
	write_v2(cg, "system.slice/ssh.service", u);
	write_v2(cg, "system.slice/system-postgresql.slice", 999999999);
	write_v2(cg, "system.slice/system-postgresql.slice/postgresql@15-main.service", u);
	write_v2(cg, "system.slice/system-getty.slice/getty@tty1.service", u);
	write_v2(cg, "system.slice/_cpu.service", u); /* systemd's escape of "cpu.service" */
	write_v2(cg, "user.slice/user-1000.slice/session-2.scope", u);
	write_v2(cg, "user.slice/user-1000.slice/user@1000.service", u);
	/* the user manager's own units are part of user@1000.service, not counted again */
	write_v2(cg, "user.slice/user-1000.slice/user@1000.service/app.slice/x.service", u);
	write_v2(cg, "machine.slice/libpod-4f2a.scope", u);
	write_v2(cg, "machine.slice/libpod-4f2a.scope/container", u);
	write_v2(cg, "machine.slice/systemd-nspawn@c1.service", u);
	write_v2(cg, "machine.slice/systemd-nspawn@c1.service/payload/system.slice/a.service", u);
}

static const char *const nested_units[] = {
	"cpu.service",
	"getty@tty1.service",
	"init.scope",
	"libpod-4f2a.scope",
	"postgresql@15-main.service",
	"session-2.scope",
	"ssh.service",
	"systemd-nspawn@c1.service",
	"user@1000.service",
};

static void assert_nested_units(struct ledger *l, uint64_t each_uj)
{
	assert_int_equal(l->n, ARRAY_SIZE(nested_units));
	for (size_t i = 0; i < ARRAY_SIZE(nested_units); i++) {
		struct ledger_entry *e = find(l, nested_units[i]);

		assert_non_null(e);
		assert_string_equal(e->s.unit, nested_units[i]);
		assert_int_equal(e->interval_uj, each_uj);
	}
}

static void test_units_v2_nested(void **state)
{
	_cleanup_free_ char *proc = subdir("v2nproc");
	_cleanup_free_ char *cg = subdir("v2ncg");
	struct ledger l = { 0 };

	tu_write(cg, "cgroup.controllers", "cpu io memory pids\n");
	tu_write(cg, "cgroup.procs", "2\n");
	tu_write(cg, "system.slice/not-a-unit/cpu.stat", "usage_usec 5\n");
	write_v2_nested(cg, 10);
	write_proc_stat(proc, 1000, 0, 50000);
	units_tick(&l, proc, cg, 0);

	/* 90 busy ticks, 10 for each of the 9 units: every µJ goes to a unit, none vanishes. */
	write_v2_nested(cg, 20);
	write_proc_stat(proc, 1090, 0, 60000);
	units_tick(&l, proc, cg, 900000);
	assert_nested_units(&l, 100000);
	assert_int_equal(ledger_sum_uj(&l), 900000);
	ledger_free(&l);
}

/* The same machine on cgroup v1 (cpu,cpuacct hierarchy; cpuacct.usage in ns). */
static void write_v1(const char *cg, const char *rel, uint64_t ns)
{
	_cleanup_free_ char *p = xasprintf("cpu,cpuacct/%s/cpuacct.usage", rel);

	tu_writef(cg, p, "%llu\n", (unsigned long long)ns);
}

static void write_v1_nested(const char *cg, uint64_t k)
{
	uint64_t ns = k * tick_ns;

	tu_writef(cg, "cpu,cpuacct/cpuacct.usage", "%llu\n", (unsigned long long)(100 * ns));
	write_v1(cg, "init.scope", ns);
	write_v1(cg, "system.slice", 100 * ns);
	write_v1(cg, "system.slice/ssh.service", ns);
	write_v1(cg, "system.slice/system-postgresql.slice/postgresql@15-main.service", ns);
	write_v1(cg, "system.slice/system-getty.slice/getty@tty1.service", ns);
	write_v1(cg, "system.slice/_cpu.service", ns);
	write_v1(cg, "user.slice/user-1000.slice/session-2.scope", ns);
	write_v1(cg, "user.slice/user-1000.slice/user@1000.service", ns);
	write_v1(cg, "user.slice/user-1000.slice/user@1000.service/app.slice/x.service", ns);
	write_v1(cg, "machine.slice/libpod-4f2a.scope", ns);
	write_v1(cg, "machine.slice/systemd-nspawn@c1.service", ns);
	write_v1(cg, "machine.slice/systemd-nspawn@c1.service/payload", ns);
}

static void test_units_v1_nested(void **state)
{
	_cleanup_free_ char *proc = subdir("v1nproc");
	_cleanup_free_ char *cg = subdir("v1ncg");
	struct ledger l = { 0 };

	/* v1 mounts every controller hierarchy next to each other; only cpuacct is read */
	tu_write(cg, "memory/system.slice/ssh.service/memory.usage_in_bytes", "1\n");
	write_v1_nested(cg, 10);
	write_proc_stat(proc, 1000, 0, 50000);
	assert_int_equal(cpuacct_cgroup_layout(cg), CGROUP_LAYOUT_V1);
	units_tick(&l, proc, cg, 0);

	write_v1_nested(cg, 20);
	write_proc_stat(proc, 1090, 0, 60000);
	units_tick(&l, proc, cg, 900000);
	assert_nested_units(&l, 100000);
	assert_int_equal(ledger_sum_uj(&l), 900000);
	ledger_free(&l);
}

static void write_pid(const char *proc, int pid, const char *comm, uint64_t utime, uint64_t stime)
{
	_cleanup_free_ char *rel = xasprintf("%d/stat", pid);

	/* Fields 3.. of proc_pid_stat(5); starttime (22) is 4242. */
	tu_writef(proc, rel,
		"%d (%s) S 1 %d %d 0 -1 4194560 100 0 0 0 %llu %llu 0 0 20 0 1 0 "
		"4242 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
		pid, comm, pid, pid, (unsigned long long)utime, (unsigned long long)stime);
}

static void write_raw(const char *d, const char *rel, const char *content, size_t len)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", d, rel);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, content, len), 0);
}

static void test_processes(void **state)
{
	_cleanup_free_ char *proc = subdir("proc");
	struct ledger l = { 0 };
	struct cpu_samples s;
	uint64_t busy;

	write_proc_stat(proc, 1000, 0, 0);
	write_pid(proc, 1, "systemd", 10, 5);
	write_pid(proc, 42, "we (i)rd) name", 100, 100);
	write_pid(proc, 300, "worker", 0, 0);
	write_raw(proc, "300/cmdline", "/usr/bin/worker\0--fast\0", 23);
	tu_write(proc, "self", "not a pid\n");
	tu_write(proc, "77/stat", "truncated (x");
	_cleanup_free_ char *exe = xasprintf("%s/300/exe", proc);
	assert_int_equal(symlink("/usr/bin/worker", exe), 0);

	assert_int_equal(cpuacct_processes(proc, true, &s), 0);
	assert_int_equal(s.n, 3); /* 77 is unparseable, "self" not a pid */
	assert_string_equal(s.v[0].pid, "1");
	assert_string_equal(s.v[1].pid, "42");
	assert_string_equal(s.v[1].comm, "we (i)rd) name");
	assert_int_equal(s.v[1].cpu_ns, 200 * tick_ns);
	assert_string_equal(s.v[2].exe, "/usr/bin/worker");
	assert_string_equal(s.v[2].cmdline, "/usr/bin/worker --fast");
	assert_int_equal(cpuacct_busy_ns(proc, &busy), 0);
	ledger_update(&l, 0, busy, &s);

	/* 40 busy ticks: pid 42 ran 10, pid 300 ran 30, pid 1 nothing. */
	write_proc_stat(proc, 1040, 0, 0);
	write_pid(proc, 42, "we (i)rd) name", 105, 105);
	write_pid(proc, 300, "worker", 20, 10);
	assert_int_equal(cpuacct_processes(proc, false, &s), 0);
	assert_null(s.v[2].exe);
	assert_int_equal(cpuacct_busy_ns(proc, &busy), 0);
	ledger_update(&l, 8000, busy, &s);
	assert_int_equal(l.v[0].interval_uj, 0);
	assert_int_equal(l.v[1].interval_uj, 2000);
	assert_int_equal(l.v[2].interval_uj, 6000);
	assert_int_equal(ledger_sum_uj(&l), 8000);

	/* pid 300 exits; its pid is reused by another process (other starttime): a new consumer,
	 * not the old one's totals. */
	tu_writef(proc, "300/stat",
		"300 (other) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 "
		"9999 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
	write_proc_stat(proc, 1042, 0, 0);
	assert_int_equal(cpuacct_processes(proc, false, &s), 0);
	assert_int_equal(cpuacct_busy_ns(proc, &busy), 0);
	ledger_update(&l, 1000, busy, &s);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[2].s.comm, "other");
	assert_int_equal(l.v[2].total_uj, 1000);
	assert_true(ledger_sum_uj(&l) <= 9000);
	ledger_free(&l);
}

/* A command line longer than what is kept (a JVM with its class path) is cut, not dropped. */
static void test_process_long_cmdline(void **state)
{
	_cleanup_free_ char *proc = subdir("proc_long");
	size_t len = 256 * 1024;
	_cleanup_free_ char *cmdline = xmalloc(len);
	struct cpu_samples s;

	for (size_t i = 0; i < len; i++)
		cmdline[i] = i % 16 == 15 ? '\0' : 'a';
	memcpy(cmdline, "/usr/bin/java\0", 14);
	write_pid(proc, 7, "java", 1, 1);
	write_raw(proc, "7/cmdline", cmdline, len);
	assert_int_equal(cpuacct_processes(proc, true, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(startswith(s.v[0].cmdline, "/usr/bin/java a aaaaaaaaaaaaaaa a"));
	assert_true(strlen(s.v[0].cmdline) > 512);
	assert_true(strlen(s.v[0].cmdline) < 4096);
	cpu_samples_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_stat),
		cmocka_unit_test(test_units_v2),
		cmocka_unit_test(test_units_v1),
		cmocka_unit_test(test_units_v2_nested),
		cmocka_unit_test(test_units_v1_nested),
		cmocka_unit_test(test_processes),
		cmocka_unit_test(test_process_long_cmdline),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
