/* The per-domain shares on real tmpfs and bind mounts in a temporary share_dir. The test runs in
 * a mount namespace of its own (when it may), so a crash cannot leave mounts on the machine; every
 * test unmounts what it made anyway and checks it by counting /proc/self/mountinfo. */
#include "tests/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <linux/magic.h>

#include "common/log.h"
#include "common/powercap.h"
#include "hostd/mounts.h"

#define TMPFS_SIZE (UINT64_C(1) << 20)

struct fx {
	char *tmp;
	char *share;
	struct mounts *m;
};

static const char *mount_prefix; /* the current test's directory */

static int count_mounts(void)
{
	assert_non_null(mount_prefix);
	return tu_mount_count_under(mount_prefix);
}

/* The entries of dir, sorted, joined by ","; "." and ".." left out. */
static char *list_dir(const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);
	char *out = xstrdup("");

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (!streq(ents[i]->d_name, ".") && !streq(ents[i]->d_name, "..")) {
			char *o = xasprintf("%s%s%s", out, *out ? "," : "", ents[i]->d_name);
			free(out);
			out = o;
		}
		free(ents[i]);
	}
	free(ents);
	return out;
}

static int group_setup(void **state)
{
	/* Private mount namespace: mounts die with the process even if it crashes. */
	if (unshare(CLONE_NEWNS) == 0)
		/* "none": valgrind checks the type string even where the kernel ignores it. */
		mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL);
	log_set_max_level(LOG_WARNING);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->tmp = tu_mkdtemp("powerd-mounts");
	mount_prefix = f->tmp;
	f->share = xasprintf("%s/share/scaphandre", f->tmp);
	assert_int_equal(mounts_new(f->share, TMPFS_SIZE, &f->m), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	mounts_free(f->m);
	assert_int_equal(count_mounts(), 0);
	mount_prefix = NULL;
	tu_rm_rf(f->tmp);
	free(f->share);
	free(f->tmp);
	free(f);
	return 0;
}

static void test_share_is_readonly_tmpfs(void **state)
{
	struct fx *f = *state;
	enum mount_state ms;
	struct stat st;
	struct statvfs sv;
	struct statfs sf;
	int n0 = count_mounts(), fd;

	assert_int_equal(stat(f->share, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	_cleanup_free_ char *priv = xasprintf("%s/.powerd", f->share);
	assert_int_equal(stat(priv, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	assert_int_equal(mounts_prepare(f->m, "vm1", false, &fd, &ms), 0);
	assert_int_equal(ms, MOUNT_TMPFS);
	assert_int_equal(count_mounts(), n0 + 2);

	_cleanup_free_ char *exp = xasprintf("%s/vm1", f->share);
	_cleanup_free_ char *pdir = xasprintf("%s/.powerd/vm1", f->share);
	assert_int_equal(stat(exp, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(statfs(pdir, &sf), 0);
	assert_int_equal(sf.f_type, TMPFS_MAGIC);
	assert_int_equal((uint64_t)sf.f_blocks * (uint64_t)sf.f_bsize, TMPFS_SIZE);
	assert_int_equal(statvfs(exp, &sv), 0);
	assert_true(sv.f_flag & ST_RDONLY);
	assert_true(sv.f_flag & ST_NOSUID);
	assert_true(sv.f_flag & ST_NODEV);
	assert_true(sv.f_flag & ST_NOEXEC);
	assert_int_equal(statvfs(pdir, &sv), 0);
	assert_false(sv.f_flag & ST_RDONLY);

	/* Written through the private fd, seen through the export; the export refuses writes. */
	_cleanup_close_ int wfd = openat(fd, "energy_uj", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(wfd >= 0);
	assert_int_equal(write_all(wfd, "42\n", 3), 0);
	_cleanup_free_ char *v = tu_read(exp, "energy_uj");
	assert_non_null(v);
	assert_string_equal(v, "42\n");
	_cleanup_free_ char *other = xasprintf("%s/planted", exp);
	assert_int_equal(open(other, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
	assert_int_equal(errno, EROFS);
	_cleanup_free_ char *victim = xasprintf("%s/energy_uj", exp);
	assert_int_equal(open(victim, O_WRONLY | O_TRUNC | O_CLOEXEC), -1);
	assert_int_equal(errno, EROFS);
	assert_int_equal(mkdir(other, 0755), -1);
	assert_int_equal(errno, EROFS);
	close(fd);

	assert_int_equal(mounts_teardown(f->m, "vm1"), 0);
	assert_int_equal(count_mounts(), n0);
	assert_int_equal(access(exp, F_OK), -1);
	assert_int_equal(access(pdir, F_OK), -1);
	/* Tearing down what is not there is fine. */
	assert_int_equal(mounts_teardown(f->m, "vm1"), 0);
	assert_int_equal(count_mounts(), n0);
}

static void test_adopt_after_restart(void **state)
{
	struct fx *f = *state;
	enum mount_state ms;
	int n0 = count_mounts(), fd;

	assert_int_equal(mounts_prepare(f->m, "vm2", false, &fd, &ms), 0);
	tu_write(f->share, ".powerd/vm2/energy_uj", "1234\n");
	close(fd);
	assert_int_equal(count_mounts(), n0 + 2);

	/* Same object again, and a new one as after a restart: no remount, content kept. */
	assert_int_equal(mounts_prepare(f->m, "vm2", false, &fd, &ms), 0);
	close(fd);
	mounts_free(f->m);
	assert_int_equal(mounts_new(f->share, TMPFS_SIZE, &f->m), 0);
	assert_int_equal(mounts_prepare(f->m, "vm2", true, &fd, &ms), 0);
	assert_int_equal(ms, MOUNT_TMPFS);
	assert_int_equal(count_mounts(), n0 + 2);
	char buf[32];
	size_t len;
	assert_int_equal(read_file_at(fd, "energy_uj", buf, sizeof(buf), &len), 0);
	assert_string_equal(buf, "1234\n");
	close(fd);

	assert_int_equal(mounts_teardown(f->m, "vm2"), 0);
	assert_int_equal(count_mounts(), n0);
}

static void test_hostile_names(void **state)
{
	struct fx *f = *state;
	char long_name[301];
	const char *names[] = { "", ".", "..", "a/b", "\x01x", "x\x7f", long_name, ".powerd",
		".hidden", "../escape", "/abs" };
	enum mount_state ms;
	int n0 = count_mounts(), fd = -1;

	memset(long_name, 'a', 300);
	long_name[300] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		assert_false(mounts_name_is_safe(names[i]));
		assert_int_equal(mounts_prepare(f->m, names[i], false, &fd, &ms), -EINVAL);
		assert_int_equal(fd, -1);
		assert_int_equal(mounts_teardown(f->m, names[i]), -EINVAL);
	}
	assert_int_equal(count_mounts(), n0);
	_cleanup_free_ char *top = list_dir(f->share);
	assert_string_equal(top, ".powerd");
	_cleanup_free_ char *priv_path = xasprintf("%s/.powerd", f->share);
	_cleanup_free_ char *priv = list_dir(priv_path);
	assert_string_equal(priv, ".lock");

	/* The bound is 200 bytes exactly. */
	long_name[200] = '\0';
	assert_true(mounts_name_is_safe(long_name));
	long_name[200] = 'a';
	long_name[201] = '\0';
	assert_false(mounts_name_is_safe(long_name));
}

static void test_odd_names(void **state)
{
	struct fx *f = *state;
	/* "lock": a name like any other, not the private directory's lock file */
	const char *names[] = { "my vm", "vm-ü", "vm.with.dots", "a\"b'c", "lock" };
	enum mount_state ms;
	int n0 = count_mounts(), fd;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		assert_true(mounts_name_is_safe(names[i]));
		assert_int_equal(mounts_prepare(f->m, names[i], false, &fd, &ms), 0);
		assert_int_equal(ms, MOUNT_TMPFS);
		close(fd);
		_cleanup_free_ char *exp = xasprintf("%s/%s", f->share, names[i]);
		struct statvfs sv;
		assert_int_equal(statvfs(exp, &sv), 0);
		assert_true(sv.f_flag & ST_RDONLY);
	}
	assert_int_equal(count_mounts(), n0 + 2 * (int)ARRAY_SIZE(names));
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		assert_int_equal(mounts_teardown(f->m, names[i]), 0);
	assert_int_equal(count_mounts(), n0);
	_cleanup_free_ char *top = list_dir(f->share);
	assert_string_equal(top, ".powerd");
}

static void test_running_plain_dir_written_in_place(void **state)
{
	struct fx *f = *state;
	enum mount_state ms;
	int n0 = count_mounts(), fd;

	/* a tree an older tool (Scaphandre's qemu exporter) wrote */
	tu_write(f->share, "legacy/intel-rapl:0/energy_uj", "123\n");
	assert_int_equal(mounts_prepare(f->m, "legacy", true, &fd, &ms), 0);
	assert_int_equal(ms, MOUNT_IN_PLACE);
	assert_int_equal(count_mounts(), n0);
	_cleanup_close_ int wfd =
		openat(fd, "intel-rapl:0/energy_uj", O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(wfd >= 0);
	assert_int_equal(write_all(wfd, "7\n", 2), 0);
	close(fd);
	_cleanup_free_ char *v = tu_read(f->share, "legacy/intel-rapl:0/energy_uj");
	assert_non_null(v);
	assert_string_equal(v, "7\n");

	/* Not ours to remove. */
	assert_int_equal(mounts_teardown(f->m, "legacy"), 0);
	_cleanup_free_ char *old = tu_read(f->share, "legacy/intel-rapl:0/energy_uj");
	assert_non_null(old);
	assert_int_equal(count_mounts(), n0);

	/* The same directory while the domain is stopped: mounted over, then given back. */
	assert_int_equal(mounts_prepare(f->m, "legacy", false, &fd, &ms), 0);
	assert_int_equal(ms, MOUNT_TMPFS);
	close(fd);
	assert_int_equal(count_mounts(), n0 + 2);
	assert_int_equal(mounts_teardown(f->m, "legacy"), 0);
	assert_int_equal(count_mounts(), n0);
	_cleanup_free_ char *old2 = tu_read(f->share, "legacy/intel-rapl:0/energy_uj");
	assert_non_null(old2);
}

static void test_foreign_mount_left_alone(void **state)
{
	struct fx *f = *state;
	enum mount_state ms;
	int n0, fd = -1;

	_cleanup_free_ char *exp = xasprintf("%s/foreign", f->share);
	assert_int_equal(mkdir(exp, 0755), 0);
	assert_int_equal(mount("other", exp, "tmpfs", 0, "size=64k"), 0);
	n0 = count_mounts();
	assert_int_equal(mounts_prepare(f->m, "foreign", false, &fd, &ms), -EBUSY);
	assert_int_equal(count_mounts(), n0);
	assert_int_equal(umount2(exp, MNT_DETACH), 0);

	/* A file where the export should be. */
	tu_write(f->share, "afile", "x");
	assert_int_equal(mounts_prepare(f->m, "afile", false, &fd, &ms), -ENOTDIR);
	assert_int_equal(count_mounts(), n0 - 1);
}

/* Issue 10 #9: share_dir: /var/lib/libvirt and a domain named images. A populated directory
 * that is not a powercap tree is neither mounted over nor written in, running or not. */
static void test_populated_dir_left_alone(void **state)
{
	struct fx *f = *state;
	enum mount_state ms;
	int n0 = count_mounts(), fd = -1;

	tu_write(f->share, "images/disk0.qcow2", "QFI\xfb");
	tu_write(f->share, "images/intel-rapl:0/energy_uj", "1\n");
	for (int running = 0; running < 2; running++) {
		assert_int_equal(mounts_prepare(f->m, "images", running, &fd, &ms), -ENOTEMPTY);
		assert_int_equal(fd, -1);
		assert_int_equal(count_mounts(), n0);
		_cleanup_free_ char *disk = tu_read(f->share, "images/disk0.qcow2");
		assert_non_null(disk);
		_cleanup_free_ char *ls = xasprintf("%s/images", f->share);
		_cleanup_free_ char *entries = list_dir(ls);
		assert_string_equal(entries, "disk0.qcow2,intel-rapl:0");
	}
	/* teardown of what was never made leaves it too */
	assert_int_equal(mounts_teardown(f->m, "images"), 0);
	_cleanup_free_ char *disk = tu_read(f->share, "images/disk0.qcow2");
	assert_non_null(disk);
	/* an empty directory, or one holding a tree and its heartbeat, is a share to be */
	tu_write(f->share, "vm/intel-rapl:0/energy_uj", "5\n");
	tu_write(f->share, "vm/" POWERCAP_HEARTBEAT_FILE, "version 1\n");
	assert_int_equal(mounts_prepare(f->m, "vm", false, &fd, &ms), 0);
	assert_int_equal(ms, MOUNT_TMPFS);
	close(fd);
	assert_int_equal(mounts_teardown(f->m, "vm"), 0);
	assert_int_equal(count_mounts(), n0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_share_is_readonly_tmpfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_after_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_names, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_running_plain_dir_written_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_mount_left_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_populated_dir_left_alone, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
