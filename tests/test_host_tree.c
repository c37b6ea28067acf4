/* The per-domain tree writer: layout and modes of DESIGN.md §1, readable by the common powercap
 * reader, atomic replacement under a concurrent reader, adoption across reopen, symlink and FIFO
 * attacks planted in the tree, wrapping, and a real tmpfs. */
#include "tests/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/powercap.h"
#include "common/tree.h"

static const char *const zone_names[] = { "package-0", "core", "uncore", "dram" };

struct fixture {
	char *dir;     /* the domain's tree */
	char *outside; /* a directory beside it a guest would like us to write into */
	int dirfd;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->dir = tu_mkdtemp("powerd-tree");
	f->outside = tu_mkdtemp("powerd-tree-outside");
	tu_write(f->outside, "victim", "precious\n");
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->dirfd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->dirfd);
	/* A test that failed half-way left its tmpfs mounted: never leave one behind. */
	tu_umount_under(f->dir);
	tu_rm_rf(f->dir);
	tu_rm_rf(f->outside);
	free(f->dir);
	free(f->outside);
	free(f);
	return 0;
}

static void assert_file(const char *dir, const char *rel, const char *content, mode_t mode)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, rel);
	_cleanup_free_ char *got = tu_read(dir, rel);
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, mode);
	assert_non_null(got);
	assert_string_equal(got, content);
}

static void assert_outside_untouched(const struct fixture *f)
{
	_cleanup_free_ char *v = tu_read(f->outside, "victim");
	DIR *d = opendir(f->outside);
	int n = 0;

	assert_non_null(v);
	assert_string_equal(v, "precious\n");
	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));)
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			n++;
	closedir(d);
	assert_int_equal(n, 1);
}

static void assert_layout(const char *dir, const uint64_t *values)
{
	char rel[128], want[64];

	snprintf(want, sizeof(want), "%" PRIu64 "\n", TREE_MAX_ENERGY_RANGE_UJ);
	for (size_t i = 0; i < ARRAY_SIZE(zone_names); i++) {
		const char *zdir = "intel-rapl:0";
		char sub[64];
		if (i > 0) {
			snprintf(sub, sizeof(sub), "intel-rapl:0/intel-rapl:0:%zu", i - 1);
			zdir = sub;
		}
		_cleanup_free_ char *name = xasprintf("%s\n", zone_names[i]);
		_cleanup_free_ char *val = xasprintf("%" PRIu64 "\n", values[i]);
		snprintf(rel, sizeof(rel), "%s/name", zdir);
		assert_file(dir, rel, name, 0644);
		snprintf(rel, sizeof(rel), "%s/energy_uj", zdir);
		assert_file(dir, rel, val, 0644);
		snprintf(rel, sizeof(rel), "%s/max_energy_range_uj", zdir);
		assert_file(dir, rel, want, 0644);

		struct stat st;
		_cleanup_free_ char *zpath = xasprintf("%s/%s", dir, zdir);
		assert_int_equal(lstat(zpath, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0755);
		if (i > 0) {
			char link[128];
			_cleanup_free_ char *lpath = xasprintf("%s/intel-rapl:0:%zu", dir, i - 1);
			ssize_t n = readlink(lpath, link, sizeof(link) - 1);
			assert_true(n > 0);
			link[n] = '\0';
			snprintf(rel, sizeof(rel), "intel-rapl:0/intel-rapl:0:%zu", i - 1);
			assert_string_equal(link, rel);
		}
	}
}

static void test_layout(void **state)
{
	struct fixture *f = *state;
	struct tree *t;
	uint64_t zero[4] = { 0 }, v[4] = { 1000, 200, 30, 4 };
	struct heartbeat hb = {
		.seq = 7, .interval_ms = 1000, .time_ms = 1234, .is_estimated = true
	};
	struct heartbeat got;

	/* a restrictive umask must not make the files unreadable to qemu */
	mode_t old = umask(077);
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(tree_adopted_uj(t, i), 0);
	assert_layout(f->dir, zero);
	assert_int_equal(tree_write(t, v, &hb), 0);
	umask(old);
	assert_layout(f->dir, v);

	_cleanup_free_ char *hbtext = tu_read(f->dir, POWERCAP_HEARTBEAT_FILE);
	assert_non_null(hbtext);
	assert_int_equal(heartbeat_parse(hbtext, strlen(hbtext), &got), 0);
	assert_int_equal(got.seq, 7);
	assert_int_equal(got.interval_ms, 1000);
	assert_true(got.is_estimated);
	assert_file(f->dir, POWERCAP_HEARTBEAT_FILE, hbtext, 0644);

	/* nothing else at the top: the package, the subzone links, the heartbeat */
	DIR *d = opendir(f->dir);
	int n = 0;
	for (struct dirent *de; (de = readdir(d));)
		if (de->d_name[0] != '.' || streq(de->d_name, POWERCAP_HEARTBEAT_FILE))
			n++;
	closedir(d);
	assert_int_equal(n, 1 + 3 + 1);
	tree_free(t);
}

static void test_powercap_reader(void **state)
{
	struct fixture *f = *state;
	struct tree *t;
	struct powercap_tree *pt;
	uint64_t v[4] = { 5000, 3000, 1000, 700 }, e;
	char err[256];

	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	assert_int_equal(tree_write(t, v, NULL), 0);
	assert_int_equal(powercap_tree_open(f->dir, &pt, err, sizeof(err)), 0);
	assert_int_equal(pt->n_zones, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(pt->zones[i].name, zone_names[i]);
		assert_int_equal(pt->zones[i].parent, i == 0 ? -1 : 0);
		assert_true(pt->zones[i].has_max_energy_range);
		assert_true(pt->zones[i].max_energy_range_uj == TREE_MAX_ENERGY_RANGE_UJ);
		assert_int_equal(powercap_zone_read(pt, &pt->zones[i], &e), 0);
		assert_int_equal(e, v[i]);
	}
	/* later writes are seen through the reader's kept fds */
	v[2] = 123456;
	assert_int_equal(tree_write(t, v, NULL), 0);
	assert_int_equal(powercap_zone_read(pt, &pt->zones[2], &e), 0);
	assert_int_equal(e, 123456);
	powercap_tree_free(pt);
	tree_free(t);
}

/* A reader child hammers energy_uj while the parent writes 10000 increasing values: every read
 * is a whole number, never partial, empty or going backwards. */
static void test_atomic_replace(void **state)
{
	struct fixture *f = *state;
	struct tree *t;
	int stop[2], report[2];
	const char *names[1] = { "package-0" };
	/* on a tmpfs, as in production, where possible */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/atomic", f->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	bool is_mounted = mount("powerd-test", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") == 0;
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);

	assert_int_equal(tree_open(dirfd, names, 1, &t), 0);
	assert_int_equal(pipe2(stop, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(pipe2(report, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t reads = 0, bad = 0, last = 0, v;
		char buf[64], c;
		size_t len;
		char path[PATH_MAX + 32];
		close(stop[1]);
		/* the child owns no heap: valgrind checks it too */
		tree_free(t);
		snprintf(path, sizeof(path), "%s/intel-rapl:0/energy_uj", dir);
		while (read(stop[0], &c, 1) < 0 && errno == EAGAIN) {
			int r = read_file_at(AT_FDCWD, path, buf, sizeof(buf), &len);
			reads++;
			if (r < 0 || parse_u64_content(buf, len, &v) < 0 || len == 0 ||
				buf[len - 1] != '\n' || v < last)
				bad++;
			else
				last = v;
		}
		uint64_t out[2] = { reads, bad };
		_exit(write(report[1], out, sizeof(out)) == sizeof(out) ? 0 : 1);
	}
	close(report[1]);
	close(stop[0]);
	for (uint64_t i = 1; i <= 10000; i++) {
		/* lengths vary, so a torn read would show as a bad number */
		uint64_t v = i * (i % 7 == 0 ? 1000003 : 1);
		uint64_t prev_max = i > 1 ? (i - 1) * 1000003 : 0;
		v = MAX(v, prev_max);
		assert_int_equal(tree_write(t, &v, NULL), 0);
	}
	close(stop[1]);
	uint64_t out[2];
	assert_int_equal(read(report[0], out, sizeof(out)), sizeof(out));
	close(report[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	print_message("reader: %" PRIu64 " reads, %" PRIu64 " bad\n", out[0], out[1]);
	assert_true(out[0] > 0);
	assert_int_equal(out[1], 0);
	tree_free(t);
	close(dirfd);
	if (is_mounted)
		assert_int_equal(umount2(dir, MNT_DETACH), 0);
}

static void test_adopt(void **state)
{
	struct fixture *f = *state;
	struct tree *t;
	uint64_t v[4] = { 11, 22, 33, 44 };

	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	assert_int_equal(tree_write(t, v, NULL), 0);
	tree_free(t);
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(tree_adopted_uj(t, i), v[i]);
	assert_layout(f->dir, v);
	tree_free(t);

	/* garbage or an out-of-range value is not adopted; nor a zone that changed kind */
	tu_write(f->dir, "intel-rapl:0/energy_uj", "12x\n");
	tu_write(f->dir, "intel-rapl:0/intel-rapl:0:0/energy_uj", "");
	tu_writef(f->dir, "intel-rapl:0/intel-rapl:0:1/energy_uj", "%" PRIu64 "\n",
		TREE_MAX_ENERGY_RANGE_UJ);
	tu_write(f->dir, "intel-rapl:0/intel-rapl:0:2/name", "psys\n");
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(tree_adopted_uj(t, i), 0);
	uint64_t zero[4] = { 0 };
	assert_layout(f->dir, zero);
	tree_free(t);
}

static ino_t inode_of(const char *dir, const char *rel)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, rel);
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_ino;
}

/* Opening an intact tree (the hook's --prepare, while the daemon writes the same tree every
 * tick) replaces nothing: rewriting energy_uj with the value it just read could put back an
 * older value than the daemon's, and the two writers' temporaries share a name. */
static void test_reopen_writes_nothing(void **state)
{
	static const char *const files[] = { "intel-rapl:0/name", "intel-rapl:0/energy_uj",
		"intel-rapl:0/max_energy_range_uj", "intel-rapl:0/intel-rapl:0:2/name",
		"intel-rapl:0/intel-rapl:0:2/energy_uj",
		"intel-rapl:0/intel-rapl:0:2/max_energy_range_uj" };
	struct fixture *f = *state;
	struct tree *t, *t2;
	uint64_t v[4] = { 11, 22, 33, 44 };
	ino_t ino[ARRAY_SIZE(files)];

	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	assert_int_equal(tree_write(t, v, NULL), 0);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		ino[i] = inode_of(f->dir, files[i]);
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t2), 0);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		assert_true(inode_of(f->dir, files[i]) == ino[i]);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(tree_adopted_uj(t2, i), v[i]);
	assert_layout(f->dir, v);
	tree_free(t2);

	/* a wrong mode is still repaired */
	_cleanup_free_ char *path = xasprintf("%s/intel-rapl:0/name", f->dir);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t2), 0);
	assert_layout(f->dir, v);
	tree_free(t2);
	tree_free(t);
}

static void test_wrap(void **state)
{
	struct fixture *f = *state;
	struct tree *t;
	const char *names[1] = { "package-0" };
	uint64_t v = TREE_MAX_ENERGY_RANGE_UJ * 3 + 5;

	assert_int_equal(tree_open(f->dirfd, names, 1, &t), 0);
	assert_int_equal(tree_write(t, &v, NULL), 0);
	assert_file(f->dir, "intel-rapl:0/energy_uj", "5\n", 0644);
	v = TREE_MAX_ENERGY_RANGE_UJ - 1;
	assert_int_equal(tree_write(t, &v, NULL), 0);
	_cleanup_free_ char *want = xasprintf("%" PRIu64 "\n", TREE_MAX_ENERGY_RANGE_UJ - 1);
	assert_file(f->dir, "intel-rapl:0/energy_uj", want, 0644);
	tree_free(t);
}

static void plant_symlink(const char *target, const char *dir, const char *rel)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, rel);
	unlink(path);
	assert_int_equal(symlink(target, path), 0);
}

static void test_attacks(void **state)
{
	struct fixture *f = *state;
	struct tree *t;
	uint64_t v[4] = { 1, 2, 3, 4 };
	_cleanup_free_ char *victim = xasprintf("%s/victim", f->outside);
	_cleanup_free_ char *newfile = xasprintf("%s/created", f->outside);

	/* before open: the package a symlink to a directory outside, a subzone link pointing
	 * outside, a FIFO for the heartbeat */
	plant_symlink(f->outside, f->dir, "intel-rapl:0");
	plant_symlink(f->outside, f->dir, "intel-rapl:0:0");
	_cleanup_free_ char *fifo = xasprintf("%s/%s", f->dir, POWERCAP_HEARTBEAT_FILE);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	assert_outside_untouched(f);
	struct heartbeat hb = { .seq = 1, .interval_ms = 1000 };
	assert_int_equal(tree_write(t, v, &hb), 0);
	assert_layout(f->dir, v);
	assert_outside_untouched(f);
	tree_free(t);

	/* a subzone directory swapped for a symlink to the outside, its top-level link for a
	 * directory full of junk */
	_cleanup_free_ char *sub1 = xasprintf("%s/intel-rapl:0/intel-rapl:0:1", f->dir);
	tu_rm_rf(sub1);
	plant_symlink(f->outside, f->dir, "intel-rapl:0/intel-rapl:0:1");
	_cleanup_free_ char *top2 = xasprintf("%s/intel-rapl:0:2", f->dir);
	unlink(top2);
	tu_write(f->dir, "intel-rapl:0:2/energy_uj", "666\n");
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	assert_int_equal(tree_adopted_uj(t, 0), v[0]);
	assert_int_equal(tree_adopted_uj(t, 2), 0);
	assert_int_equal(tree_write(t, v, &hb), 0);
	assert_layout(f->dir, v);
	assert_outside_untouched(f);
	tree_free(t);

	/* a plain file where the package directory belongs */
	_cleanup_free_ char *pkg = xasprintf("%s/intel-rapl:0", f->dir);
	tu_rm_rf(pkg);
	tu_write(f->dir, "intel-rapl:0", "junk\n");
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);

	/* while running: energy_uj a symlink to an outside file, the temporary names symlinks to
	 * an outside file and to a path that does not exist yet, a FIFO and a directory where
	 * files belong */
	plant_symlink(victim, f->dir, "intel-rapl:0/energy_uj");
	plant_symlink(victim, f->dir, "intel-rapl:0/.tmp.energy_uj");
	plant_symlink(newfile, f->dir, "intel-rapl:0/intel-rapl:0:0/.tmp.energy_uj");
	_cleanup_free_ char *f1 = xasprintf("%s/intel-rapl:0/intel-rapl:0:1/energy_uj", f->dir);
	unlink(f1);
	assert_int_equal(mkfifo(f1, 0666), 0);
	_cleanup_free_ char *d2 = xasprintf("%s/intel-rapl:0/intel-rapl:0:2/energy_uj", f->dir);
	unlink(d2);
	assert_int_equal(mkdir(d2, 0755), 0);
	tu_write(f->dir, "intel-rapl:0/intel-rapl:0:2/energy_uj/deeper/file", "x");
	plant_symlink(victim, f->dir, ".tmp." POWERCAP_HEARTBEAT_FILE);
	for (int k = 0; k < 3; k++) {
		v[0] += 10;
		assert_int_equal(tree_write(t, v, &hb), 0);
	}
	assert_layout(f->dir, v);
	assert_outside_untouched(f);
	tree_free(t);
}

/* A guest that deletes its tree (or part of it) gets it back at the next write. */
static void test_repair(void **state)
{
	struct fixture *f = *state;
	struct tree *t;
	uint64_t v[4] = { 100, 20, 30, 40 };
	_cleanup_free_ char *pkg = xasprintf("%s/intel-rapl:0", f->dir);
	_cleanup_free_ char *sub = xasprintf("%s/intel-rapl:0/intel-rapl:0:2", f->dir);

	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	assert_int_equal(tree_write(t, v, NULL), 0);
	tu_rm_rf(pkg);
	v[0] = 101;
	assert_int_equal(tree_write(t, v, NULL), 0);
	assert_layout(f->dir, v);
	tu_rm_rf(sub);
	v[3] = 41;
	assert_int_equal(tree_write(t, v, NULL), 0);
	assert_layout(f->dir, v);
	tree_free(t);
}

/* The real thing: the share is a tmpfs mounted on the domain's directory. */
static void test_tmpfs(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *mnt = xasprintf("%s/vm1", f->dir);
	struct tree *t;
	uint64_t v[4] = { 9, 8, 7, 6 };

	assert_int_equal(mkdir(mnt, 0755), 0);
	if (mount("powerd-test", mnt, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		    "size=64k,mode=0755") < 0) {
		print_message("tmpfs mount not permitted (%s): skipped\n", strerror(errno));
		skip();
	}
	int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(tree_open(fd, zone_names, 4, &t), 0);
	struct heartbeat hb = { .seq = 3, .interval_ms = 500 };
	assert_int_equal(tree_write(t, v, &hb), 0);
	assert_layout(mnt, v);
	tree_free(t);
	assert_int_equal(tree_open(fd, zone_names, 4, &t), 0);
	assert_int_equal(tree_adopted_uj(t, 3), 6);
	tree_free(t);
	close(fd);
	assert_int_equal(umount2(mnt, MNT_DETACH), 0);
}

/* Write the tree as fast as it goes for ms milliseconds: how many writes failed. */
static int hammer(int dirfd, uint64_t ms)
{
	struct tree *t;
	uint64_t total[4] = { 0 }, t0 = now_monotonic_ns();
	int failed = 0;

	if (tree_open(dirfd, zone_names, 4, &t) < 0)
		return 1000;
	while (now_monotonic_ns() - t0 < ms * NSEC_PER_MSEC) {
		total[0] += 1000;
		if (tree_write(t, total, NULL) < 0)
			failed++;
	}
	tree_free(t);
	return failed;
}

/* Issue 10 #4: two processes writing one tree (the daemon and the hook) each keep their own
 * temporaries: before, both used .tmp.<file> and removed each other's, so writes failed. */
static void test_two_writers(void **state)
{
	struct fixture *f = *state;
	struct tree *t;
	int failed;

	/* laid out once, as the hook does under the shares' flock before the daemon adopts it */
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	tree_free(t);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(hammer(f->dirfd, 500) > 0 ? 1 : 0);
	failed = hammer(f->dirfd, 500);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(failed, 0);
}

/* A dead process's temporaries (and the old shared names) are cleaned at open; a live
 * process's are left to it. */
static void test_stale_temporaries(void **state)
{
	struct fixture *f = *state;
	struct tree *t;

	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	tree_free(t);
	pid_t dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);
	_cleanup_free_ char *stale = xasprintf("intel-rapl:0/.tmp.%d.energy_uj", (int)dead);
	_cleanup_free_ char *live = xasprintf("intel-rapl:0/.tmp.%d.energy_uj", (int)getppid());
	tu_write(f->dir, stale, "1\n");
	tu_write(f->dir, live, "2\n");
	tu_write(f->dir, "intel-rapl:0/.tmp.energy_uj", "3\n");
	tu_write(f->dir, ".tmp.umask-probe", "");
	assert_int_equal(tree_open(f->dirfd, zone_names, 4, &t), 0);
	tree_free(t);
	_cleanup_free_ char *a = tu_read(f->dir, stale);
	_cleanup_free_ char *b = tu_read(f->dir, live);
	_cleanup_free_ char *c = tu_read(f->dir, "intel-rapl:0/.tmp.energy_uj");
	_cleanup_free_ char *d = tu_read(f->dir, ".tmp.umask-probe");
	assert_null(a);
	assert_non_null(b);
	assert_null(c);
	assert_null(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_powercap_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmpfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_temporaries, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
