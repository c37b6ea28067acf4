/* common/config.c: a schema of every key type loaded from real files, the exact message of every
 * kind of error (file, line, column, key), defaults kept for absent keys, deep copy and free. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/config.h"

struct tconf {
	char *name;
	uint64_t interval_ms;
	uint64_t tmpfs_size;
	uint64_t count;
	double ratio;
	bool is_verbose;
	int policy;
	char *listen;
	char *root;
	struct config_strv include;
	struct config_strv exclude;
	double idle_w;
	double max_w;
};

static const char *const policy_names[] = { "shared", "host", NULL };

static int check_no_star_only(const void *value, char *msg, size_t msg_size)
{
	const struct config_strv *sv = value;

	for (size_t i = 0; i < sv->n; i++) {
		if (streq(sv->v[i], "**")) {
			snprintf(msg, msg_size, "pattern '**' is not supported");
			return -EINVAL;
		}
	}
	return 0;
}

static const struct config_key domain_keys[] = {
	{ .name = "include",
		.type = CONFIG_STRV,
		.offset = offsetof(struct tconf, include),
		.check = check_no_star_only },
	{ .name = "exclude", .type = CONFIG_STRV, .offset = offsetof(struct tconf, exclude) },
	{ .name = NULL },
};

static const struct config_key estimate_keys[] = {
	{ .name = "idle_watts",
		.type = CONFIG_DOUBLE,
		.offset = offsetof(struct tconf, idle_w),
		.dmin = 0,
		.dmax = 10000 },
	{ .name = "max_watts", .type = CONFIG_DOUBLE, .offset = offsetof(struct tconf, max_w) },
	{ .name = NULL },
};

static const struct config_key schema[] = {
	{ .name = "name", .type = CONFIG_STRING, .offset = offsetof(struct tconf, name) },
	{ .name = "interval",
		.type = CONFIG_DURATION_MS,
		.offset = offsetof(struct tconf, interval_ms),
		.min = 100,
		.max = 3600000 },
	{ .name = "tmpfs_size",
		.type = CONFIG_SIZE,
		.offset = offsetof(struct tconf, tmpfs_size),
		.min = 1 << 20,
		.max = 1 << 30 },
	{ .name = "count",
		.type = CONFIG_U64,
		.offset = offsetof(struct tconf, count),
		.min = 1,
		.max = 1000 },
	{ .name = "ratio", .type = CONFIG_DOUBLE, .offset = offsetof(struct tconf, ratio) },
	{ .name = "verbose", .type = CONFIG_BOOL, .offset = offsetof(struct tconf, is_verbose) },
	{ .name = "idle_power",
		.type = CONFIG_ENUM,
		.offset = offsetof(struct tconf, policy),
		.enum_names = policy_names },
	{ .name = "metrics_listen",
		.type = CONFIG_STRING,
		.offset = offsetof(struct tconf, listen),
		.check = config_check_listen },
	{ .name = "root",
		.type = CONFIG_STRING,
		.offset = offsetof(struct tconf, root),
		.check = config_check_abs_path },
	{ .name = "domains", .type = CONFIG_MAP, .children = domain_keys },
	{ .name = "estimate", .type = CONFIG_MAP, .children = estimate_keys },
	{ .name = NULL },
};

struct fixture {
	char *dir;
	char *path;
	struct tconf conf;
	char err[512];
};

static void conf_defaults(struct tconf *c)
{
	*c = (struct tconf){
		.name = xstrdup("default-name"),
		.interval_ms = 1000,
		.tmpfs_size = 5 << 20,
		.count = 7,
		.ratio = 0.5,
		.policy = 0,
		.listen = xstrdup("127.0.0.1:9731"),
		.root = xstrdup("/proc"),
	};
	c->include.v = xcalloc(1, sizeof(char *));
	c->include.v[0] = xstrdup("*");
	c->include.n = 1;
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->dir = tu_mkdtemp("test_config");
	f->path = xasprintf("%s/conf.yaml", f->dir);
	conf_defaults(&f->conf);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	config_free(schema, &f->conf);
	tu_rm_rf(f->dir);
	free(f->dir);
	free(f->path);
	free(f);
	return 0;
}

static int load_text(struct fixture *f, const char *text)
{
	tu_write(f->dir, "conf.yaml", text);
	return config_load_file(f->path, schema, &f->conf, f->err, sizeof(f->err));
}

/* Load text and expect -EINVAL with exactly "PATH:" + msg. */
static void expect_error(struct fixture *f, const char *text, const char *msg)
{
	_cleanup_free_ char *want = xasprintf("%s:%s", f->path, msg);

	int r = load_text(f, text);
	if (r != -EINVAL || !streq(f->err, want))
		fail_msg("for:\n%s\nwant %d '%s'\ngot  %d '%s'", text, -EINVAL, want, r, f->err);
}

static void test_happy_path(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, "# a comment\n"
				      "name: web-01\n"
				      "interval: 250ms\n"
				      "tmpfs_size: 5m\n"
				      "count: 1000\n"
				      "ratio: 0.25\n"
				      "verbose: yes\n"
				      "idle_power: host\n"
				      "metrics_listen: \"[::1]:9731\"\n"
				      "root: /sys/class/powercap\n"
				      "domains:\n"
				      "  include: [\"vm-*\", 'db-?']\n"
				      "  exclude:\n"
				      "    - vm-test\n"
				      "    - \"vm-tmp*\"\n"
				      "estimate: { idle_watts: 40, max_watts: 250.5 }\n"),
		0);
	assert_string_equal(f->err, "");
	assert_string_equal(f->conf.name, "web-01");
	assert_int_equal(f->conf.interval_ms, 250);
	assert_int_equal(f->conf.tmpfs_size, 5 << 20);
	assert_int_equal(f->conf.count, 1000);
	assert_true(f->conf.ratio == 0.25);
	assert_true(f->conf.is_verbose);
	assert_int_equal(f->conf.policy, 1);
	assert_string_equal(f->conf.listen, "[::1]:9731");
	assert_string_equal(f->conf.root, "/sys/class/powercap");
	assert_int_equal(f->conf.include.n, 2);
	assert_string_equal(f->conf.include.v[0], "vm-*");
	assert_string_equal(f->conf.include.v[1], "db-?");
	assert_int_equal(f->conf.exclude.n, 2);
	assert_string_equal(f->conf.exclude.v[0], "vm-test");
	assert_string_equal(f->conf.exclude.v[1], "vm-tmp*");
	assert_true(f->conf.idle_w == 40);
	assert_true(f->conf.max_w == 250.5);

	/* Deep copy: the copy survives the original being freed. */
	struct tconf copy;
	config_copy(schema, &copy, &f->conf);
	config_free(schema, &f->conf);
	assert_null(f->conf.name);
	assert_int_equal(f->conf.include.n, 0);
	assert_string_equal(copy.name, "web-01");
	assert_string_equal(copy.exclude.v[1], "vm-tmp*");
	assert_int_equal(copy.interval_ms, 250);
	assert_true(copy.max_w == 250.5);
	assert_int_equal(copy.policy, 1);
	f->conf = copy;
}

static void test_defaults_kept(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, "interval: 2s\ndomains: { exclude: [] }\n"), 0);
	assert_int_equal(f->conf.interval_ms, 2000);
	assert_string_equal(f->conf.name, "default-name");
	assert_int_equal(f->conf.tmpfs_size, 5 << 20);
	assert_int_equal(f->conf.count, 7);
	assert_string_equal(f->conf.listen, "127.0.0.1:9731");
	assert_int_equal(f->conf.include.n, 1);
	assert_string_equal(f->conf.include.v[0], "*");
	assert_int_equal(f->conf.exclude.n, 0);

	/* Empty documents of every kind mean no keys. */
	const char *empties[] = { "", "# only a comment\n\n# another\n", "---\n", "---\n...\n",
		"\n\n" };
	for (size_t i = 0; i < ARRAY_SIZE(empties); i++) {
		assert_int_equal(load_text(f, empties[i]), 0);
		assert_int_equal(f->conf.interval_ms, 2000);
		assert_string_equal(f->conf.name, "default-name");
	}

	/* A quoted empty string is a value (no endpoint), unlike a bare empty value. */
	assert_int_equal(load_text(f, "metrics_listen: \"\"\n"), 0);
	assert_string_equal(f->conf.listen, "");
	assert_int_equal(load_text(f, "metrics_listen: ''\nname: \"\"\n"), 0);
	assert_string_equal(f->conf.listen, "");
	assert_string_equal(f->conf.name, "");
	/* Strings that look like other types stay strings; a quoted "null" is not null. */
	assert_int_equal(load_text(f, "name: 'null'\n"), 0);
	assert_string_equal(f->conf.name, "null");
	assert_int_equal(load_text(f, "name: 12\nverbose: off\ninterval: 1h\n"), 0);
	assert_string_equal(f->conf.name, "12");
	assert_false(f->conf.is_verbose);
	assert_int_equal(f->conf.interval_ms, 3600000);

	/* Same result from memory, with a name for the messages. */
	const char *text = "count: 3\n";
	assert_int_equal(config_load_buffer("mem.yaml", text, strlen(text), schema, &f->conf,
				 f->err, sizeof(f->err)),
		0);
	assert_int_equal(f->conf.count, 3);
	assert_int_equal(config_load_buffer("mem.yaml", "count: 0\n", 9, schema, &f->conf, f->err,
				 sizeof(f->err)),
		-EINVAL);
	assert_string_equal(f->err, "mem.yaml:1:8: count: 0 is out of range (1..1000)");
}

static void test_syntax_errors(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "interval: 1s\ndomains: { include: [a, b }\n",
		"2:27: YAML syntax error: did not find expected ',' or ']'");
	expect_error(f, "name: x\n  bad: indent\n",
		"2:6: YAML syntax error: mapping values are not allowed in this context");
	expect_error(f, "name: \"unterminated\n",
		"2:1: YAML syntax error: found unexpected end of stream");
	expect_error(f, "name:\tx\n\tcount: 1\n",
		"2:1: YAML syntax error: found a tab character that violates indentation");
	expect_error(f, "count: 1\nname: \"é\xff\"\n",
		"2:9: YAML syntax error: invalid leading UTF-8 octet");
	/* A syntax error after the first document is still an error. */
	expect_error(f, "name: a\n...\n]\n",
		"3:1: YAML syntax error: did not find expected <document start>");
}

static void test_key_errors(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "interval: 1s\nfoo: 1\n", "2:1: unknown key 'foo'");
	expect_error(f, "domains:\n  include: [a]\n  foo: x\n", "3:3: unknown key 'domains.foo'");
	expect_error(
		f, "estimate: { idle_watts: 1, bogus: 2 }\n", "1:28: unknown key 'estimate.bogus'");
	expect_error(f, "interval: 1s\ncount: 2\ninterval: 2s\n", "3:1: duplicate key 'interval'");
	expect_error(f, "domains:\n  exclude: []\n  exclude: [a]\n",
		"3:3: duplicate key 'domains.exclude'");
	expect_error(f, "domains: {}\ndomains: {}\n", "2:1: duplicate key 'domains'");
	expect_error(f, "? [a, b]\n: 1\n", "1:3: expected a key, got a list");
	/* Keys are case sensitive. */
	expect_error(f, "Interval: 1s\n", "1:1: unknown key 'Interval'");
}

static void test_type_errors(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "interval:\n  a: 1\n", "2:3: interval: expected a scalar, got a mapping");
	expect_error(f, "name: [a]\n", "1:7: name: expected a scalar, got a list");
	expect_error(f, "domains: { include: web }\n",
		"1:21: domains.include: expected a list of strings");
	expect_error(f, "domains:\n  include:\n    - a\n    - [b]\n",
		"4:7: domains.include: expected a list of strings");
	expect_error(f, "domains:\n  include:\n    - a\n    - { x: 1 }\n",
		"4:7: domains.include: expected a list of strings");
	expect_error(f, "domains:\n  include: [a, ~]\n",
		"2:16: domains.include: expected a list of strings");
	expect_error(f, "domains: [a]\n", "1:10: domains: expected a mapping, got a list");
	expect_error(f, "domains: x\n", "1:10: domains: expected a mapping, got a scalar");
	/* Null in all its spellings. */
	expect_error(f, "interval: ~\n", "1:11: interval: expected a value");
	expect_error(f, "name: null\n", "1:7: name: expected a value");
	expect_error(f, "count:\nname: x\n", "1:7: count: expected a value");
	expect_error(f, "domains:\n", "1:9: domains: expected a value");
	expect_error(f, "domains:\n  include:\n", "2:11: domains.include: expected a value");
	expect_error(f, "name: \"a\\0b\"\n", "1:7: name: the value contains a NUL byte");
}

static void test_value_errors(void **state)
{
	struct fixture *f = *state;

	expect_error(
		f, "interval: 2x\n", "1:11: interval: bad duration '2x' (use e.g. 250ms, 2s, 1m)");
	expect_error(
		f, "interval: 2\n", "1:11: interval: bad duration '2' (use e.g. 250ms, 2s, 1m)");
	expect_error(f, "interval: 10ms\n", "1:11: interval: 10ms is out of range (100ms..1h)");
	expect_error(f, "interval: 2h\n", "1:11: interval: 2h is out of range (100ms..1h)");
	expect_error(f, "tmpfs_size: 5q\n",
		"1:13: tmpfs_size: bad size '5q' (use e.g. 4096, 512k, 5m, 1g)");
	expect_error(f, "tmpfs_size: 4096\n", "1:13: tmpfs_size: 4096 is out of range (1m..1g)");
	expect_error(
		f, "count: -1\n", "1:8: count: bad number '-1' (expected a non-negative integer)");
	expect_error(f, "count: 99999999999999999999\n",
		"1:8: count: bad number '99999999999999999999' (expected a non-negative integer)");
	expect_error(f, "count: 1001\n", "1:8: count: 1001 is out of range (1..1000)");
	expect_error(f, "ratio: abc\n", "1:8: ratio: bad number 'abc' (expected e.g. 12 or 7.5)");
	expect_error(f, "ratio: 1.5x\n", "1:8: ratio: bad number '1.5x' (expected e.g. 12 or 7.5)");
	expect_error(f, "estimate:\n  idle_watts: 20000\n",
		"2:15: estimate.idle_watts: 20000 is out of range (0..10000)");
	expect_error(f, "verbose: maybe\n",
		"1:10: verbose: 'maybe' is not a boolean (use true or false)");
	expect_error(f, "idle_power: foo\n", "1:13: idle_power: 'foo' is not one of: shared, host");
	expect_error(f, "metrics_listen: 9732\n",
		"1:17: metrics_listen: '9732' is not host:port (e.g. 127.0.0.1:9731, [::]:9732, "
		":9732)");
	expect_error(f, "metrics_listen: \"host:99999\"\n",
		"1:17: metrics_listen: 'host:99999': port 99999 is out of range (0..65535)");
	expect_error(
		f, "root: relative/dir\n", "1:7: root: 'relative/dir' is not an absolute path");
	expect_error(f, "domains: { include: ['**'] }\n",
		"1:21: domains.include: pattern '**' is not supported");
}

static void test_structure_errors(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "interval: &x 1s\n", "1:11: YAML anchors are not allowed");
	expect_error(f, "name: &x abc\ncount: *x\n", "1:7: YAML anchors are not allowed");
	expect_error(f, "domains:\n  include: &l [a]\n", "2:12: YAML anchors are not allowed");
	/* The classic billion laughs stops at the first anchor, long before any expansion. */
	expect_error(f,
		"domains:\n  include: &a [lol, lol, lol]\n  exclude: &b [*a, *a, *a]\n"
		"estimate: [*b, *b, *b]\n",
		"2:12: YAML anchors are not allowed");
	expect_error(f, "name: *x\n", "1:7: YAML aliases are not allowed");
	expect_error(f, "name: a\n---\nname: b\n", "2:1: only one YAML document is allowed");
	expect_error(
		f, "- a\n- b\n", "1:1: expected a mapping of keys at the top level, got a list");
	expect_error(f, "just a string\n",
		"1:1: expected a mapping of keys at the top level, got a scalar");
}

static void test_file_errors(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *missing = xasprintf("%s/missing.yaml", f->dir);
	_cleanup_free_ char *want = NULL;

	assert_int_equal(
		config_load_file(missing, schema, &f->conf, f->err, sizeof(f->err)), -ENOENT);
	want = xasprintf("%s: cannot open: No such file or directory", missing);
	assert_string_equal(f->err, want);
	free(want);
	want = NULL;

	assert_int_equal(
		config_load_file(f->dir, schema, &f->conf, f->err, sizeof(f->err)), -EISDIR);
	want = xasprintf("%s: cannot read: Is a directory", f->dir);
	assert_string_equal(f->err, want);
	free(want);
	want = NULL;

	/* Just over 1 MiB of valid YAML comments is still refused. */
	size_t big_len = (1 << 20) + 1;
	_cleanup_free_ char *big = xmalloc(big_len + 1);
	memset(big, '#', big_len);
	for (size_t i = 80; i < big_len; i += 81)
		big[i] = '\n';
	big[big_len] = '\0';
	assert_int_equal(load_text(f, big), -EFBIG);
	want = xasprintf("%s: the file is larger than 1 MiB", f->path);
	assert_string_equal(f->err, want);
	free(want);
	want = NULL;
	/* Exactly 1 MiB is fine. */
	big[big_len - 1] = '\0';
	assert_int_equal(load_text(f, big), 0);
}

/* A file the caller may not read, from an unprivileged child (root reads anything). The child
 * owns no heap memory, so that it exits clean under valgrind. */
static void test_unreadable(void **state)
{
	char dir[256], path[300], want[400];
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/test_config_unreadable.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/secret.yaml", dir);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, "count: 5\n", 9), 0);
	/* Without root, the owner is kept out by the mode alone. */
	if (geteuid() != 0)
		assert_int_equal(fchmod(fd, 0), 0);
	snprintf(want, sizeof(want), "%s: cannot open: Permission denied", path);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tconf c = { 0 };
		char err[512];

		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(3);
		if (geteuid() == 0)
			_exit(3);
		int r = config_load_file(path, schema, &c, err, sizeof(err));
		_exit(r == -EACCES && streq(err, want) && c.count == 0 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(path);
	rmdir(dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* Mangled versions of a valid file: every outcome is success or an error that names the file
 * and a position; none crashes or leaks (ASan and valgrind runs). */
static void test_mangled(void **state)
{
	struct fixture *f = *state;
	static const char base[] = "name: web\ninterval: 250ms\ntmpfs_size: 5m\ncount: 3\n"
				   "ratio: 0.5\nverbose: on\nidle_power: host\n"
				   "metrics_listen: \"[::1]:80\"\nroot: /x\n"
				   "domains:\n  include: [a, \"b\"]\n  exclude:\n    - c\n"
				   "estimate: { idle_watts: 1, max_watts: 2 }\n";
	static const char specials[] = "&*!|>'\"%@`#:-[]{},?~\n\t \\\xff\x01";
	uint64_t seed = 42;
	char buf[sizeof(base) + 16];
	size_t n_ok = 0;

	for (int i = 0; i < 3000; i++) {
		size_t len = sizeof(base) - 1;

		memcpy(buf, base, sizeof(base));
		for (int k = 0, n = 1 + (int)(rng_next(&seed) % 3); k < n && len > 0; k++) {
			size_t pos = rng_next(&seed) % len;
			uint64_t what = rng_next(&seed) % 3;
			char c = specials[rng_next(&seed) % (sizeof(specials) - 1)];

			if (what == 0) {
				buf[pos] = c;
			} else if (what == 1 && len + 1 < sizeof(buf)) {
				memmove(buf + pos + 1, buf + pos, len - pos);
				buf[pos] = c;
				len++;
			} else {
				len = pos; /* truncated */
			}
		}
		char err[512] = "";
		int r = config_load_buffer("m.yaml", buf, len, schema, &f->conf, err, sizeof(err));
		if (r == 0) {
			n_ok++;
			continue;
		}
		if (r != -EINVAL || !startswith(err, "m.yaml:"))
			fail_msg("%d '%s' for:\n%.*s", r, err, (int)len, buf);
	}
	/* Some mutations keep the file valid (a changed comment-free value, a truncation at a
	 * line end); most do not. Both sides were exercised. */
	assert_true(n_ok > 0);
	assert_true(n_ok < 3000);
}

static void test_listen(void **state)
{
	char host[64], msg[256];
	uint16_t port;

	assert_int_equal(config_split_listen("127.0.0.1:9731", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 9731);
	assert_int_equal(config_split_listen("[::]:9732", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::");
	assert_int_equal(port, 9732);
	assert_int_equal(config_split_listen("[fe80::1%eth0]:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "fe80::1%eth0");
	assert_int_equal(config_split_listen(":9732", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 9732);
	assert_int_equal(config_split_listen("localhost:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "localhost");
	assert_int_equal(port, 0);
	assert_int_equal(config_split_listen("h:65535", host, sizeof(host), &port), 0);
	assert_int_equal(port, 65535);

	const char *bad[] = { "", "9732", "host:", "host:99999", "host:65536", "[::1", "[::1]",
		"[::1]9732", "::1:80", "host:-1", "host:+1", "host:8x", "[]:80", "a b:80" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (config_split_listen(bad[i], host, sizeof(host), &port) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
		msg[0] = '\0';
		if (bad[i][0] && config_check_listen(bad[i], msg, sizeof(msg)) != -EINVAL)
			fail_msg("check accepted '%s'", bad[i]);
		if (bad[i][0])
			assert_true(strstr(msg, bad[i]) != NULL);
	}
	char tiny[4];
	assert_int_equal(config_split_listen("abcdef:1", tiny, sizeof(tiny), &port), -EINVAL);

	assert_int_equal(config_check_listen("", msg, sizeof(msg)), 0);
	assert_int_equal(config_check_listen(":1", msg, sizeof(msg)), 0);
	assert_int_equal(config_check_listen("[::1", msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, "'[::1': missing ']' after the IPv6 address");
	assert_int_equal(config_check_listen("host:", msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, "'host:': missing port");

	assert_int_equal(config_check_abs_path("/var/scaphandre", msg, sizeof(msg)), 0);
	assert_int_equal(config_check_abs_path("var", msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, "'var' is not an absolute path");
	assert_int_equal(config_check_abs_path("", msg, sizeof(msg)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_happy_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_value_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_structure_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mangled, setup, teardown),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_listen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
