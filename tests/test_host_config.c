/* powerd-host's configuration: defaults, every key, errors naming file, line and key, the
 * shipped conf/host.yaml, and the domain filter. */
#include "tests/testutil.h"

#include <syslog.h>

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
		"log_level: debug\n");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shipped_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
