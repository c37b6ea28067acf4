/* powerd-host's configuration: defaults, every key, errors naming file, line and key, the
 * shipped conf/host.yaml, and the domain filter. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "hostd/host_config.h"

struct fixture {
	char *dir;
	char *path;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->dir = tu_mkdtemp("powerd-hostcfg");
	f->path = xasprintf("%s/host.yaml", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rm_rf(f->dir);
	free(f->dir);
	free(f->path);
	free(f);
	return 0;
}

static void assert_defaults(const struct host_config *c)
{
	assert_string_equal(c->libvirt_uri, "qemu:///system");
	assert_int_equal(c->interval_ms, 1000);
	assert_string_equal(c->share_dir, "/var/lib/libvirt/scaphandre");
	assert_int_equal(c->tmpfs_size, 5 << 20);
	assert_int_equal(c->include.n, 1);
	assert_string_equal(c->include.v[0], "*");
	assert_int_equal(c->exclude.n, 0);
	assert_string_equal(c->powercap_root, "/sys/class/powercap");
	assert_string_equal(c->proc_root, "/proc");
	assert_string_equal(c->cgroup_root, "/sys/fs/cgroup");
	assert_int_equal(c->idle_power, IDLE_POLICY_SHARED);
	assert_int_equal(c->channel, CHANNEL_MODE_AUTO);
	assert_true(c->idle_watts == 0 && c->max_watts == 0);
	assert_string_equal(c->metrics_listen, "127.0.0.1:9731");
	assert_int_equal(c->log_level, LOG_INFO);
	assert_string_equal(c->pve_config_dir, "/etc/pve/local/qemu-server");
	assert_string_equal(c->pve_run_dir, "/run/qemu-server");
	assert_string_equal(c->pve_lock_dir, "/var/lock/qemu-server");
}

static void test_defaults(void **state)
{
	struct fixture *f = *state;
	struct host_config c;
	char err[512];

	host_config_init(&c);
	assert_defaults(&c);
	/* a missing default file means defaults; a missing given file is an error */
	assert_int_equal(host_config_load(f->path, true, &c, err, sizeof(err)), 0);
	assert_defaults(&c);
	assert_int_equal(host_config_load(f->path, false, &c, err, sizeof(err)), -ENOENT);
	assert_defaults(&c);
	/* an empty file: no keys */
	tu_write(f->dir, "host.yaml", "");
	assert_int_equal(host_config_load(f->path, false, &c, err, sizeof(err)), 0);
	assert_defaults(&c);
	host_config_free(&c);
}

static void test_shipped_file(void **state)
{
	struct host_config c;
	char err[512];

	/* conf/host.yaml lists every key with its default */
	host_config_init(&c);
	assert_int_equal(
		host_config_load(POWERD_SOURCE_DIR "/conf/host.yaml", false, &c, err, sizeof(err)),
		0);
	assert_defaults(&c);
	host_config_free(&c);
}

static void test_every_key(void **state)
{
	struct fixture *f = *state;
	struct host_config c;
	char err[512];

	tu_write(f->dir, "host.yaml",
		"libvirt_uri: qemu+ssh://h/system\n"
		"interval: 250ms\n"
		"share_dir: /srv/share\n"
		"tmpfs_size: 64k\n"
		"domains:\n"
		"  include: [\"web-*\", db]\n"
		"  exclude:\n"
		"    - web-test*\n"
		"powercap_root: /tmp/pc\n"
		"proc_root: /tmp/proc\n"
		"cgroup_root: /tmp/cg\n"
		"idle_power: host\n"
		"channel: off\n"
		"estimate: { idle_watts: 40.5, max_watts: 200 }\n"
		"metrics_listen: \"\"\n"
		"log_level: debug\n"
		"proxmox: { config_dir: /tmp/pve/conf, run_dir: /tmp/pve/run, lock_dir: "
		"/tmp/pve/lock }\n");
	host_config_init(&c);
	assert_int_equal(host_config_load(f->path, false, &c, err, sizeof(err)), 0);
	assert_string_equal(c.libvirt_uri, "qemu+ssh://h/system");
	assert_int_equal(c.interval_ms, 250);
	assert_string_equal(c.share_dir, "/srv/share");
	assert_int_equal(c.tmpfs_size, 65536);
	assert_int_equal(c.include.n, 2);
	assert_string_equal(c.include.v[1], "db");
	assert_int_equal(c.exclude.n, 1);
	assert_string_equal(c.powercap_root, "/tmp/pc");
	assert_string_equal(c.proc_root, "/tmp/proc");
	assert_string_equal(c.cgroup_root, "/tmp/cg");
	assert_int_equal(c.idle_power, IDLE_POLICY_HOST);
	assert_int_equal(c.channel, CHANNEL_MODE_OFF);
	assert_true(c.idle_watts == 40.5 && c.max_watts == 200);
	assert_string_equal(c.metrics_listen, "");
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_string_equal(c.pve_config_dir, "/tmp/pve/conf");
	assert_string_equal(c.pve_run_dir, "/tmp/pve/run");
	assert_string_equal(c.pve_lock_dir, "/tmp/pve/lock");

	assert_true(host_config_tracks(&c, "web-1"));
	assert_true(host_config_tracks(&c, "db"));
	assert_false(host_config_tracks(&c, "web-test3"));
	assert_false(host_config_tracks(&c, "dbx"));

	/* every log level maps to its syslog priority */
	static const struct {
		const char *s;
		int level;
	} levels[] = { { "error", LOG_ERR }, { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
		{ "info", LOG_INFO }, { "debug", LOG_DEBUG } };
	for (size_t i = 0; i < ARRAY_SIZE(levels); i++) {
		tu_writef(f->dir, "host.yaml", "log_level: %s\n", levels[i].s);
		assert_int_equal(host_config_load(f->path, false, &c, err, sizeof(err)), 0);
		assert_int_equal(c.log_level, levels[i].level);
	}
	host_config_free(&c);
}

/* A bad file: load fails, err names the file, the line and the key, the old config stays. */
static void assert_bad(struct fixture *f, const char *text, int line, const char *key)
{
	struct host_config c;
	char err[512] = "";
	char where[64];

	tu_write(f->dir, "host.yaml", text);
	host_config_init(&c);
	assert_int_equal(host_config_load(f->path, false, &c, err, sizeof(err)), -EINVAL);
	print_message("  %s\n", err);
	assert_non_null(strstr(err, f->path));
	if (line > 0) {
		snprintf(where, sizeof(where), ":%d:", line);
		assert_non_null(strstr(err, where));
	}
	assert_non_null(strstr(err, key));
	assert_defaults(&c);
	host_config_free(&c);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;

	assert_bad(f, "interval: 99ms\n", 1, "interval");
	assert_bad(f, "log_level: info\ninterval: 2h\n", 2, "interval");
	assert_bad(f, "interval: 5\n", 1, "interval");
	assert_bad(f, "share_dir: relative/dir\n", 1, "share_dir");
	assert_bad(f, "tmpfs_size: 63k\n", 1, "tmpfs_size");
	assert_bad(f, "tmpfs_size: 2g\n", 1, "tmpfs_size");
	assert_bad(f, "powercap_root: sys\n", 1, "powercap_root");
	assert_bad(f, "proc_root: proc\n", 1, "proc_root");
	assert_bad(f, "cgroup_root: cg\n", 1, "cgroup_root");
	assert_bad(f, "idle_power: kepler\n", 1, "idle_power");
	assert_bad(f, "channel: on\n", 1, "channel");
	assert_bad(f, "estimate:\n  idle_watts: 100001\n", 2, "idle_watts");
	assert_bad(f, "estimate:\n  max_watts: -1\n", 2, "max_watts");
	assert_bad(f, "metrics_listen: nonsense\n", 1, "metrics_listen");
	assert_bad(f, "log_level: loud\n", 1, "log_level");
	assert_bad(f, "\nfrobnicate: 1\n", 2, "frobnicate");
	assert_bad(f, "domains:\n  include: web\n  other: []\n", 0, "include");
	/* idle above max is checked across the two keys; the message names both */
	assert_bad(f, "estimate: { idle_watts: 50, max_watts: 10 }\n", 0, "estimate.idle_watts");
	assert_bad(f, "estimate: { idle_watts: 50 }\n", 0, "estimate.max_watts");
}

/* host_config_check's verdict, and what it logged (stderr) into *ret_log. */
static int check_logged(struct fixture *f, const struct host_config *c, const char *qemu_conf,
	bool is_strict, char **ret_log)
{
	_cleanup_free_ char *path = xasprintf("%s/check.log", f->dir);
	int saved = dup(STDERR_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(saved >= 0 && fd >= 0);
	fflush(stderr);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
	int r = host_config_check(c, qemu_conf, is_strict);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	*ret_log = tu_read(f->dir, "check.log");
	assert_non_null(*ret_log);
	return r;
}

/* Issue 10 #9: a share_dir that is / or a system directory (also through a symlink) is refused
 * with a message naming the key and the value. */
static void test_check_system_dir(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = { "/", "/var/lib/libvirt", "/var/lib/libvirt/images",
		"/var/lib/libvirt/", "/var/lib", "/usr", "/etc", "/lib64", "/tmp", "/home",
		"/run" };
	struct host_config c;
	char *log;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_true(host_config_is_system_dir(bad[i]) || bad[i][strlen(bad[i]) - 1] == '/');
		host_config_init(&c);
		free(c.share_dir);
		c.share_dir = xstrdup(bad[i]);
		assert_int_equal(check_logged(f, &c, "/nonexistent", true, &log), -EINVAL);
		assert_non_null(strstr(log, "share_dir"));
		assert_non_null(strstr(log, bad[i]));
		assert_non_null(strstr(log, "system directory"));
		free(log);
		host_config_free(&c);
	}
	assert_false(host_config_is_system_dir("/var/lib/libvirt/scaphandre"));
	assert_false(host_config_is_system_dir("/srv/powerd"));
	/* a symlink to /var/lib/libvirt is /var/lib/libvirt */
	_cleanup_free_ char *link = xasprintf("%s/libvirt-link", f->dir);
	assert_int_equal(symlink("/var/lib/libvirt", link), 0);
	host_config_init(&c);
	free(c.share_dir);
	c.share_dir = xstrdup(link);
	assert_int_equal(check_logged(f, &c, "/nonexistent", true, &log), -EINVAL);
	assert_non_null(strstr(log, link));
	assert_non_null(strstr(log, "(/var/lib/libvirt)"));
	free(log);
	host_config_free(&c);
}

static void test_qemu_conf_value(void **state)
{
	char v[64];
	static const char conf[] = "# user = \"commented\"\n"
				   "#user = \"libvirt-qemu\"\n"
				   "user = \"qemu\"\n"
				   "  group   =  \"kvm\"  \n"
				   "user_ns = \"x\"\n"
				   "user = \"+107\"\n";

	(void)state;
	assert_int_equal(host_qemu_conf_value(conf, strlen(conf), "user", v, sizeof(v)), 0);
	assert_string_equal(v, "+107");
	assert_int_equal(host_qemu_conf_value(conf, strlen(conf), "group", v, sizeof(v)), 0);
	assert_string_equal(v, "kvm");
	assert_int_equal(
		host_qemu_conf_value(conf, strlen(conf), "dynamic_ownership", v, sizeof(v)),
		-ENOENT);
	assert_int_equal(host_qemu_conf_value("user = \"\"\n", 10, "user", v, sizeof(v)), -EINVAL);
}

/* Issue 12 #5: qemu's user must be able to traverse every directory down to share_dir; a 0700
 * parent owned by someone else bars it. On a real directory tree. */
static void test_check_qemu_reach(void **state)
{
	struct fixture *f = *state;
	struct passwd *pw = getpwnam(HOST_QEMU_USER_DEFAULT);
	const uid_t uid = pw ? pw->pw_uid : 64055;
	const gid_t gid = 4242;
	char err[512];
	char *log;

	if (geteuid() != 0)
		skip();
	_cleanup_free_ char *parent = xasprintf("%s/p", f->dir);
	_cleanup_free_ char *share = xasprintf("%s/p/share/not-yet", f->dir);
	tu_write(f->dir, "p/share/.keep", "");
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(chmod(parent, 0700), 0);
	assert_int_equal(host_check_traverse(share, uid, &gid, 1, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, parent));
	assert_non_null(strstr(err, "mode 0700"));
	/* root passes anything; the owner passes its own 0700; a group with g+x passes */
	assert_int_equal(host_check_traverse(share, 0, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(chown(parent, uid, 0), 0);
	assert_int_equal(host_check_traverse(share, uid, &gid, 1, err, sizeof(err)), 0);
	assert_int_equal(chown(parent, 0, gid), 0);
	assert_int_equal(chmod(parent, 0710), 0);
	assert_int_equal(host_check_traverse(share, uid, &gid, 1, err, sizeof(err)), 0);
	assert_int_equal(chmod(parent, 0701), 0);
	assert_int_equal(host_check_traverse(share, uid, &gid, 1, err, sizeof(err)), -EACCES);
	assert_int_equal(chmod(parent, 0711), 0);
	assert_int_equal(host_check_traverse(share, uid, &gid, 1, err, sizeof(err)), 0);

	/* the whole check, with a qemu.conf naming the user: an error for --check-config, a
	 * warning at start-up */
	if (!pw)
		skip();
	assert_int_equal(chown(parent, 0, 0), 0);
	assert_int_equal(chmod(parent, 0700), 0);
	tu_write(f->dir, "qemu.conf", "user = \"" HOST_QEMU_USER_DEFAULT "\"\n");
	_cleanup_free_ char *qconf = xasprintf("%s/qemu.conf", f->dir);
	struct host_config c;
	host_config_init(&c);
	free(c.share_dir);
	c.share_dir = xstrdup(share);
	assert_int_equal(check_logged(f, &c, qconf, true, &log), -EINVAL);
	assert_non_null(strstr(log, "cannot traverse"));
	assert_non_null(strstr(log, parent));
	assert_non_null(strstr(log, "0700"));
	free(log);
	assert_int_equal(check_logged(f, &c, qconf, false, &log), 0);
	assert_non_null(strstr(log, "warning"));
	assert_non_null(strstr(log, "0700"));
	free(log);
	/* a user that does not exist here: skipped with a note */
	tu_write(f->dir, "qemu.conf", "user = \"no-such-user-powerd\"\n");
	assert_int_equal(check_logged(f, &c, qconf, true, &log), 0);
	assert_non_null(strstr(log, "not checked"));
	free(log);
	/* qemu as root reaches anything */
	tu_write(f->dir, "qemu.conf", "user = \"root\"\n");
	assert_int_equal(check_logged(f, &c, qconf, true, &log), 0);
	free(log);
	chmod(parent, 0755);
	host_config_free(&c);
}

/* Issue 10 #2: idle_power: host without estimate.idle_watts is warned about. */
static void test_check_idle_warning(void **state)
{
	struct fixture *f = *state;
	struct host_config c;
	char *log;

	host_config_init(&c);
	free(c.share_dir);
	c.share_dir = xasprintf("%s/share", f->dir);
	c.idle_power = IDLE_POLICY_HOST;
	assert_int_equal(check_logged(f, &c, "/nonexistent", false, &log), 0);
	assert_non_null(strstr(log, "idle_power: host without estimate.idle_watts"));
	free(log);
	c.idle_watts = 40;
	c.max_watts = 200;
	assert_int_equal(check_logged(f, &c, "/nonexistent", false, &log), 0);
	assert_null(strstr(log, "idle_watts"));
	free(log);
	host_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shipped_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_system_dir, setup, teardown),
		cmocka_unit_test(test_qemu_conf_value),
		cmocka_unit_test_setup_teardown(test_check_qemu_reach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_idle_warning, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
