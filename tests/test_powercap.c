/* common/powercap.c: zone discovery on fixture trees that mirror sysfs (symlinked zones, the
 * control-type directory, mmio duplicates, psys) and powerd's own per-domain tree; strict value
 * parsing; the wrap-aware counter; the heartbeat. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/powercap.h"

#define RANGE_UJ "262143328850"

struct fixture {
	char *dir;
	char *root; /* dir/class/powercap, or dir itself for powerd's tree */
	struct powercap_tree *t;
	char err[512];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->dir = tu_mkdtemp("test_powercap");
	f->root = xasprintf("%s/class/powercap", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	powercap_tree_free(f->t);
	tu_rm_rf(f->dir);
	free(f->dir);
	free(f->root);
	free(f);
	return 0;
}

static void symlink_at(const char *dir, const char *target, const char *relpath)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, relpath);

	assert_int_equal(symlink(target, path), 0);
}

static void mkdir_at(const char *dir, const char *relpath)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, relpath);

	assert_int_equal(mkdir(path, 0755), 0);
}

/* One zone directory as the kernel lays it out; relpath under devices/virtual/powercap. */
static void sysfs_zone(
	struct fixture *f, const char *relpath, const char *name, uint64_t energy, bool has_range)
{
	_cleanup_free_ char *z = xasprintf("%s/devices/virtual/powercap/%s", f->dir, relpath);

	tu_writef(z, "name", "%s\n", name);
	tu_writef(z, "energy_uj", "%" PRIu64 "\n", energy);
	if (has_range)
		tu_write(z, "max_energy_range_uj", RANGE_UJ "\n");
	tu_write(z, "enabled", "1\n");
	tu_write(z, "constraint_0_name", "long_term\n");
	tu_write(z, "constraint_0_power_limit_uw", "65000000\n");
	tu_write(z, "constraint_0_time_window_us", "27983872\n");
	tu_write(z, "constraint_0_max_power_uw", "95000000\n");
	tu_write(z, "constraint_1_name", "short_term\n");
	tu_write(z, "constraint_1_max_power_uw", "120000000\n");
	tu_write(z, "power/autosuspend_delay_ms", "");
	/* Links back up the hierarchy: a reader that recursed through them would loop. */
	symlink_at(z, "../../../../../class/powercap", "subsystem");
	symlink_at(z, "..", "device");
}

/* /sys/class/powercap with sockets packages, each with core and uncore (and dram). */
static void build_sysfs(struct fixture *f, unsigned sockets, bool has_dram)
{
	const char *subs[] = { "core", "uncore", "dram" };

	tu_write(f->dir, "devices/virtual/powercap/intel-rapl/enabled", "1\n");
	tu_write(f->dir, "devices/virtual/powercap/intel-rapl/uevent", "");
	tu_write(f->dir, "class/powercap/.keep", "");
	symlink_at(
		f->dir, "../../devices/virtual/powercap/intel-rapl", "class/powercap/intel-rapl");
	/* Created in reverse to show the order is the reader's, not readdir's. */
	for (unsigned n = sockets; n-- > 0;) {
		_cleanup_free_ char *pkg = xasprintf("intel-rapl/intel-rapl:%u", n);
		_cleanup_free_ char *pname = xasprintf("package-%u", n);
		_cleanup_free_ char *link = xasprintf("class/powercap/intel-rapl:%u", n);
		_cleanup_free_ char *target = xasprintf("../../devices/virtual/powercap/%s", pkg);

		sysfs_zone(f, pkg, pname, 1000000 * (n + 1), true);
		symlink_at(f->dir, target, link);
		for (unsigned m = has_dram ? 3 : 2; m-- > 0;) {
			_cleanup_free_ char *sub = xasprintf("%s/intel-rapl:%u:%u", pkg, n, m);
			_cleanup_free_ char *slink =
				xasprintf("class/powercap/intel-rapl:%u:%u", n, m);
			_cleanup_free_ char *starget =
				xasprintf("../../devices/virtual/powercap/%s", sub);

			sysfs_zone(f, sub, subs[m], 1000 * (n + 1) + m, true);
			symlink_at(f->dir, starget, slink);
		}
	}
}

static void open_tree(struct fixture *f)
{
	powercap_tree_free(f->t);
	f->t = NULL;
	int r = powercap_tree_open(f->root, &f->t, f->err, sizeof(f->err));
	if (r < 0)
		fail_msg("powercap_tree_open: %s (%s)", strerror(-r), f->err);
}

static void assert_zone(const struct powercap_tree *t, size_t i, const char *id, const char *name,
	int parent, unsigned package)
{
	assert_true(i < t->n_zones);
	assert_string_equal(t->zones[i].id, id);
	assert_string_equal(t->zones[i].name, name);
	assert_int_equal(t->zones[i].parent, parent);
	assert_int_equal(t->zones[i].package, package);
}

static uint64_t zone_energy(const struct powercap_tree *t, size_t i)
{
	uint64_t v = 0;

	int r = powercap_zone_read(t, &t->zones[i], &v);
	if (r < 0)
		fail_msg("zone %s: %s", t->zones[i].id, strerror(-r));
	return v;
}

static void test_one_socket(void **state)
{
	struct fixture *f = *state;

	build_sysfs(f, 1, true);
	open_tree(f);
	assert_false(f->t->is_sysfs);
	assert_int_equal(f->t->n_zones, 4);
	assert_zone(f->t, 0, "intel-rapl:0", "package-0", -1, 0);
	assert_zone(f->t, 1, "intel-rapl:0:0", "core", 0, 0);
	assert_zone(f->t, 2, "intel-rapl:0:1", "uncore", 0, 0);
	assert_zone(f->t, 3, "intel-rapl:0:2", "dram", 0, 0);
	/* the largest of the constraints' max power */
	for (size_t i = 0; i < f->t->n_zones; i++)
		assert_int_equal(f->t->zones[i].max_power_uw, 120000000);
	for (size_t i = 0; i < f->t->n_zones; i++) {
		assert_true(f->t->zones[i].has_max_energy_range);
		assert_true(f->t->zones[i].max_energy_range_uj == UINT64_C(262143328850));
		assert_true(f->t->zones[i].dir_fd >= 0);
		/* Not sysfs: nothing is kept open, every read re-opens. */
		assert_int_equal(f->t->zones[i].energy_fd, -1);
	}
	assert_int_equal(zone_energy(f->t, 0), 1000000);
	assert_int_equal(zone_energy(f->t, 1), 1000);
	assert_int_equal(zone_energy(f->t, 3), 1002);

	struct heartbeat hb;
	assert_int_equal(powercap_heartbeat_read(f->t, &hb), -ENOENT);
}

static void test_two_sockets_no_dram(void **state)
{
	struct fixture *f = *state;

	build_sysfs(f, 2, false);
	open_tree(f);
	assert_int_equal(f->t->n_zones, 6);
	assert_zone(f->t, 0, "intel-rapl:0", "package-0", -1, 0);
	assert_zone(f->t, 1, "intel-rapl:0:0", "core", 0, 0);
	assert_zone(f->t, 2, "intel-rapl:0:1", "uncore", 0, 0);
	assert_zone(f->t, 3, "intel-rapl:1", "package-1", -1, 1);
	assert_zone(f->t, 4, "intel-rapl:1:0", "core", 3, 1);
	assert_zone(f->t, 5, "intel-rapl:1:1", "uncore", 3, 1);
	assert_int_equal(zone_energy(f->t, 3), 2000000);
	assert_int_equal(zone_energy(f->t, 5), 2001);
}

static void test_order_psys_mmio(void **state)
{
	struct fixture *f = *state;

	build_sysfs(f, 1, false);
	/* A client machine: psys is a top-level zone of its own, not a package. */
	sysfs_zone(f, "intel-rapl/intel-rapl:1", "psys", 77, true);
	symlink_at(f->dir, "../../devices/virtual/powercap/intel-rapl/intel-rapl:1",
		"class/powercap/intel-rapl:1");
	/* intel-rapl-mmio duplicates package-0: it must not be counted twice. */
	sysfs_zone(f, "intel-rapl-mmio/intel-rapl-mmio:0", "package-0", 5, true);
	symlink_at(f->dir, "../../devices/virtual/powercap/intel-rapl-mmio/intel-rapl-mmio:0",
		"class/powercap/intel-rapl-mmio:0");
	symlink_at(f->dir, "../../devices/virtual/powercap/intel-rapl-mmio",
		"class/powercap/intel-rapl-mmio");
	/* Ids sort as numbers: 0:10 after 0:2, and 10 after 2. */
	sysfs_zone(f, "intel-rapl/intel-rapl:0/intel-rapl:0:10", "dram", 10, true);
	sysfs_zone(f, "intel-rapl/intel-rapl:0/intel-rapl:0:2", "dram", 2, true);
	sysfs_zone(f, "intel-rapl/intel-rapl:10", "package-10", 100, true);
	sysfs_zone(f, "intel-rapl/intel-rapl:2", "package-2", 20, true);
	symlink_at(f->dir, "../../devices/virtual/powercap/intel-rapl/intel-rapl:10",
		"class/powercap/intel-rapl:10");
	symlink_at(f->dir, "../../devices/virtual/powercap/intel-rapl/intel-rapl:2",
		"class/powercap/intel-rapl:2");
	/* Not zones: stray files and look-alike names. */
	tu_write(f->root, "intel-rapl:x", "");
	tu_write(f->root, "intel-rapl:", "");
	tu_write(f->root, "README", "");

	open_tree(f);
	assert_int_equal(f->t->n_zones, 8);
	assert_zone(f->t, 0, "intel-rapl:0", "package-0", -1, 0);
	assert_zone(f->t, 1, "intel-rapl:0:0", "core", 0, 0);
	assert_zone(f->t, 2, "intel-rapl:0:1", "uncore", 0, 0);
	assert_zone(f->t, 3, "intel-rapl:0:2", "dram", 0, 0);
	assert_zone(f->t, 4, "intel-rapl:0:10", "dram", 0, 0);
	assert_zone(f->t, 5, "intel-rapl:1", "psys", -1, 1);
	assert_zone(f->t, 6, "intel-rapl:2", "package-2", -1, 2);
	assert_zone(f->t, 7, "intel-rapl:10", "package-10", -1, 10);
	assert_int_equal(zone_energy(f->t, 5), 77);
	for (size_t i = 0; i < f->t->n_zones; i++)
		assert_null(strstr(f->t->zones[i].id, "mmio"));
}

static void test_missing_max_range(void **state)
{
	struct fixture *f = *state;

	build_sysfs(f, 1, false);
	_cleanup_free_ char *p = xasprintf("%s/intel-rapl:0:1/max_energy_range_uj", f->root);
	assert_int_equal(unlink(p), 0);
	open_tree(f);
	assert_int_equal(f->t->n_zones, 3);
	assert_true(f->t->zones[0].has_max_energy_range);
	assert_false(f->t->zones[2].has_max_energy_range);
	assert_int_equal(f->t->zones[2].max_energy_range_uj, 0);
	assert_int_equal(zone_energy(f->t, 2), 1001);
}

/* Replace dir/rel by rename, as powerd-host does. */
static void replace_at(const char *dir, const char *rel, const char *content)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", rel);
	_cleanup_free_ char *from = xasprintf("%s/%s", dir, tmp);
	_cleanup_free_ char *to = xasprintf("%s/%s", dir, rel);

	tu_write(dir, tmp, content);
	assert_int_equal(rename(from, to), 0);
}

static void expect_open_error(struct fixture *f, int err, const char *msg)
{
	powercap_tree_free(f->t);
	f->t = NULL;
	int r = powercap_tree_open(f->root, &f->t, f->err, sizeof(f->err));
	if (r != err || !streq(f->err, msg))
		fail_msg("want %d '%s', got %d '%s'", err, msg, r, f->err);
	assert_null(f->t);
}

static void test_bad_values_at_open(void **state)
{
	struct fixture *f = *state;
	const char *pkg_energy = "intel-rapl:0/energy_uj";

	build_sysfs(f, 1, false);
	replace_at(f->root, pkg_energy, "12x\n");
	expect_open_error(f, -EINVAL, "intel-rapl:0/energy_uj: invalid content '12x'");
	replace_at(f->root, pkg_energy, "");
	expect_open_error(f, -EINVAL, "intel-rapl:0/energy_uj: invalid content ''");
	replace_at(f->root, pkg_energy, "18446744073709551616\n");
	expect_open_error(
		f, -EINVAL, "intel-rapl:0/energy_uj: invalid content '18446744073709551616'");
	replace_at(f->root, "intel-rapl:0:1/energy_uj", "12\n3");
	replace_at(f->root, pkg_energy, "5\n");
	expect_open_error(
		f, -EINVAL, "intel-rapl:0/intel-rapl:0:1/energy_uj: invalid content '12\\x0a3'");
	replace_at(f->root, "intel-rapl:0:1/energy_uj", "3\n");
	replace_at(f->root, "intel-rapl:0/max_energy_range_uj", "lots\n");
	expect_open_error(f, -EINVAL, "intel-rapl:0/max_energy_range_uj: invalid content 'lots'");
	replace_at(f->root, "intel-rapl:0/max_energy_range_uj", RANGE_UJ "\n");
	replace_at(f->root, "intel-rapl:0/name", "\n");
	expect_open_error(f, -EINVAL, "intel-rapl:0/name: invalid content ''");
	replace_at(f->root, "intel-rapl:0/name", "package-0\n");
	open_tree(f);

	/* energy_uj that cannot be read: a directory, a dangling symlink. */
	_cleanup_free_ char *e = xasprintf("%s/%s", f->root, pkg_energy);
	assert_int_equal(unlink(e), 0);
	assert_int_equal(mkdir(e, 0755), 0);
	uint64_t v;
	assert_int_equal(powercap_zone_read(f->t, &f->t->zones[0], &v), -EISDIR);
	expect_open_error(f, -EISDIR, "intel-rapl:0/energy_uj: Is a directory");
	assert_int_equal(rmdir(e), 0);
	assert_int_equal(symlink("/nonexistent/energy_uj", e), 0);
	expect_open_error(f, -ELOOP, "intel-rapl:0/energy_uj: Too many levels of symbolic links");
	assert_int_equal(unlink(e), 0);
	expect_open_error(f, -ENOENT, "intel-rapl:0/energy_uj: No such file or directory");
}

static void test_bad_values_read(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = { "", "\n", "12x\n", "-1\n", " 1\n", "1 \n", "12\n3", "12\n\n",
		"18446744073709551616\n", "0x10\n",
		"1111111111111111111111111111111111111111111111111111111111111111111111\n" };
	uint64_t v;

	build_sysfs(f, 1, false);
	open_tree(f);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		replace_at(f->root, "intel-rapl:0/energy_uj", bad[i]);
		int r = powercap_zone_read(f->t, &f->t->zones[0], &v);
		if (r != -EINVAL)
			fail_msg("'%s' gave %d", bad[i], r);
	}
	replace_at(f->root, "intel-rapl:0/energy_uj", "18446744073709551615\n");
	assert_int_equal(powercap_zone_read(f->t, &f->t->zones[0], &v), 0);
	assert_true(v == UINT64_MAX);
	replace_at(f->root, "intel-rapl:0/energy_uj", "42");
	assert_int_equal(powercap_zone_read(f->t, &f->t->zones[0], &v), 0);
	assert_int_equal(v, 42);
}

/* An unprivileged reader of a root-only energy_uj (kernels since 5.10 make it 0400). The child
 * allocates nothing, so it exits clean under valgrind. */
static void test_unreadable_energy(void **state)
{
	struct fixture *f = *state;

	build_sysfs(f, 1, false);
	char root[512];
	snprintf(root, sizeof(root), "%s", f->root);
	char e[600];
	snprintf(e, sizeof(e), "%s/devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj",
		f->dir);
	assert_int_equal(chmod(e, geteuid() == 0 ? 0400 : 0), 0);
	assert_int_equal(chmod(f->dir, 0755), 0);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct powercap_tree *t = NULL;
		char err[512];

		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0 || geteuid() == 0))
			_exit(3);
		int r = powercap_tree_open(root, &t, err, sizeof(err));
		_exit(r == -EACCES && streq(err, "intel-rapl:0/energy_uj: Permission denied") && !t
				? 0
				: 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* powerd-host's per-domain tree: real directories, relative top-level links, a heartbeat. */
static void build_powerd_tree(struct fixture *f, const char *const *subs, size_t n_subs)
{
	free(f->root);
	f->root = xasprintf("%s/vm-01", f->dir);
	tu_write(f->root, "intel-rapl:0/name", "package-0\n");
	tu_write(f->root, "intel-rapl:0/energy_uj", "5000\n");
	tu_write(f->root, "intel-rapl:0/max_energy_range_uj", "1125899906842624\n");
	for (size_t i = 0; i < n_subs; i++) {
		_cleanup_free_ char *d = xasprintf("intel-rapl:0/intel-rapl:0:%zu", i);
		_cleanup_free_ char *top = xasprintf("intel-rapl:0:%zu", i);
		_cleanup_free_ char *dir = xasprintf("%s/%s", f->root, d);

		tu_writef(dir, "name", "%s\n", subs[i]);
		tu_writef(dir, "energy_uj", "%zu\n", 100 + i);
		tu_write(dir, "max_energy_range_uj", "1125899906842624\n");
		symlink_at(f->root, d, top);
	}
	tu_write(f->root, POWERCAP_HEARTBEAT_FILE,
		"version 1\nseq 17\ninterval_ms 1000\ntime_ms 1700000000000\nestimated 0\n");
}

static void test_powerd_tree(void **state)
{
	struct fixture *f = *state;
	const char *const subs[] = { "core", "uncore", "dram" };
	struct heartbeat hb;

	build_powerd_tree(f, subs, ARRAY_SIZE(subs));
	open_tree(f);
	/* Subzones are found nested and as top-level links: each counted once. */
	assert_int_equal(f->t->n_zones, 4);
	assert_zone(f->t, 0, "intel-rapl:0", "package-0", -1, 0);
	assert_zone(f->t, 1, "intel-rapl:0:0", "core", 0, 0);
	assert_zone(f->t, 2, "intel-rapl:0:1", "uncore", 0, 0);
	assert_zone(f->t, 3, "intel-rapl:0:2", "dram", 0, 0);
	assert_true(f->t->zones[3].max_energy_range_uj == UINT64_C(1) << 50);
	assert_int_equal(zone_energy(f->t, 0), 5000);
	assert_int_equal(zone_energy(f->t, 3), 102);

	assert_int_equal(powercap_heartbeat_read(f->t, &hb), 0);
	assert_int_equal(hb.seq, 17);
	assert_int_equal(hb.interval_ms, 1000);
	assert_true(hb.time_ms == UINT64_C(1700000000000));
	assert_false(hb.is_estimated);

	/* Every update is a rename over the old file: the next read sees it. */
	for (uint64_t i = 1; i <= 50; i++) {
		char val[32];
		snprintf(val, sizeof(val), "%" PRIu64 "\n", 5000 + i * 1234);
		replace_at(f->root, "intel-rapl:0/energy_uj", val);
		replace_at(f->root, "intel-rapl:0/intel-rapl:0:2/energy_uj", val);
		assert_int_equal(zone_energy(f->t, 0), 5000 + i * 1234);
		assert_int_equal(zone_energy(f->t, 3), 5000 + i * 1234);
	}
	replace_at(f->root, POWERCAP_HEARTBEAT_FILE,
		"version 1\nseq 18\ninterval_ms 500\n"
		"estimated 1\nfuture_key whatever\n");
	assert_int_equal(powercap_heartbeat_read(f->t, &hb), 0);
	assert_int_equal(hb.seq, 18);
	assert_int_equal(hb.interval_ms, 500);
	assert_true(hb.is_estimated);
	replace_at(f->root, POWERCAP_HEARTBEAT_FILE, "version 1\nseq 1x\ninterval_ms 500\n");
	assert_int_equal(powercap_heartbeat_read(f->t, &hb), -EINVAL);
}

static void test_subzones_top_level_only(void **state)
{
	struct fixture *f = *state;

	/* Subzones that are plain top-level directories, not nested in their package. */
	free(f->root);
	f->root = xasprintf("%s/flat", f->dir);
	tu_write(f->root, "intel-rapl:0/name", "package-0\n");
	tu_write(f->root, "intel-rapl:0/energy_uj", "1\n");
	tu_write(f->root, "intel-rapl:0:1/name", "dram\n");
	tu_write(f->root, "intel-rapl:0:1/energy_uj", "3\n");
	tu_write(f->root, "intel-rapl:0:0/name", "core\n");
	tu_write(f->root, "intel-rapl:0:0/energy_uj", "2\n");
	/* A subzone whose package does not exist is left out. */
	tu_write(f->root, "intel-rapl:5:0/name", "core\n");
	tu_write(f->root, "intel-rapl:5:0/energy_uj", "2\n");
	open_tree(f);
	assert_int_equal(f->t->n_zones, 3);
	assert_zone(f->t, 1, "intel-rapl:0:0", "core", 0, 0);
	assert_zone(f->t, 2, "intel-rapl:0:1", "dram", 0, 0);
	assert_false(f->t->zones[0].has_max_energy_range);
	assert_int_equal(zone_energy(f->t, 2), 3);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct powercap_tree *t = NULL;
	_cleanup_free_ char *want = NULL;

	assert_int_equal(powercap_tree_open(f->root, &t, f->err, sizeof(f->err)), -ENOENT);
	want = xasprintf("%s: No such file or directory", f->root);
	assert_string_equal(f->err, want);
	free(want);
	want = NULL;

	/* The control type directory alone is no zone. */
	tu_write(f->dir, "devices/virtual/powercap/intel-rapl/enabled", "0\n");
	mkdir_at(f->dir, "class");
	mkdir_at(f->dir, "class/powercap");
	symlink_at(
		f->dir, "../../devices/virtual/powercap/intel-rapl", "class/powercap/intel-rapl");
	assert_int_equal(powercap_tree_open(f->root, &t, f->err, sizeof(f->err)), -ENODATA);
	want = xasprintf("%s: no powercap zone", f->root);
	assert_string_equal(f->err, want);
	assert_null(t);

	/* A zone entry that is a file, not a directory. */
	tu_write(f->root, "intel-rapl:0", "x\n");
	assert_int_equal(powercap_tree_open(f->root, &t, f->err, sizeof(f->err)), -ENOTDIR);
	assert_string_equal(f->err, "intel-rapl:0: Not a directory");
}

static void test_real_sysfs(void **state)
{
	struct powercap_tree *t = NULL;
	char err[512];
	uint64_t v;

	int r = powercap_tree_open("/sys/class/powercap", &t, err, sizeof(err));
	if (r == -ENOENT || r == -ENODATA || r == -EACCES) {
		skip();
		return;
	}
	assert_int_equal(r, 0);
	assert_true(t->is_sysfs);
	for (size_t i = 0; i < t->n_zones; i++) {
		assert_true(t->zones[i].energy_fd >= 0);
		assert_int_equal(powercap_zone_read(t, &t->zones[i], &v), 0);
	}
	powercap_tree_free(t);
}

#define SEC UINT64_C(1000000000)

static void test_counter(void **state)
{
	struct energy_counter c = { 0 };
	enum counter_step step;
	const uint64_t range = UINT64_C(262143328850);
	const struct counter_limits lim = { .kind = COUNTER_RAPL, .max_range_uj = range };

	assert_int_equal(energy_counter_update(&c, 1000, &lim, SEC, &step), 0);
	assert_int_equal(step, COUNTER_FIRST);
	assert_int_equal(energy_counter_update(&c, 1500, &lim, SEC, &step), 500);
	assert_int_equal(step, COUNTER_OK);
	assert_int_equal(energy_counter_update(&c, 1500, &lim, SEC, &step), 0);
	assert_int_equal(step, COUNTER_OK);
	assert_int_equal(c.total_uj, 500);

	/* Wrap at the top of the range: RAPL wraps one unit above it (2^32 × 61035 nJ), so
	 * 100 µJ to the range, 61.36 to the wrap, 50 after it. */
	assert_int_equal(energy_counter_update(&c, range - 100, &lim, SEC, &step), range - 1600);
	assert_int_equal(energy_counter_update(&c, 50, &lim, SEC, &step), 211);
	assert_int_equal(step, COUNTER_WRAPPED);
	assert_true(c.total_uj == range - 100 - 1000 + 211);

	/* A decrease that is no plausible wrap is a reset: no energy, follow the new value. */
	uint64_t before = c.total_uj;
	assert_int_equal(energy_counter_update(&c, range / 4, &lim, SEC, &step), range / 4 - 50);
	assert_int_equal(energy_counter_update(&c, 10, &lim, SEC, &step), 0);
	assert_int_equal(step, COUNTER_RESET);
	assert_int_equal(energy_counter_update(&c, 30, &lim, SEC, &step), 20);
	assert_int_equal(step, COUNTER_OK);
	assert_true(c.total_uj == before + range / 4 - 50 + 20);

	/* Without a range a decrease is always a reset. */
	const struct counter_limits none = { .kind = COUNTER_RAPL };
	struct energy_counter d = { 0 };
	energy_counter_update(&d, 900, &none, SEC, NULL);
	assert_int_equal(energy_counter_update(&d, 5, &none, SEC, &step), 0);
	assert_int_equal(step, COUNTER_RESET);
	/* A previous value above the range cannot be a wrap. */
	const struct counter_limits small = { .kind = COUNTER_EXACT, .max_range_uj = 800 };
	struct energy_counter e = { 0 };
	energy_counter_update(&e, 1000, &none, SEC, NULL);
	assert_int_equal(energy_counter_update(&e, 10, &small, SEC, &step), 0);
	assert_int_equal(step, COUNTER_RESET);
}

/* Issue 10 #1: a reset from the upper half of the range is not a wrap when the energy the wrap
 * implies is impossible in the time; and a real wrap after a long stall is one. */
static void test_counter_reset_or_wrap_by_power(void **state)
{
	const uint64_t range = UINT64_C(262143328850);
	const struct counter_limits lim = { .kind = COUNTER_RAPL, .max_range_uj = range };
	struct energy_counter c = { 0 };
	enum counter_step step;

	/* 200 kJ reset to 1 mJ: a wrap would be 62 kJ in 1 s (62 kW) */
	energy_counter_update(&c, UINT64_C(200000000000), &lim, SEC, NULL);
	assert_int_equal(energy_counter_update(&c, 1000, &lim, SEC, &step), 0);
	assert_int_equal(step, COUNTER_RESET);
	assert_int_equal(c.total_uj, 0);
	assert_int_equal(energy_counter_update(&c, 1500, &lim, SEC, &step), 500);
	/* ... but over 60 s it is 1 kW: a wrap */
	c = (struct energy_counter){ 0 };
	energy_counter_update(&c, UINT64_C(200000000000), &lim, SEC, NULL);
	assert_int_equal(
		energy_counter_update(&c, 1000, &lim, 60 * SEC, &step), UINT64_C(62143329911));
	assert_int_equal(step, COUNTER_WRAPPED);

	/* A stall of an hour from the lower half, nearly a full range later (72.8 W): a wrap,
	 * not a reset; the same decrease in 1 s is a reset */
	c = (struct energy_counter){ 0 };
	energy_counter_update(&c, range / 4, &lim, SEC, NULL);
	uint64_t want = range + 61 - 1000000;
	assert_int_equal(
		energy_counter_update(&c, range / 4 - 1000000, &lim, 3600 * SEC, &step), want);
	assert_int_equal(step, COUNTER_WRAPPED);
	c = (struct energy_counter){ 0 };
	energy_counter_update(&c, range / 4, &lim, SEC, NULL);
	assert_int_equal(energy_counter_update(&c, range / 4 - 1000000, &lim, SEC, &step), 0);
	assert_int_equal(step, COUNTER_RESET);

	/* No time at all: nothing is plausible */
	c = (struct energy_counter){ 0 };
	energy_counter_update(&c, range - 10, &lim, SEC, NULL);
	assert_int_equal(energy_counter_update(&c, 10, &lim, 0, &step), 0);
	assert_int_equal(step, COUNTER_RESET);

	/* The zone's own max power, times the constraint factor (50 W: 200 W) */
	struct powercap_zone z = {
		.max_energy_range_uj = range, .has_max_energy_range = true, .max_power_uw = 50000000
	};
	struct counter_limits zl;
	powercap_zone_limits(&z, COUNTER_RAPL, &zl);
	assert_int_equal(zl.kind, COUNTER_RAPL);
	assert_true(zl.max_range_uj == range);
	assert_int_equal(zl.max_power_uw, 200000000);
	c = (struct energy_counter){ 0 };
	energy_counter_update(&c, range - 150000000, &zl, SEC, NULL); /* 150 J to the top */
	assert_int_equal(energy_counter_update(&c, 100, &zl, SEC, &step), 150000161);
	assert_int_equal(step, COUNTER_WRAPPED);
	energy_counter_update(&c, range - 250000000, &zl, SEC, NULL); /* 250 J: 250 W */
	assert_int_equal(energy_counter_update(&c, 100, &zl, SEC, &step), 0);
	assert_int_equal(step, COUNTER_RESET);
	/* no constraint: the default bound */
	z.max_power_uw = 0;
	z.has_max_energy_range = false;
	powercap_zone_limits(&z, COUNTER_EXACT, &zl);
	assert_true(zl.max_power_uw == COUNTER_MAX_POWER_UW_DEFAULT);
	assert_int_equal(zl.max_range_uj, 0);
}

/* Issue 10 #7: RAPL wraps one counter unit above max_energy_range_uj, counted to the nJ (the
 * fraction carried); powerd's trees wrap exactly at their range. */
static void test_counter_wrap_unit(void **state)
{
	const uint64_t range = UINT64_C(262143328850); /* 0xffffffff × 61035 nJ, in µJ */
	const struct counter_limits lim = { .kind = COUNTER_RAPL, .max_range_uj = range };
	struct energy_counter c = { 0 };
	enum counter_step step;

	/* 25 wraps from 100 µJ under the range to 50 over 0: each 211.36 µJ */
	energy_counter_update(&c, range - 100, &lim, SEC, NULL);
	for (int i = 0; i < 25; i++) {
		energy_counter_update(&c, 50, &lim, SEC, &step);
		assert_int_equal(step, COUNTER_WRAPPED);
		energy_counter_update(&c, range - 100, &lim, SEC, &step);
		assert_int_equal(step, COUNTER_OK);
	}
	/* 25 × (range + 61.36 µJ): the wraps' whole µJ, the last fraction still owed */
	uint64_t full_nj_x25 = UINT64_C(262143328911360) * 25;
	assert_true(c.total_uj == full_nj_x25 / 1000);
	assert_int_equal(c.frac_nj, full_nj_x25 % 1000);

	/* AMD's unit, 15.258 µJ: 0xffffffff × 15258 nJ = 65532610987 µJ */
	const struct counter_limits amd = { .kind = COUNTER_RAPL,
		.max_range_uj = UINT64_C(65532610987) };
	c = (struct energy_counter){ 0 };
	energy_counter_update(&c, UINT64_C(65532610987), &amd, SEC, NULL);
	assert_int_equal(energy_counter_update(&c, 0, &amd, SEC, &step), 15);
	assert_int_equal(c.frac_nj, 368);

	/* powerd's trees: 0..2^50-1, written as total % 2^50 */
	const uint64_t tree_range = UINT64_C(1) << 50;
	const struct counter_limits tree = { .kind = COUNTER_EXACT, .max_range_uj = tree_range };
	c = (struct energy_counter){ 0 };
	energy_counter_update(&c, tree_range - 10, &tree, SEC, NULL);
	assert_int_equal(energy_counter_update(&c, 5, &tree, SEC, &step), 15);
	assert_int_equal(step, COUNTER_WRAPPED);
	assert_int_equal(c.frac_nj, 0);

	/* a range the kernel's formula cannot give (no whole-nJ unit): wraps at the range */
	const struct counter_limits odd = { .kind = COUNTER_RAPL, .max_range_uj = 1000000 };
	c = (struct energy_counter){ 0 };
	energy_counter_update(&c, 999990, &odd, SEC, NULL);
	assert_int_equal(energy_counter_update(&c, 5, &odd, SEC, &step), 15);
	assert_int_equal(step, COUNTER_WRAPPED);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* A simulated counter that wraps, with occasional resets: the total never decreases and equals
 * the true energy minus what was lost to resets. */
static void test_counter_random(void **state)
{
	const uint64_t range = 1000000;
	/* exact wraps; 1 s intervals and a bound that makes any wrap plausible */
	const struct counter_limits lim = {
		.kind = COUNTER_EXACT, .max_range_uj = range, .max_power_uw = UINT64_MAX
	};
	struct energy_counter c = { 0 };
	uint64_t seed = 12345, raw = 777, true_total = 0, lost = 0, prev_total = 0;
	enum counter_step step;

	energy_counter_update(&c, raw, &lim, SEC, &step);
	for (int i = 0; i < 200000; i++) {
		uint64_t r = rng_next(&seed);
		if (r % 1000 == 0) {
			/* Reset to a low value (source restarted). */
			uint64_t nraw = rng_next(&seed) % (range / 4);
			uint64_t delta = energy_counter_update(&c, nraw, &lim, SEC, &step);
			if (nraw < raw) {
				assert_true(step == COUNTER_RESET || step == COUNTER_WRAPPED);
				if (step == COUNTER_WRAPPED)
					true_total += delta; /* indistinguishable from a wrap */
			} else {
				true_total += nraw - raw;
			}
			raw = nraw;
		} else {
			/* Steps up to 40% of the range, so wraps are always plausible. */
			uint64_t step_uj = rng_next(&seed) % (range * 2 / 5);
			raw += step_uj;
			if (raw >= range)
				raw -= range;
			true_total += step_uj;
			uint64_t delta = energy_counter_update(&c, raw, &lim, SEC, &step);
			if (step == COUNTER_RESET) {
				lost += step_uj;
				assert_int_equal(delta, 0);
			} else {
				assert_int_equal(delta, step_uj);
			}
		}
		assert_true(c.total_uj >= prev_total);
		prev_total = c.total_uj;
	}
	assert_true(c.total_uj == true_total - lost);
	assert_true(lost == 0);
}

static void test_heartbeat(void **state)
{
	struct heartbeat hb = { .seq = UINT64_MAX,
		.interval_ms = 250,
		.time_ms = 1700000000123,
		.is_estimated = true };
	struct heartbeat back;
	char buf[160];

	size_t len = heartbeat_format(&hb, buf, sizeof(buf));
	assert_int_equal(len, strlen(buf));
	assert_string_equal(buf, "version 1\nseq 18446744073709551615\ninterval_ms 250\n"
				 "time_ms 1700000000123\nestimated 1\n");
	assert_int_equal(heartbeat_parse(buf, len, &back), 0);
	assert_true(back.seq == UINT64_MAX);
	assert_int_equal(back.interval_ms, 250);
	assert_true(back.time_ms == hb.time_ms);
	assert_true(back.is_estimated);

	/* the counters' origin, when known; read back, and refused when it is not 32 hex */
	strcpy(hb.instance, "00112233445566778899aabbccddeeff");
	len = heartbeat_format(&hb, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\ninstance 00112233445566778899aabbccddeeff\n"));
	assert_int_equal(heartbeat_parse(buf, len, &back), 0);
	assert_string_equal(back.instance, hb.instance);
	const char *bad_instance[] = { "seq 1\ninterval_ms 2\ninstance 0011\n",
		"seq 1\ninterval_ms 2\ninstance 00112233445566778899AABBCCDDEEFF\n",
		("seq 1\ninterval_ms 2\ninstance 00112233445566778899aabbccddeeff\n"
		 "instance 00112233445566778899aabbccddeeff\n") };
	for (size_t i = 0; i < ARRAY_SIZE(bad_instance); i++)
		assert_int_equal(
			heartbeat_parse(bad_instance[i], strlen(bad_instance[i]), &back), -EINVAL);

	const char *good = "seq 1\ninterval_ms 2\nnew_thing a b c\n\nx 1";
	assert_int_equal(heartbeat_parse(good, strlen(good), &back), 0);
	assert_int_equal(back.seq, 1);
	assert_false(back.is_estimated);
	assert_int_equal(back.time_ms, 0);

	const char *bad[] = {
		"",
		"interval_ms 2\n",
		"seq 1\n",
		"seq 1\ninterval_ms x\n",
		"seq -1\ninterval_ms 2\n",
		"seq 1\ninterval_ms 2\nseq 3\n",
		"seq 1\ninterval_ms 2\nestimated 2\n",
		"seq  1\ninterval_ms 2\n",
		"seq 1 \ninterval_ms 2\n",
		"seq\ninterval_ms 2\n",
		"version 2\nseq 1\ninterval_ms 2\n",
		"seq 99999999999999999999\ninterval_ms 2\n",
		"garbage\nseq 1\ninterval_ms 2\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (heartbeat_parse(bad[i], strlen(bad[i]), &back) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
	}
	const char nul[] = "seq 1\0\ninterval_ms 2\n";
	assert_int_equal(heartbeat_parse(nul, sizeof(nul) - 1, &back), -EINVAL);
	char big[600];
	memset(big, '\n', sizeof(big));
	memcpy(big, "seq 1\ninterval_ms 2\n", 20);
	assert_int_equal(heartbeat_parse(big, sizeof(big), &back), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_sockets_no_dram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order_psys_mmio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_max_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_values_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_values_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_energy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_powerd_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subzones_top_level_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test(test_real_sysfs),
		cmocka_unit_test(test_counter),
		cmocka_unit_test(test_counter_reset_or_wrap_by_power),
		cmocka_unit_test(test_counter_wrap_unit),
		cmocka_unit_test(test_counter_random),
		cmocka_unit_test(test_heartbeat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
