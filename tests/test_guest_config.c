/* powerd-guest's configuration: defaults, every key, errors that name file, line and key, and the
 * exit status of the real binary with --check-config. */
#include "tests/testutil.h"

#include <sys/wait.h>
#include <syslog.h>

#include "guestd/guest_config.h"

static char *dir;

static int setup(void **state)
{
	dir = tu_mkdtemp("test_guest_config");
	return 0;
}

static int teardown(void **state)
{
	tu_rm_rf(dir);
	free(dir);
	return 0;
}

static int load_text(
	const char *name, const char *text, struct guest_config *c, char *err, size_t err_size)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);

	tu_write(dir, name, text);
	return guest_config_load(path, c, err, err_size);
}

static void assert_defaults(const struct guest_config *c)
{
	assert_string_equal(c->source, "auto");
	assert_string_equal(c->tree_out, "/run/powerd/powercap");
	assert_string_equal(c->sysfs_out, "/run/powerd/sysfs");
	assert_int_equal(c->interval_ms, 2000);
	assert_string_equal(c->listen, "[::]:9732");
	assert_int_equal(c->metric_names, GUEST_NAMES_NATIVE);
	assert_int_equal(c->attribution, GUEST_ATTR_UNITS);
	assert_string_equal(c->proc_root, "/proc");
	assert_string_equal(c->cgroup_root, "/sys/fs/cgroup");
	assert_int_equal(guest_config_log_level(c), LOG_INFO);
}

static void test_defaults(void **state)
{
	struct guest_config c;
	char err[512] = "";

	guest_config_init(&c);
	assert_defaults(&c);
	guest_config_free(&c);

	assert_int_equal(load_text("empty.yaml", "", &c, err, sizeof(err)), 0);
	assert_defaults(&c);
	guest_config_free(&c);
}

/* conf/guest.yaml documents every key with its default: loading it must give the defaults. */
static void test_shipped_file_is_defaults(void **state)
{
	struct guest_config c;
	char err[512] = "";

	assert_int_equal(
		guest_config_load(POWERD_SOURCE_DIR "/conf/guest.yaml", &c, err, sizeof(err)), 0);
	assert_defaults(&c);
	guest_config_free(&c);
}

static void test_every_key(void **state)
{
	struct guest_config c, copy;
	char err[512] = "";

	assert_int_equal(load_text("all.yaml",
				 "source: /sys/class/powercap\n"
				 "interval: 250ms\n"
				 "listen: 127.0.0.1:9999\n"
				 "metric_names: scaphandre\n"
				 "attribution: processes\n"
				 "proc_root: /tmp/proc\n"
				 "cgroup_root: /tmp/cgroup\n"
				 "log_level: debug\n",
				 &c, err, sizeof(err)),
		0);
	assert_string_equal(c.source, "/sys/class/powercap");
	assert_int_equal(c.interval_ms, 250);
	assert_string_equal(c.listen, "127.0.0.1:9999");
	assert_int_equal(c.metric_names, GUEST_NAMES_SCAPHANDRE);
	assert_int_equal(c.attribution, GUEST_ATTR_PROCESSES);
	assert_string_equal(c.proc_root, "/tmp/proc");
	assert_string_equal(c.cgroup_root, "/tmp/cgroup");
	assert_int_equal(guest_config_log_level(&c), LOG_DEBUG);

	guest_config_copy(&copy, &c);
	guest_config_free(&c);
	assert_string_equal(copy.listen, "127.0.0.1:9999");
	assert_int_equal(copy.interval_ms, 250);
	guest_config_free(&copy);

	assert_int_equal(load_text("few.yaml",
				 "attribution: none\nlog_level: warning\n"
				 "interval: 1h\n",
				 &c, err, sizeof(err)),
		0);
	assert_int_equal(c.attribution, GUEST_ATTR_NONE);
	assert_int_equal(guest_config_log_level(&c), LOG_WARNING);
	assert_int_equal(c.interval_ms, 3600 * 1000);
	assert_string_equal(c.source, "auto");
	guest_config_free(&c);

	/* A port device, and no tree_out. */
	assert_int_equal(load_text("port.yaml", "source: /dev/vport1p1\ntree_out: \"\"\n", &c, err,
				 sizeof(err)),
		0);
	assert_string_equal(c.source, "/dev/vport1p1");
	assert_string_equal(c.tree_out, "");
	assert_string_equal(c.sysfs_out, "/run/powerd/sysfs");
	guest_config_free(&c);

	/* No sysfs root, or one elsewhere. */
	assert_int_equal(load_text("nosysfs.yaml", "sysfs_out: \"\"\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c.sysfs_out, "");
	guest_config_free(&c);
	assert_int_equal(
		load_text("sysfs.yaml", "sysfs_out: /run/kepler-sys\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c.sysfs_out, "/run/kepler-sys");
	guest_config_free(&c);
}

/* Each bad file must fail with a message naming the file, the line and the key. */
static void expect_error(const char *name, const char *text, const char *line, const char *key)
{
	struct guest_config c;
	char err[512] = "";
	_cleanup_free_ char *where = xasprintf("%s/%s:%s:", dir, name, line);

	c.source = (char *)"untouched";
	assert_int_equal(load_text(name, text, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(c.source, "untouched");
	if (!strstr(err, where) || !strstr(err, key))
		fail_msg("error for %s is \"%s\", wanted %s and key %s", name, err, where, key);
}

static void test_errors(void **state)
{
	expect_error("unknown.yaml", "source: /x\nsorce: /y\n", "2", "sorce");
	expect_error("short.yaml", "interval: 10ms\n", "1", "interval");
	expect_error("long.yaml", "# comment\ninterval: 2h\n", "2", "interval");
	expect_error("unit.yaml", "interval: 5\n", "1", "interval");
	expect_error("names.yaml", "metric_names: prometheus\n", "1", "metric_names");
	expect_error("attr.yaml", "attribution: cgroups\n", "1", "attribution");
	expect_error("listen.yaml", "listen: nowhere\n", "1", "listen");
	expect_error("level.yaml", "log_level: loud\n", "1", "log_level");
	expect_error("relative.yaml", "source: var/scaphandre\n", "1", "source");
	expect_error("proc.yaml", "proc_root: proc\n", "1", "proc_root");
	expect_error("seq.yaml", "\n\nsource: [a, b]\n", "3", "source");
	expect_error("auto.yaml", "source: automatic\n", "1", "source");
	expect_error("out.yaml", "tree_out: run/powerd\n", "1", "tree_out");
	expect_error("root.yaml", "tree_out: /\n", "1", "tree_out");
	expect_error("sysfs_rel.yaml", "sysfs_out: run/powerd/sysfs\n", "1", "sysfs_out");
	expect_error("sysfs_root.yaml", "tree_out: \"\"\nsysfs_out: /\n", "2", "sysfs_out");
	expect_error("sysfs_sys.yaml", "sysfs_out: /sys\n", "1", "sysfs_out");
	expect_error("dup.yaml", "interval: 1s\ninterval: 2s\n", "2", "interval");
}

static void test_missing_given_file(void **state)
{
	struct guest_config c;
	char err[512] = "";
	_cleanup_free_ char *path = xasprintf("%s/nonexistent.yaml", dir);

	assert_int_equal(guest_config_load(path, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nonexistent.yaml"));
}

static int run_check(const char *config, char **ret_log)
{
	_cleanup_free_ char *log = xasprintf("%s/check.log", dir);
	char *argv[] = { (char *)POWERD_GUEST_BIN, (char *)"-c", (char *)config,
		(char *)"--check-config", NULL };

	unlink(log);
	pid_t pid = tu_spawn(argv, NULL, log);
	int status = tu_wait(pid, 10000);
	assert_true(status != -1);
	assert_true(WIFEXITED(status));
	*ret_log = tu_read(dir, "check.log");
	assert_non_null(*ret_log);
	return WEXITSTATUS(status);
}

static void test_binary_check_config(void **state)
{
	_cleanup_free_ char *bad = xasprintf("%s/bad.yaml", dir);
	_cleanup_free_ char *good = xasprintf("%s/good.yaml", dir);
	_cleanup_free_ char *missing = xasprintf("%s/missing.yaml", dir);
	char *log;

	tu_write(dir, "bad.yaml", "source: /var/scaphandre\nmetric_names: kepler\n");
	assert_int_equal(run_check(bad, &log), 2);
	if (!strstr(log, "bad.yaml:2:") || !strstr(log, "metric_names"))
		fail_msg("stderr of --check-config: %s", log);
	free(log);

	tu_write(dir, "good.yaml", "interval: 500ms\nattribution: none\n");
	assert_int_equal(run_check(good, &log), 0);
	free(log);

	assert_int_equal(run_check(missing, &log), 2);
	assert_non_null(strstr(log, "missing.yaml"));
	free(log);
}

static void test_binary_cli(void **state)
{
	_cleanup_free_ char *log_path = xasprintf("%s/cli.log", dir);
	char *version[] = { (char *)POWERD_GUEST_BIN, (char *)"--version", NULL };
	char *bogus[] = { (char *)POWERD_GUEST_BIN, (char *)"--bogus", NULL };
	int status;

	status = tu_wait(tu_spawn(version, NULL, log_path), 10000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	_cleanup_free_ char *out = tu_read(dir, "cli.log");
	assert_non_null(strstr(out, "powerd-guest "));
	status = tu_wait(tu_spawn(bogus, NULL, log_path), 10000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_shipped_file_is_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_missing_given_file),
		cmocka_unit_test(test_binary_check_config),
		cmocka_unit_test(test_binary_cli),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
