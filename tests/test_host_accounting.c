/* The accounting tick end to end on fixture trees: a sysfs-like powercap tree with two packages
 * (core and dram each, plus psys), a proc root and cgroup root the test advances, domains whose
 * trees live in temporary directories and on a real tmpfs. Every tree value is checked against
 * an expectation the test computes itself. */
#include "tests/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/powercap.h"
#include "common/strbuf.h"
#include "hostd/accounting.h"
#include "hostd/idle_level.h"
#include "common/tree.h"

typedef unsigned __int128 u128;

#define N_DOM 5
#define N_ZONE 3
/* package 1 has this range (0xffffffff units of 61035 nJ), the others 0xffffffff units of 1 mJ.
 * RAPL counters wrap one unit above the range: the fixtures wrap at the whole µJ below that
 * (package 1: 61.36 µJ above, so each wrap leaves the counter a fraction of a µJ it carries). */
#define PKG1_RANGE UINT64_C(262143328850)
#define PKG1_WRAP (PKG1_RANGE + 61)
#define PKG_WRAP (UINT64_C(4294967296) * 1000)

static const char *const zone_names[N_ZONE] = { "package-0", "core", "dram" };

struct fx {
	char *dir, *pc, *proc, *cg, *share, *mnt;
	bool is_mounted;
	struct host_config cfg;
	/* raw host counters: [package][zone] */
	uint64_t raw[2][N_ZONE];
	uint64_t user_ticks, idle_ticks;
	uint64_t dom_usec[N_DOM];
	uint64_t reader_ns;	   /* the callback domain's CPU time */
	uint64_t boot_ns, mono_ns; /* the injected clock */
	uint64_t suspend_ns;	   /* the next reading of the clock comes after this suspend */
	int dirfd[N_DOM];
	struct acct_domain *dom[N_DOM];
	/* the model: adopted start, fixed-point sums of shares */
	uint64_t start[N_DOM][N_ZONE];
	u128 fixed[N_DOM][N_ZONE];
	uint64_t host_uj[N_ZONE];
};

static uint64_t tick_ns(void)
{
	return NSEC_PER_SEC / (uint64_t)sysconf(_SC_CLK_TCK);
}

static const char *pkg_zone_rel(int pkg, int z)
{
	static char buf[64];
	if (z == 0)
		snprintf(buf, sizeof(buf), "intel-rapl:%d", pkg);
	else
		snprintf(buf, sizeof(buf), "intel-rapl:%d/intel-rapl:%d:%d", pkg, pkg, z - 1);
	return buf;
}

static void write_powercap(struct fx *f)
{
	for (int p = 0; p < 2; p++)
		for (int z = 0; z < N_ZONE; z++) {
			_cleanup_free_ char *rel = xasprintf("%s/energy_uj", pkg_zone_rel(p, z));
			tu_writef(f->pc, rel, "%" PRIu64 "\n", f->raw[p][z]);
		}
}

static void write_stat(struct fx *f)
{
	tu_writef(f->proc, "stat",
		"cpu  %" PRIu64 " 0 0 %" PRIu64 " 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n",
		f->user_ticks, f->idle_ticks);
}

static const char *dom_cgroup(int i)
{
	static char buf[128];
	snprintf(buf, sizeof(buf), "machine.slice/machine-qemu\\x2d%d\\x2dvm%d.scope", i + 1, i);
	return buf;
}

static void write_dom(struct fx *f, int i)
{
	if (i == 2) {
		f->reader_ns = f->dom_usec[i] * 1000;
		return;
	}
	if (i == 3) { /* no cgroup: /proc/<pid>/stat in ticks */
		_cleanup_free_ char *rel = xasprintf("%d/stat", 1000 + i);
		tu_writef(f->proc, rel,
			"%d (qemu-kvm) S 1 1 1 0 -1 0 0 0 0 0 %" PRIu64 " 0 0 0 20 0 1 0 1 1 1\n",
			1000 + i, f->dom_usec[i] / (tick_ns() / 1000));
		return;
	}
	_cleanup_free_ char *rel = xasprintf("%s/cpu.stat", dom_cgroup(i));
	tu_writef(
		f->cg, rel, "usage_usec %" PRIu64 "\nuser_usec 0\nsystem_usec 0\n", f->dom_usec[i]);
}

static int read_cb(void *arg, uint64_t *ret)
{
	struct fx *f = arg;
	*ret = f->reader_ns;
	return 0;
}

/* Each reading is one second later (plus a suspend when one is due): ticks are intervals of
 * known length, whatever the test machine's speed. */
static void fx_clock(void *arg, uint64_t *ret_boot_ns, uint64_t *ret_mono_ns)
{
	struct fx *f = arg;

	f->boot_ns += NSEC_PER_SEC + f->suspend_ns;
	f->mono_ns += NSEC_PER_SEC;
	f->suspend_ns = 0;
	*ret_boot_ns = f->boot_ns;
	*ret_mono_ns = f->mono_ns;
}

static void new_accounting(struct fx *f, struct accounting **ret)
{
	assert_int_equal(accounting_new(&f->cfg, ret), 0);
	accounting_set_clock(*ret, fx_clock, f);
}

static void build_powercap(struct fx *f)
{
	for (int p = 0; p < 2; p++)
		for (int z = 0; z < N_ZONE; z++) {
			_cleanup_free_ char *name = xasprintf("%s/name", pkg_zone_rel(p, z));
			_cleanup_free_ char *max =
				xasprintf("%s/max_energy_range_uj", pkg_zone_rel(p, z));
			if (z == 0)
				tu_writef(f->pc, name, "package-%d\n", p);
			else
				tu_write(f->pc, name, z == 1 ? "core\n" : "dram\n");
			tu_writef(f->pc, max, "%" PRIu64 "\n",
				p == 1 && z == 0 ? PKG1_RANGE : UINT64_C(4294967295) * 1000);
			f->raw[p][z] = 1000000 * (uint64_t)(p + 1) + 1000 * (uint64_t)z;
		}
	/* psys covers the whole platform: never summed into the packages */
	tu_write(f->pc, "intel-rapl:2/name", "psys\n");
	tu_write(f->pc, "intel-rapl:2/energy_uj", "5\n");
	tu_write(f->pc, "intel-rapl:2/max_energy_range_uj", "262143328850\n");
	write_powercap(f);
}

static void fx_setup_dirs(struct fx *f, bool with_powercap)
{
	f->dir = tu_mkdtemp("powerd-acct");
	f->pc = xasprintf("%s/powercap", f->dir);
	f->proc = xasprintf("%s/proc", f->dir);
	f->cg = xasprintf("%s/cgroup", f->dir);
	f->share = xasprintf("%s/share", f->dir);
	assert_int_equal(mkdir(f->pc, 0755), 0);
	assert_int_equal(mkdir(f->share, 0755), 0);
	if (with_powercap)
		build_powercap(f);
	host_config_init(&f->cfg);
	free(f->cfg.powercap_root);
	free(f->cfg.proc_root);
	free(f->cfg.cgroup_root);
	f->cfg.powercap_root = xstrdup(f->pc);
	f->cfg.proc_root = xstrdup(f->proc);
	f->cfg.cgroup_root = xstrdup(f->cg);
	/* the idle level is kept in share_dir/.powerd: never the machine's own */
	free(f->cfg.share_dir);
	f->cfg.share_dir = xstrdup(f->share);
	f->user_ticks = 1000;
	f->idle_ticks = 5000;
	write_stat(f);
	for (int i = 0; i < N_DOM; i++) {
		f->dom_usec[i] = 100000 * (uint64_t)(i + 1);
		_cleanup_free_ char *cgrel = xasprintf("%d/cgroup", 1000 + i);
		if (i == 0 || i == 4)
			tu_writef(f->proc, cgrel, "0::/%s/libvirt/emulator\n", dom_cgroup(i));
		else if (i == 1)
			tu_writef(f->proc, cgrel, "0::/%s/emulator\n", dom_cgroup(i));
		write_dom(f, i);
	}
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	fx_setup_dirs(f, true);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < N_DOM; i++)
		if (f->dirfd[i] > 0)
			close(f->dirfd[i]);
	if (f->is_mounted)
		assert_int_equal(umount2(f->mnt, MNT_DETACH), 0);
	/* A test that failed half-way left its tmpfs mounted: never leave one behind. */
	tu_umount_under(f->dir);
	host_config_free(&f->cfg);
	tu_rm_rf(f->dir);
	free(f->dir);
	free(f->pc);
	free(f->proc);
	free(f->cg);
	free(f->share);
	free(f->mnt);
	free(f);
	return 0;
}

/* Domain i's tree directory: vm4 lives on a real tmpfs mount. */
static int dom_dirfd(struct fx *f, int i)
{
	if (f->dirfd[i] > 0)
		return f->dirfd[i];
	_cleanup_free_ char *path = xasprintf("%s/vm%d", f->share, i);
	assert_int_equal(mkdir(path, 0755), 0);
	if (i == 4) {
		if (mount("powerd-test", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			    "size=64k,mode=0755") == 0) {
			f->mnt = xstrdup(path);
			f->is_mounted = true;
		} else {
			print_message("tmpfs not mountable (%s): vm4 on a plain directory\n",
				strerror(errno));
		}
	}
	f->dirfd[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->dirfd[i] > 0);
	return f->dirfd[i];
}

static void add_domains(struct fx *f, struct accounting *a)
{
	for (int i = 0; i < N_DOM; i++) {
		char name[16];
		snprintf(name, sizeof(name), "vm%d", i);
		assert_int_equal(accounting_add_domain(a, name, dom_dirfd(f, i), &f->dom[i]), 0);
		assert_string_equal(accounting_domain_name(f->dom[i]), name);
		if (i == 2)
			accounting_domain_set_cpu_reader(f->dom[i], read_cb, f);
		else
			assert_int_equal(accounting_domain_set_pid(a, f->dom[i], 1000 + i), 0);
		for (int z = 0; z < N_ZONE; z++) {
			f->start[i][z] = accounting_domain_energy_uj(f->dom[i], z);
			f->fixed[i][z] = 0;
		}
	}
}

static uint64_t tree_value(struct fx *f, int i, int z)
{
	_cleanup_free_ char *rel = xasprintf("vm%d/%s/energy_uj", i,
		z == 0	 ? "intel-rapl:0"
		: z == 1 ? "intel-rapl:0/intel-rapl:0:0"
			 : "intel-rapl:0/intel-rapl:0:1");
	_cleanup_free_ char *s = tu_read(f->share, rel);
	uint64_t v;

	assert_non_null(s);
	assert_int_equal(parse_u64_content(s, strlen(s), &v), 0);
	return v;
}

static uint64_t expected(struct fx *f, int i, int z)
{
	return f->start[i][z] + (uint64_t)(f->fixed[i][z] >> 32);
}

static void check_trees(struct fx *f, struct accounting *a)
{
	for (int z = 0; z < N_ZONE; z++) {
		uint64_t sum = 0;
		assert_int_equal(accounting_host_energy_uj(a, z), f->host_uj[z]);
		for (int i = 0; i < N_DOM; i++) {
			uint64_t want = expected(f, i, z);
			assert_int_equal(accounting_domain_energy_uj(f->dom[i], z), want);
			assert_int_equal(tree_value(f, i, z), want % TREE_MAX_ENERGY_RANGE_UJ);
			sum += want - f->start[i][z];
		}
		assert_true(sum <= f->host_uj[z]);
	}
}

/* Advance the fixtures by one interval; the model adds the expected shares. */
static void advance(struct fx *f, const uint64_t pkg_delta[2][N_ZONE], uint64_t busy_ticks,
	const uint64_t *dom_dusec, bool count_in_model)
{
	uint64_t e[N_ZONE] = { 0 };

	for (int p = 0; p < 2; p++)
		for (int z = 0; z < N_ZONE; z++) {
			uint64_t wrap = p == 1 && z == 0 ? PKG1_WRAP : PKG_WRAP;
			f->raw[p][z] = (f->raw[p][z] + pkg_delta[p][z]) % wrap;
			e[z] += pkg_delta[p][z];
		}
	f->user_ticks += busy_ticks;
	f->idle_ticks += 300;
	write_powercap(f);
	write_stat(f);
	u128 sum = 0;
	uint64_t cpu[N_DOM];
	for (int i = 0; i < N_DOM; i++) {
		f->dom_usec[i] += dom_dusec[i];
		cpu[i] = dom_dusec[i] * 1000;
		sum += cpu[i];
		write_dom(f, i);
	}
	u128 d = MAX((u128)(busy_ticks * tick_ns()), sum);
	for (int z = 0; z < N_ZONE; z++) {
		f->host_uj[z] += e[z];
		if (!count_in_model || d == 0)
			continue;
		for (int i = 0; i < N_DOM; i++)
			f->fixed[i][z] += ((u128)e[z] * cpu[i] << 32) / d;
	}
}

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static void run_ticks(struct fx *f, struct accounting *a, int n, uint64_t *seed)
{
	for (int k = 0; k < n; k++) {
		uint64_t pd[2][N_ZONE], dus[N_DOM];
		uint64_t busy = 50 + lcg(seed) % 400;
		for (int p = 0; p < 2; p++)
			for (int z = 0; z < N_ZONE; z++)
				pd[p][z] = lcg(seed) % (z == 0 ? 30000000 : 9000000);
		uint64_t per = busy * (tick_ns() / 1000) / N_DOM;
		for (int i = 0; i < N_DOM; i++)
			dus[i] = lcg(seed) % (per + 1);
		/* process stat counts whole ticks only */
		dus[3] -= dus[3] % (tick_ns() / 1000);
		if (k % 7 == 3) /* the domains' clocks ran ahead of /proc/stat */
			for (int i = 0; i < N_DOM; i++)
				dus[i] = per * 3 - (per * 3) % (tick_ns() / 1000);
		advance(f, pd, busy, dus, true);
		assert_int_equal(accounting_tick(a), 0);
		check_trees(f, a);
	}
}

static void test_split_exact(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	uint64_t seed = 42;

	new_accounting(f, &a);
	assert_false(accounting_is_estimated(a));
	assert_int_equal(accounting_n_zones(a), N_ZONE);
	for (int z = 0; z < N_ZONE; z++)
		assert_string_equal(accounting_zone_name(a, z), zone_names[z]);
	add_domains(f, a);
	assert_int_equal(accounting_n_domains(a), N_DOM);
	/* first tick: baselines only */
	assert_int_equal(accounting_tick(a), 0);
	check_trees(f, a);
	_cleanup_free_ char *hb = tu_read(f->share, "vm0/" POWERCAP_HEARTBEAT_FILE);
	assert_non_null(hb);

	run_ticks(f, a, 40, &seed);

	/* package 1 wraps at its max_energy_range_uj: the delta is still right */
	uint64_t pd[2][N_ZONE] = { { 1000, 100, 100 }, { 0, 100, 100 } };
	uint64_t dus[N_DOM] = { 1000, 2000, 3000, 0, 4000 };
	f->raw[1][0] = PKG1_RANGE - 400000;
	write_powercap(f);
	/* re-baseline the model's host view: the jump itself was a (fake) interval */
	assert_int_equal(accounting_tick(a), 0);
	f->host_uj[0] = accounting_host_energy_uj(a, 0);
	for (int i = 0; i < N_DOM; i++)
		f->start[i][0] = accounting_domain_energy_uj(f->dom[i], 0) -
				 (uint64_t)(f->fixed[i][0] >> 32);
	pd[1][0] = 1000000;
	advance(f, pd, 100, dus, true);
	assert_true(f->raw[1][0] < 1000000);
	uint64_t before = accounting_host_energy_uj(a, 0);
	assert_int_equal(accounting_tick(a), 0);
	assert_int_equal(accounting_host_energy_uj(a, 0) - before, 1001000);
	check_trees(f, a);

	/* a domain whose CPU time cannot be read gets 0 this tick, the others go on */
	_cleanup_free_ char *cs = xasprintf("%s/cpu.stat", dom_cgroup(1));
	tu_write(f->cg, cs, "garbage\n");
	uint64_t dus2[N_DOM] = { 1000, 0, 3000, 0, 4000 };
	uint64_t pd2[2][N_ZONE] = { { 500000, 1000, 1000 }, { 500000, 1000, 1000 } };
	advance(f, pd2, 100, dus2, true);
	tu_write(f->cg, cs, "garbage\n");
	assert_int_equal(accounting_tick(a), 0);
	check_trees(f, a);
	write_dom(f, 1);
	advance(f, pd2, 100, dus2, true);
	assert_int_equal(accounting_tick(a), 0);
	check_trees(f, a);

	/* a failed host read fails the tick and attributes nothing; the next covers both */
	tu_write(f->pc, "intel-rapl:1/intel-rapl:1:1/energy_uj", "12x\n");
	assert_true(accounting_tick(a) < 0);
	check_trees(f, a);
	write_powercap(f);
	run_ticks(f, a, 5, &seed);

	/* the power gauges follow the last interval */
	assert_true(accounting_host_power_w(a, 0) > 0);
	assert_true(accounting_last_tick_ns(a) > 0);
	accounting_free(a);
}

static void test_remove_readd_restart(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	uint64_t seed = 7, keep[N_ZONE];

	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	run_ticks(f, a, 10, &seed);

	/* remove vm1 and add it back: its counters continue from its tree */
	for (int z = 0; z < N_ZONE; z++)
		keep[z] = accounting_domain_energy_uj(f->dom[1], z);
	assert_true(keep[0] > 0);
	accounting_remove_domain(a, f->dom[1]);
	assert_int_equal(accounting_n_domains(a), N_DOM - 1);
	assert_int_equal(accounting_add_domain(a, "vm1", f->dirfd[1], &f->dom[1]), 0);
	assert_int_equal(accounting_domain_set_pid(a, f->dom[1], 1001), 0);
	for (int z = 0; z < N_ZONE; z++) {
		assert_int_equal(accounting_domain_energy_uj(f->dom[1], z), keep[z]);
		f->start[1][z] = keep[z];
		f->fixed[1][z] = 0;
	}
	/* its first tick back is its CPU baseline */
	uint64_t pd[2][N_ZONE] = { { 100000, 1000, 1000 }, { 100000, 1000, 1000 } };
	uint64_t dus[N_DOM] = { 1000, 2000, 3000, 0, 4000 };
	f->dom_usec[1] += 5000;
	write_dom(f, 1);
	advance(f, pd, 100, (uint64_t[N_DOM]){ 1000, 0, 3000, 0, 4000 }, true);
	assert_int_equal(accounting_tick(a), 0);
	check_trees(f, a);
	advance(f, pd, 100, dus, true);
	assert_int_equal(accounting_tick(a), 0);
	check_trees(f, a);

	/* restart: a new accounting on the same trees continues every counter */
	uint64_t last[N_DOM][N_ZONE];
	for (int i = 0; i < N_DOM; i++)
		for (int z = 0; z < N_ZONE; z++)
			last[i][z] = accounting_domain_energy_uj(f->dom[i], z);
	accounting_free(a);
	new_accounting(f, &a);
	memset(f->host_uj, 0, sizeof(f->host_uj));
	add_domains(f, a);
	for (int i = 0; i < N_DOM; i++)
		for (int z = 0; z < N_ZONE; z++)
			assert_int_equal(f->start[i][z], last[i][z]);
	assert_int_equal(accounting_tick(a), 0);
	check_trees(f, a);
	run_ticks(f, a, 10, &seed);
	for (int i = 0; i < N_DOM; i++)
		for (int z = 0; z < N_ZONE; z++)
			assert_true(accounting_domain_energy_uj(f->dom[i], z) >= last[i][z]);
	accounting_free(a);
}

/* Issue 10 #1: package 1 at 200 kJ (of its 262 kJ range) reset to 1 mJ is a reset, not a wrap
 * that adds 62 kJ to the host and the domains; a real wrap goes on being one. */
static void test_reset_upper_half(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	uint64_t keep[N_DOM];

	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	f->raw[1][0] = UINT64_C(200000000000);
	write_powercap(f);
	assert_int_equal(accounting_tick(a), 0);
	uint64_t before = accounting_host_energy_uj(a, 0);
	for (int i = 0; i < N_DOM; i++)
		keep[i] = accounting_domain_energy_uj(f->dom[i], 0);
	f->raw[1][0] = 1000;
	write_powercap(f);
	f->user_ticks += 100;
	f->dom_usec[0] += 500000;
	write_stat(f);
	write_dom(f, 0);
	assert_int_equal(accounting_tick(a), 0);
	assert_int_equal(accounting_host_energy_uj(a, 0), before);
	for (int i = 0; i < N_DOM; i++)
		assert_int_equal(accounting_domain_energy_uj(f->dom[i], 0), keep[i]);
	/* counting goes on from the new value */
	f->raw[1][0] = 501000;
	write_powercap(f);
	assert_int_equal(accounting_tick(a), 0);
	assert_int_equal(accounting_host_energy_uj(a, 0) - before, 500000);
	accounting_free(a);
}

/* Issue 10 #8: a suspend of 10 minutes between two ticks. RAPL kept counting (600 J); the
 * interval is 601 s long, not the 1 s CLOCK_MONOTONIC saw: 1 W, not a 600 W spike. */
static void test_suspend(void **state)
{
	struct fx *f = *state;
	struct accounting *a;

	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	uint64_t pd[2][N_ZONE] = { { 300000000, 0, 0 }, { 301000000, 0, 0 } };
	uint64_t dus[N_DOM] = { 1000, 2000, 3000, 0, 4000 };
	advance(f, pd, 100, dus, true);
	f->suspend_ns = 600 * NSEC_PER_SEC;
	assert_int_equal(accounting_tick(a), 0);
	check_trees(f, a);
	assert_true(fabs(accounting_host_power_w(a, 0) - 1.0) < 1e-9);
	/* and a wrap during the suspend is one: 6 J in 601 s */
	f->raw[1][0] = PKG1_RANGE - 1000000;
	write_powercap(f);
	assert_int_equal(accounting_tick(a), 0);
	uint64_t before = accounting_host_energy_uj(a, 0);
	f->raw[1][0] = 5000000;
	write_powercap(f);
	f->suspend_ns = 600 * NSEC_PER_SEC;
	assert_int_equal(accounting_tick(a), 0);
	assert_int_equal(accounting_host_energy_uj(a, 0) - before, 6000061);
	accounting_free(a);
}

/* idle_power: host. The lowest average power seen is idle: at first the whole interval is. */
static void test_idle_host(void **state)
{
	struct fx *f = *state;
	struct accounting *a;

	f->cfg.idle_power = IDLE_POLICY_HOST;
	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	uint64_t pd[2][N_ZONE] = { { 3000000, 1000000, 500000 }, { 3000000, 1000000, 500000 } };
	uint64_t dus[N_DOM] = { 100000, 100000, 100000, 100000, 100000 };
	advance(f, pd, 100, dus, false);
	assert_int_equal(accounting_tick(a), 0);
	for (int z = 0; z < N_ZONE; z++) {
		uint64_t sum = 0;
		for (int i = 0; i < N_DOM; i++)
			sum += accounting_domain_energy_uj(f->dom[i], z) - f->start[i][z];
		/* all idle, up to the rounding of the power figure */
		assert_true(sum <= N_DOM);
	}
	/* a tick with no energy sets idle at 0 W: from then on, the split equals shared */
	uint64_t zero[2][N_ZONE] = { { 0 } };
	advance(f, zero, 100, dus, false);
	assert_int_equal(accounting_tick(a), 0);
	for (int i = 0; i < N_DOM; i++)
		for (int z = 0; z < N_ZONE; z++) {
			f->start[i][z] = accounting_domain_energy_uj(f->dom[i], z);
			f->fixed[i][z] = 0;
		}
	for (int z = 0; z < N_ZONE; z++)
		f->host_uj[z] = accounting_host_energy_uj(a, z);
	/* the carried remainders were not in the model: reset them through a zero split */
	advance(f, pd, 100, dus, true);
	assert_int_equal(accounting_tick(a), 0);
	for (int z = 0; z < N_ZONE; z++)
		for (int i = 0; i < N_DOM; i++) {
			uint64_t got = accounting_domain_energy_uj(f->dom[i], z);
			assert_true(got >= expected(f, i, z) && got <= expected(f, i, z) + 1);
		}
	accounting_free(a);
}

/* Sum over the domains of zone z's energy since the marks. */
static uint64_t domains_since(struct fx *f, const uint64_t *mark, int z)
{
	uint64_t sum = 0;

	for (int i = 0; i < N_DOM; i++)
		sum += accounting_domain_energy_uj(f->dom[i], z) - mark[i];
	return sum;
}

static void mark_domains(struct fx *f, uint64_t *mark, int z)
{
	for (int i = 0; i < N_DOM; i++)
		mark[i] = accounting_domain_energy_uj(f->dom[i], z);
}

/* One interval of 1 s with the package zone drawing pkg_w (half on each package) at the
 * host's busy_ticks (of busy + 300 idle), all of it used by the domains. */
static void interval_at(struct fx *f, struct accounting *a, uint64_t pkg_w, uint64_t busy_ticks)
{
	uint64_t pd[2][N_ZONE] = { { pkg_w * 500000, 0, 0 }, { pkg_w * 500000, 0, 0 } };
	/* vm2's CPU time comes from the callback: it stays idle; the others share the busy time
	 * (in whole ticks: vm3 is read from its process's stat) */
	uint64_t per = busy_ticks / 4 * (tick_ns() / 1000);
	uint64_t dus[N_DOM] = { per, per, 0, per, busy_ticks * (tick_ns() / 1000) - 3 * per };

	advance(f, pd, busy_ticks, dus, false);
	assert_int_equal(accounting_tick(a), 0);
}

/* Issue 10 #2: a reset, a failed read or a suspend is no idle interval: before, the reset's
 * 0 W became the idle level and every idle watt went to the domains until a restart. */
static void test_idle_host_not_fed_by_resets(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	uint64_t mark[N_DOM];

	f->cfg.idle_power = IDLE_POLICY_HOST;
	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	interval_at(f, a, 20, 10); /* idle: 20 W */
	/* a reset of package 1 (from 200 kJ to 1 mJ): counted 0, not a 0 W idle level */
	f->raw[1][0] = UINT64_C(200000000000);
	write_powercap(f);
	assert_int_equal(accounting_tick(a), 0);
	f->raw[1][0] = 1000;
	write_powercap(f);
	assert_int_equal(accounting_tick(a), 0);
	/* a failed read, then an interval over both */
	tu_write(f->pc, "intel-rapl:1/energy_uj", "garbage\n");
	assert_true(accounting_tick(a) < 0);
	interval_at(f, a, 1, 10);
	/* a suspend: 601 s elapsed for 1 s run, 10 J */
	f->suspend_ns = 600 * NSEC_PER_SEC;
	interval_at(f, a, 10, 10);

	struct strbuf b = { 0 };
	double v;
	accounting_render(a, true, &b);
	assert_int_equal(tu_metric(b.buf, "powerd_idle_level_watts{zone=\"package-0\"}", &v), 0);
	assert_true(fabs(v - 20) < 1e-6);
	assert_int_equal(tu_metric(b.buf, "powerd_idle_level_learning{zone=\"package-0\"}", &v), 0);
	assert_true(v == 0);
	strbuf_done(&b);
	/* the level is still 20 W: a 50 W interval leaves 30 W to the domains */
	mark_domains(f, mark, 0);
	interval_at(f, a, 50, 3000);
	uint64_t got = domains_since(f, mark, 0);
	assert_true(got >= 30000000 - N_DOM && got <= 30000000);
	accounting_free(a);
}

/* Issue 10 #2: restarted under sustained load, the idle level is the one learned before and
 * kept in share_dir/.powerd/idle-level, not the loaded power (before: domains got nothing). */
static void test_idle_level_kept(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	uint64_t mark[N_DOM];
	struct strbuf b = { 0 };
	double v;

	tu_write(f->share, ".powerd/.keep", "");
	f->cfg.idle_power = IDLE_POLICY_HOST;
	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	/* under load only: still learning, and the level is the loaded power */
	interval_at(f, a, 80, 3000);
	accounting_render(a, true, &b);
	assert_int_equal(tu_metric(b.buf, "powerd_idle_level_learning{zone=\"package-0\"}", &v), 0);
	assert_true(v == 1);
	interval_at(f, a, 15, 10); /* then idle at 15 W */
	interval_at(f, a, 15, 10);
	accounting_free(a);
	_cleanup_free_ char *kept = tu_read(f->share, ".powerd/" IDLE_LEVEL_FILE);
	assert_non_null(kept);
	assert_non_null(strstr(kept, "version 1\npackage-0 15000000 1\n"));

	/* restart: the first interval is under load at 80 W; 65 W go to the domains */
	memset(f->host_uj, 0, sizeof(f->host_uj));
	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	mark_domains(f, mark, 0);
	interval_at(f, a, 80, 3000);
	uint64_t got = domains_since(f, mark, 0);
	assert_true(got >= 65000000 - N_DOM && got <= 65000000);
	strbuf_reset(&b);
	accounting_render(a, true, &b);
	assert_int_equal(tu_metric(b.buf, "powerd_idle_level_watts{zone=\"package-0\"}", &v), 0);
	assert_true(fabs(v - 15) < 1e-6);
	assert_int_equal(tu_metric(b.buf, "powerd_idle_level_learning{zone=\"package-0\"}", &v), 0);
	assert_true(v == 0);
	accounting_free(a);

	/* a damaged file is learned anew, never trusted */
	tu_write(f->share, ".powerd/" IDLE_LEVEL_FILE, "version 1\npackage-0 -5 1\ncore x 1\n");
	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	interval_at(f, a, 80, 3000);
	strbuf_reset(&b);
	accounting_render(a, true, &b);
	assert_int_equal(tu_metric(b.buf, "powerd_idle_level_watts{zone=\"package-0\"}", &v), 0);
	assert_true(fabs(v - 80) < 1e-6);
	strbuf_done(&b);
	accounting_free(a);
}

/* No powercap zone: one estimated zone; idle_power: host with idle_watts leaves exactly the
 * idle part unattributed, whatever the interval's length. */
static void test_estimate(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct accounting *a;
	struct strbuf b = { 0 };
	double v;

	fx_setup_dirs(f, false);
	*state = f;
	f->cfg.idle_watts = 50;
	f->cfg.max_watts = 250;
	for (int pol = 0; pol < 2; pol++) {
		f->cfg.idle_power = pol ? IDLE_POLICY_HOST : IDLE_POLICY_SHARED;
		assert_int_equal(accounting_new(&f->cfg, &a), 0);
		assert_true(accounting_is_estimated(a));
		assert_int_equal(accounting_n_zones(a), 1);
		assert_string_equal(accounting_zone_name(a, 0), "package-0");
		struct acct_domain *d;
		_cleanup_free_ char *path = xasprintf("%s/est%d", f->share, pol);
		assert_int_equal(mkdir(path, 0755), 0);
		_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_int_equal(accounting_add_domain(a, "est", fd, &d), 0);
		accounting_domain_set_cpu_reader(d, read_cb, f);
		assert_int_equal(accounting_tick(a), 0);
		/* busy 300 of 600 ticks; the domain is all of the busy time */
		f->user_ticks += 300;
		f->idle_ticks += 300;
		f->reader_ns += 300 * tick_ns();
		write_stat(f);
		/* a long enough interval that whole µJ give the power to 0.1 W: not a wait for
		 * anything, just the measurement's length */
		for (uint64_t t0 = now_monotonic_ns();
			now_monotonic_ns() - t0 < 50 * NSEC_PER_MSEC;)
			;
		uint64_t h0 = accounting_host_energy_uj(a, 0);
		assert_int_equal(accounting_tick(a), 0);
		uint64_t host = accounting_host_energy_uj(a, 0) - h0;
		uint64_t dom = accounting_domain_energy_uj(d, 0);
		/* power 50 + 200 × 0.5 = 150 W */
		assert_true(fabs(accounting_host_power_w(a, 0) - 150) < 0.1);
		if (pol == 0)
			assert_true(dom <= host && dom + 1 >= host);
		else /* 100 W of 150 are attributable */
			assert_true(fabs((double)dom - (double)host * 100 / 150) <= 2);
		_cleanup_free_ char *hb = xasprintf("est%d/" POWERCAP_HEARTBEAT_FILE, pol);
		_cleanup_free_ char *hbt = tu_read(f->share, hb);
		struct heartbeat h;
		assert_int_equal(heartbeat_parse(hbt, strlen(hbt), &h), 0);
		assert_true(h.is_estimated);
		assert_int_equal(h.seq, 2);
		strbuf_reset(&b);
		accounting_render(a, true, &b);
		assert_int_equal(tu_metric(b.buf, "powerd_host_energy_estimated", &v), 0);
		assert_true(v == 1);
		accounting_free(a);
	}
	strbuf_done(&b);
}

static void test_metrics(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	struct strbuf b = { 0 };
	uint64_t seed = 3;
	double v;

	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	run_ticks(f, a, 3, &seed);
	accounting_render(a, false, &b);

	assert_int_equal(tu_metric(b.buf, "powerd_domains", &v), 0);
	assert_true(v == N_DOM);
	assert_int_equal(tu_metric(b.buf, "powerd_host_energy_joules_total{zone=\"dram\"}", &v), 0);
	assert_true(fabs(v - (double)f->host_uj[2] / 1e6) < 1e-9);
	assert_int_equal(
		tu_metric(b.buf, "powerd_domain_energy_joules_total{domain=\"vm3\",zone=\"core\"}",
			&v),
		0);
	assert_true(fabs(v - (double)expected(f, 3, 1) / 1e6) < 1e-9);
	assert_int_equal(
		tu_metric(
			b.buf, "powerd_domain_power_watts{domain=\"vm0\",zone=\"package-0\"}", &v),
		0);
	assert_int_equal(tu_metric(b.buf, "powerd_libvirt_connected", &v), 0);
	assert_true(v == 0);
	assert_int_equal(tu_metric(b.buf, "powerd_host_energy_estimated", &v), 0);
	assert_true(v == 0);
	assert_int_equal(tu_metric(b.buf, "powerd_errors_total{kind=\"sensor\"}", &v), 0);
	/* every joule value round-trips to its µJ integer: Σ domains + unattributed = host, exactly
	 */
	for (int z = 0; z < N_ZONE; z++) {
		_cleanup_free_ char *hs =
			xasprintf("powerd_host_energy_joules_total{zone=\"%s\"}", zone_names[z]);
		_cleanup_free_ char *us = xasprintf(
			"powerd_host_unattributed_energy_joules_total{zone=\"%s\"}", zone_names[z]);
		assert_int_equal(tu_metric(b.buf, hs, &v), 0);
		int64_t host = llround(v * 1e6), sum = 0;
		assert_int_equal(host, (int64_t)accounting_host_energy_uj(a, (size_t)z));
		assert_int_equal(tu_metric(b.buf, us, &v), 0);
		int64_t unattr = llround(v * 1e6);
		assert_true(unattr > 0);
		for (int i = 0; i < N_DOM; i++) {
			_cleanup_free_ char *ds = xasprintf(
				"powerd_domain_energy_joules_total{domain=\"vm%d\",zone=\"%s\"}", i,
				zone_names[z]);
			assert_int_equal(tu_metric(b.buf, ds, &v), 0);
			sum += llround(v * 1e6) - (int64_t)f->start[i][z];
		}
		assert_int_equal(sum + unattr, host);
	}
	assert_int_equal(tu_metric(b.buf, "powerd_tick_duration_seconds", &v), 0);
	assert_true(v > 0 && v < 1);
	assert_non_null(strstr(b.buf, "powerd_build_info{version=\""));

	/* promtool, the reference linter of the format */
	_cleanup_free_ char *path = xasprintf("%s/metrics.txt", f->dir);
	tu_write(f->dir, "metrics.txt", b.buf);
	_cleanup_free_ char *cmd = xasprintf("promtool check metrics < %s", path);
	int status = system(cmd);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	strbuf_done(&b);
	accounting_free(a);
}

static int dom_dirfd_named(struct fx *f, const char *name)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", f->share, name);
	assert_int_equal(mkdir(path, 0755), 0);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void write_proc_stat(struct fx *f, int pid, uint64_t ticks)
{
	_cleanup_free_ char *rel = xasprintf("%d/stat", pid);
	tu_writef(f->proc, rel,
		"%d (qemu-kvm) S 1 1 1 0 -1 0 0 0 0 0 %" PRIu64 " 0 0 0 20 0 1 0 1 1 1\n", pid,
		ticks);
}

/* Issue 10 #5: qemu left in libvirtd's cgroup (cgroup_controllers = []), or two domains in one
 * cgroup (a containerised libvirtd): each domain reads its own process, never the shared
 * cgroup, and each such domain is counted as an error of kind cgroup. The CPU source of every
 * domain is a metric. */
static void test_cgroup_not_own(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	struct acct_domain *s1, *s2, *s3, *lv;
	struct strbuf b = { 0 };
	double v;
	const char *shared = "machine/qemu-9-s.libvirt-qemu";

	assert_int_equal(accounting_new(&f->cfg, &a), 0);
	add_domains(f, a);
	tu_write(f->proc, "2001/cgroup", "0::/machine/qemu-9-s.libvirt-qemu/emulator\n");
	tu_write(f->proc, "2002/cgroup", "0::/machine/qemu-9-s.libvirt-qemu\n");
	tu_write(f->proc, "2003/cgroup", "0::/machine/qemu-9-s.libvirt-qemu/emulator\n");
	tu_write(f->proc, "2004/cgroup", "0::/system.slice/libvirtd.service\n");
	_cleanup_free_ char *rel = xasprintf("%s/cpu.stat", shared);
	tu_write(f->cg, rel, "usage_usec 1000\n");
	tu_write(f->cg, "system.slice/libvirtd.service/cpu.stat", "usage_usec 1000\n");
	for (int pid = 2001; pid <= 2004; pid++)
		write_proc_stat(f, pid, 1);
	int fd1 = dom_dirfd_named(f, "s1"), fd2 = dom_dirfd_named(f, "s2");
	int fd3 = dom_dirfd_named(f, "s3"), fd4 = dom_dirfd_named(f, "lv");
	assert_int_equal(accounting_add_domain(a, "s1", fd1, &s1), 0);
	assert_int_equal(accounting_add_domain(a, "s2", fd2, &s2), 0);
	assert_int_equal(accounting_add_domain(a, "s3", fd3, &s3), 0);
	assert_int_equal(accounting_add_domain(a, "lv", fd4, &lv), 0);
	assert_int_equal(accounting_domain_set_pid(a, s1, 2001), 0);
	/* alone in it so far: its cgroup is read */
	assert_string_equal(accounting_domain_cpu_source(s1), "cgroup2");
	assert_int_equal(accounting_domain_set_pid(a, s2, 2002), 0);
	assert_int_equal(accounting_domain_set_pid(a, s3, 2003), 0);
	assert_int_equal(accounting_domain_set_pid(a, lv, 2004), 0);
	assert_string_equal(accounting_domain_cpu_source(s1), "process");
	assert_string_equal(accounting_domain_cpu_source(s2), "process");
	assert_string_equal(accounting_domain_cpu_source(s3), "process");
	assert_string_equal(accounting_domain_cpu_source(lv), "process");
	assert_string_equal(accounting_domain_cpu_source(f->dom[0]), "cgroup2");
	assert_string_equal(accounting_domain_cpu_source(f->dom[2]), "libvirt");
	assert_string_equal(accounting_domain_cpu_source(f->dom[3]), "process");

	assert_int_equal(accounting_tick(a), 0);
	/* the shared cgroup and libvirtd's take all the busy time; the processes none */
	f->user_ticks += 100;
	write_stat(f);
	tu_write(f->cg, rel, "usage_usec 1001000\n");
	tu_write(f->cg, "system.slice/libvirtd.service/cpu.stat", "usage_usec 1001000\n");
	f->raw[0][0] += 5000000;
	write_powercap(f);
	assert_int_equal(accounting_tick(a), 0);
	assert_int_equal(accounting_domain_energy_uj(s1, 0), 0);
	assert_int_equal(accounting_domain_energy_uj(s2, 0), 0);
	assert_int_equal(accounting_domain_energy_uj(lv, 0), 0);
	/* now the processes run: each gets its own time, not the cgroup's */
	f->user_ticks += 100;
	write_stat(f);
	write_proc_stat(f, 2001, 26);
	write_proc_stat(f, 2002, 51);
	f->raw[0][0] += 4000000;
	write_powercap(f);
	assert_int_equal(accounting_tick(a), 0);
	assert_int_equal(accounting_domain_energy_uj(s1, 0), 1000000);
	assert_int_equal(accounting_domain_energy_uj(s2, 0), 2000000);

	accounting_render(a, true, &b);
	assert_int_equal(tu_metric(b.buf, "powerd_errors_total{kind=\"cgroup\"}", &v), 0);
	assert_true(v == 4);
	assert_int_equal(
		tu_metric(b.buf, "powerd_domain_cpu_source{domain=\"s1\",source=\"process\"}", &v),
		0);
	assert_true(v == 1);
	assert_int_equal(
		tu_metric(b.buf, "powerd_domain_cpu_source{domain=\"vm0\",source=\"cgroup2\"}", &v),
		0);
	assert_int_equal(
		tu_metric(b.buf, "powerd_domain_cpu_source{domain=\"vm2\",source=\"libvirt\"}", &v),
		0);
	assert_int_equal(
		tu_metric(b.buf, "powerd_domain_cpu_source{domain=\"vm3\",source=\"process\"}", &v),
		0);
	strbuf_done(&b);
	/* a stopped domain has no source */
	assert_int_equal(accounting_domain_set_pid(a, s3, 0), 0);
	assert_null(accounting_domain_cpu_source(s3));
	accounting_render(a, true, &b);
	assert_null(strstr(b.buf, "powerd_domain_cpu_source{domain=\"s3\""));
	strbuf_done(&b);
	close(fd1);
	close(fd2);
	close(fd3);
	close(fd4);
	accounting_free(a);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_thousand_domains(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	struct acct_domain **doms = xcalloc(1000, sizeof(*doms));
	struct rlimit rl;

	/* each domain keeps 1 + n_zones directory fds and a CPU-time fd */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 8192 && rl.rlim_max >= 8192) {
		rl.rlim_cur = 8192;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	/* the share on a tmpfs, as in production (and not the test machine's disk) */
	_cleanup_free_ char *mnt = xasprintf("%s/many", f->dir);
	assert_int_equal(mkdir(mnt, 0755), 0);
	bool is_mounted = mount("powerd-test", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m") == 0;
	new_accounting(f, &a);
	assert_int_equal(accounting_tick(a), 0);
	int before = count_fds();
	int share = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 1000; i++) {
			char name[32];
			snprintf(name, sizeof(name), "d%d", i);
			if (round == 0)
				assert_int_equal(mkdirat(share, name, 0755), 0);
			_cleanup_close_ int fd =
				openat(share, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			assert_int_equal(accounting_add_domain(a, name, fd, &doms[i]), 0);
			assert_int_equal(accounting_domain_set_pid(a, doms[i], 1000 + i % 2), 0);
		}
		assert_int_equal(accounting_n_domains(a), 1000);
		f->user_ticks += 100;
		write_stat(f);
		assert_int_equal(accounting_tick(a), 0);
		print_message("1000 domains: tick took %.3f ms of CPU\n",
			(double)accounting_last_tick_ns(a) / 1e6);
		/* remove in an order that moves entries around */
		for (int i = 0; i < 1000; i += 2)
			accounting_remove_domain(a, doms[i]);
		for (int i = 999; i >= 1; i -= 2)
			accounting_remove_domain(a, doms[i]);
		assert_int_equal(accounting_n_domains(a), 0);
		assert_int_equal(count_fds(), before + 1);
	}
	accounting_free(a);
	free(doms);
	close(share);
	if (is_mounted)
		assert_int_equal(umount2(mnt, MNT_DETACH), 0);
}

/* CPU time unreadable for several ticks: the first good read is a new baseline, not the CPU
 * time of the whole streak squeezed into one interval of host busy time. */
static void test_cpu_failure_streak(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	uint64_t seed = 11;

	new_accounting(f, &a);
	add_domains(f, a);
	assert_int_equal(accounting_tick(a), 0);
	run_ticks(f, a, 3, &seed);

	_cleanup_free_ char *cs = xasprintf("%s/cpu.stat", dom_cgroup(1));
	uint64_t pd[2][N_ZONE] = { { 500000, 1000, 1000 }, { 500000, 1000, 1000 } };
	uint64_t dus[N_DOM] = { 1000, 0, 3000, 0, 4000 };
	for (int k = 0; k < 5; k++) {
		/* vm1 keeps running (400 ms a tick) but its file cannot be read */
		f->dom_usec[1] += 400000;
		advance(f, pd, 100, dus, true);
		tu_write(f->cg, cs, "garbage\n");
		assert_int_equal(accounting_tick(a), 0);
		check_trees(f, a);
	}
	/* readable again: a baseline for vm1, 0 this tick */
	advance(f, pd, 100, dus, true);
	assert_int_equal(accounting_tick(a), 0);
	check_trees(f, a);
	run_ticks(f, a, 3, &seed);
	accounting_free(a);
}

/* A publisher that records what the tick handed it, and fails while asked to. */
struct recorder {
	struct publisher pub;
	int calls;
	uint64_t seq;
	uint64_t total_uj[N_ZONE];
	size_t n_zones;
	bool is_failing_now;
	bool *freed;
};

static int recorder_publish(
	struct publisher *p, const struct publish_tick *tick, const uint64_t *total_uj)
{
	struct recorder *rec = (struct recorder *)p;

	rec->calls++;
	rec->seq = tick->hb->seq;
	rec->n_zones = tick->n_zones;
	for (size_t z = 0; z < tick->n_zones && z < N_ZONE; z++)
		rec->total_uj[z] = total_uj[z];
	return rec->is_failing_now ? -EPIPE : 0;
}

static void recorder_free(struct publisher *p)
{
	struct recorder *rec = (struct recorder *)p;
	*rec->freed = true;
	free(rec);
}

static const struct publisher_ops recorder_ops = {
	.kind = "channel",
	.publish = recorder_publish,
	.free = recorder_free,
};

/* The tick hands each domain's energy, computed once, to every publisher it has: the tree and the
 * channel slot see the same totals, a domain without a tree still accrues, and a failing publisher
 * is counted under its kind without disturbing the others. */
static void test_publishers(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	struct acct_domain *bare;
	struct recorder *rec[N_DOM];
	bool freed[N_DOM] = { false };
	uint64_t seed = 5;

	assert_int_equal(accounting_new(&f->cfg, &a), 0);
	add_domains(f, a);
	/* no tree and no CPU time: it takes nothing from the model's domains */
	assert_int_equal(accounting_add_domain(a, "bare", -1, &bare), 0);
	assert_null(accounting_domain_publisher(bare, PUBLISH_TREE));
	for (int i = 0; i < N_DOM; i++) {
		rec[i] = xcalloc(1, sizeof(*rec[i]));
		rec[i]->pub.ops = &recorder_ops;
		rec[i]->freed = &freed[i];
		accounting_domain_set_publisher(f->dom[i], PUBLISH_CHANNEL, &rec[i]->pub);
		assert_ptr_equal(
			accounting_domain_publisher(f->dom[i], PUBLISH_CHANNEL), &rec[i]->pub);
		assert_non_null(accounting_domain_publisher(f->dom[i], PUBLISH_TREE));
	}
	assert_int_equal(accounting_tick(a), 0);
	rec[1]->is_failing_now = true;
	for (int k = 1; k <= 4; k++) {
		run_ticks(f, a, 1, &seed); /* checks every tree against the model */
		for (int i = 0; i < N_DOM; i++) {
			assert_int_equal(rec[i]->calls, k + 1);
			assert_int_equal(rec[i]->n_zones, N_ZONE);
			for (int z = 0; z < N_ZONE; z++)
				assert_int_equal(rec[i]->total_uj[z],
					accounting_domain_energy_uj(f->dom[i], z));
			assert_int_equal(rec[i]->seq, rec[0]->seq);
		}
	}
	assert_int_equal(accounting_domain_energy_uj(bare, 0), 0);

	struct strbuf b = { 0 };
	double v;
	accounting_render(a, true, &b);
	assert_int_equal(tu_metric(b.buf, "powerd_errors_total{kind=\"channel\"}", &v), 0);
	assert_true(v == 4);
	assert_int_equal(tu_metric(b.buf, "powerd_errors_total{kind=\"tree\"}", &v), 0);
	assert_true(v == 0);
	strbuf_done(&b);

	/* replacing and removing free the publisher they drop */
	accounting_domain_set_publisher(f->dom[0], PUBLISH_CHANNEL, NULL);
	assert_true(freed[0]);
	accounting_remove_domain(a, f->dom[3]);
	assert_true(freed[3]);
	assert_false(freed[1]);
	accounting_free(a);
	for (int i = 0; i < N_DOM; i++)
		assert_true(freed[i]);
}

/* Within one listing (accounting_listing_begin .. end) the cgroup mounts are read once and kept
 * for every pid resolved; the next listing, and any pid resolved outside a listing, reads them
 * anew: a hierarchy mounted between two listings is seen by the second. */
static void test_listing_mounts(void **state)
{
	struct fx *f = *state;
	struct accounting *a;
	struct acct_domain *v[3];
	int fd[3];
	static const char *const names[] = { "la", "lb", "lc" };

	assert_int_equal(accounting_new(&f->cfg, &a), 0);
	for (int i = 0; i < 3; i++) {
		_cleanup_free_ char *cg =
			xasprintf("machine/qemu-%d-%s.libvirt-qemu", i + 1, names[i]);
		_cleanup_free_ char *procrel = xasprintf("%d/cgroup", 2101 + i);
		_cleanup_free_ char *v2rel = xasprintf("%s/cpu.stat", cg);
		_cleanup_free_ char *v1rel = xasprintf("cpuacct/%s/cpuacct.usage", cg);
		tu_writef(f->proc, procrel, "4:cpu,cpuacct:/%s\n0::/%s\n", cg, cg);
		tu_write(f->cg, v2rel, "usage_usec 1000\n");
		tu_write(f->cg, v1rel, "1000000\n");
		write_proc_stat(f, 2101 + i, 1);
		fd[i] = dom_dirfd_named(f, names[i]);
		assert_int_equal(accounting_add_domain(a, names[i], fd[i], &v[i]), 0);
	}
	/* no mountinfo: the usual places, v2 at the root first */
	accounting_listing_begin(a);
	assert_int_equal(accounting_domain_set_pid(a, v[0], 2101), 0);
	assert_string_equal(accounting_domain_cpu_source(v[0]), "cgroup2");
	/* now only v1's cpuacct is mounted; the listing keeps what it read at its first pid */
	_cleanup_free_ char *mi = xasprintf(
		"30 20 0:26 / %s/cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n", f->cg);
	tu_write(f->proc, "self/mountinfo", mi);
	assert_int_equal(accounting_domain_set_pid(a, v[1], 2102), 0);
	assert_string_equal(accounting_domain_cpu_source(v[1]), "cgroup2");
	accounting_listing_end(a);
	/* outside a listing: read anew */
	assert_int_equal(accounting_domain_set_pid(a, v[2], 2103), 0);
	assert_string_equal(accounting_domain_cpu_source(v[2]), "cgroup1");
	/* the next listing (nested begin/end count as one) reads anew too */
	accounting_listing_begin(a);
	accounting_listing_begin(a);
	assert_int_equal(accounting_domain_set_pid(a, v[0], 2101), 0);
	assert_string_equal(accounting_domain_cpu_source(v[0]), "cgroup1");
	accounting_listing_end(a);
	tu_write(f->proc, "self/mountinfo", "");
	assert_int_equal(accounting_domain_set_pid(a, v[1], 2102), 0);
	assert_string_equal(accounting_domain_cpu_source(v[1]), "cgroup1");
	accounting_listing_end(a);
	assert_int_equal(accounting_domain_set_pid(a, v[2], 2103), 0);
	assert_string_equal(accounting_domain_cpu_source(v[2]), "cgroup2");
	accounting_free(a);
	for (int i = 0; i < 3; i++)
		close(fd[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_split_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_readd_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cpu_failure_streak, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_upper_half, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suspend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_host_not_fed_by_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_level_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_estimate, NULL, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cgroup_not_own, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thousand_domains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publishers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listing_mounts, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
