/* common/prom.c: number formatting that round-trips, escaping, and expositions that promtool
 * accepts. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <sys/wait.h>

#include "common/prom.h"

static void assert_round_trip(double v)
{
	char out[32];
	char *end;

	prom_format_double(v, out);
	assert_true(strlen(out) < 32);
	double back = strtod(out, &end);
	assert_true(*end == '\0');
	if (memcmp(&back, &v, sizeof(v)) != 0)
		fail_msg("%.17g printed as '%s' parses back as %.17g", v, out, back);
}

static void test_format_edges(void **state)
{
	char out[32];

	prom_format_double(0, out);
	assert_string_equal(out, "0");
	prom_format_double(-0.0, out);
	assert_string_equal(out, "-0");
	prom_format_double(1, out);
	assert_string_equal(out, "1");
	prom_format_double(-42, out);
	assert_string_equal(out, "-42");
	prom_format_double(0.1, out);
	assert_string_equal(out, "0.1");
	prom_format_double(1.5e15, out);
	assert_string_equal(out, "1500000000000000");
	prom_format_double(9007199254740991.0, out);
	assert_string_equal(out, "9007199254740991");
	prom_format_double(1e-300, out);
	assert_string_equal(out, "1e-300");
	prom_format_double(NAN, out);
	assert_string_equal(out, "NaN");
	prom_format_double(INFINITY, out);
	assert_string_equal(out, "+Inf");
	prom_format_double(-INFINITY, out);
	assert_string_equal(out, "-Inf");
	prom_format_double(123456.789, out);
	assert_string_equal(out, "123456.789");

	const double edges[] = { 0, -0.0, 1e-300, 9007199254740992.0, 9007199254740993.0 * 2,
		1.5e15, DBL_MAX, -DBL_MAX, DBL_MIN, DBL_TRUE_MIN, 0.1, 1.0 / 3, 2.0 / 3, 1e21,
		123456789012345678.0, 5e-324 };
	for (size_t i = 0; i < ARRAY_SIZE(edges); i++)
		assert_round_trip(edges[i]);
}

/* xorshift64*: a fixed seed keeps a failure reproducible. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static void test_format_round_trip_random(void **state)
{
	uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);
	size_t tested = 0;

	while (tested < 100000) {
		uint64_t bits = rng_next(&seed);
		double v;

		memcpy(&v, &bits, sizeof(v));
		if (!isfinite(v))
			continue;
		assert_round_trip(v);
		tested++;
	}
	/* Large integers and plain decimals, which are what metrics hold. */
	for (int i = 0; i < 10000; i++) {
		double v = (double)(rng_next(&seed) >> 11);
		assert_round_trip(v);
		assert_round_trip((double)(rng_next(&seed) % 100000000) / 1000.0);
	}
}

static void test_integers_plain(void **state)
{
	char out[32];

	/* Below 2^53 integers never get an exponent or a fraction. */
	for (double v = 1; v < 9007199254740992.0; v *= 3) {
		prom_format_double(v, out);
		assert_null(strpbrk(out, "e.E"));
		prom_format_double(-v, out);
		assert_null(strpbrk(out, "e.E"));
	}
}

static void test_escape(void **state)
{
	struct strbuf b = { 0 };

	prom_escape_label_value(&b, "plain");
	assert_string_equal(b.buf, "plain");
	strbuf_reset(&b);
	prom_escape_label_value(&b, "a\\b\"c\nd");
	assert_string_equal(b.buf, "a\\\\b\\\"c\\nd");
	strbuf_reset(&b);
	prom_escape_label_value(&b, "\"\"\n\\");
	assert_string_equal(b.buf, "\\\"\\\"\\n\\\\");
	strbuf_reset(&b);
	prom_escape_label_value(&b, "");
	assert_string_equal(b.buf ? b.buf : "", "");
	strbuf_reset(&b);

	prom_family(&b, "x_total", PROM_COUNTER, "line1\nback\\slash \"quoted\"");
	assert_string_equal(b.buf, "# HELP x_total line1\\nback\\\\slash \"quoted\"\n"
				   "# TYPE x_total counter\n");
	strbuf_reset(&b);

	const char *labels[] = { "zone", "package-0", "unit", "a\"b\\c\nd", NULL };
	prom_sample(&b, "m", labels, 1.5);
	prom_sample(&b, "n", NULL, 7);
	const char *empty[] = { NULL };
	prom_sample(&b, "o", empty, -INFINITY);
	assert_string_equal(b.buf, "m{zone=\"package-0\",unit=\"a\\\"b\\\\c\\nd\"} 1.5\n"
				   "n 7\n"
				   "o -Inf\n");
	strbuf_done(&b);
}

/* Feed text to promtool check metrics on stdin; returns its exit status. */
static int promtool_check(const char *text)
{
	int in[2];

	if (access("/usr/bin/promtool", X_OK) < 0)
		return -ENOENT;
	assert_int_equal(pipe(in), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(in[1]);
		dup2(in[0], STDIN_FILENO);
		close(in[0]);
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0) {
			dup2(devnull, STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
		}
		execl("/usr/bin/promtool", "promtool", "check", "metrics", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	assert_int_equal(write_all(in[1], text, strlen(text)), 0);
	close(in[1]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_promtool(void **state)
{
	struct strbuf b = { 0 };
	const char *zones[] = { "package-0", "core", "dram", "we\"ird\\zone\nname" };

	prom_family(&b, "powerd_energy_joules_total", PROM_COUNTER,
		"Energy of the VM per zone, in joules.\nSecond line \\ with a backslash.");
	for (size_t i = 0; i < ARRAY_SIZE(zones); i++) {
		const char *labels[] = { "zone", zones[i], NULL };
		prom_sample(
			&b, "powerd_energy_joules_total", labels, 12345.678901 * (double)(i + 1));
	}
	prom_family(&b, "powerd_power_watts", PROM_GAUGE, "Average power over the last interval.");
	for (size_t i = 0; i < ARRAY_SIZE(zones); i++) {
		const char *labels[] = { "zone", zones[i], NULL };
		prom_sample(&b, "powerd_power_watts", labels, i == 3 ? NAN : 0.1 * (double)i);
	}
	prom_family(&b, "powerd_source_up", PROM_GAUGE, "1 while the tree is readable.");
	prom_sample(&b, "powerd_source_up", NULL, 1);
	prom_family(&b, "powerd_build_info", PROM_GAUGE, "Build information.");
	const char *bl[] = { "version", "0.1.0", NULL };
	prom_sample(&b, "powerd_build_info", bl, 1);
	prom_family(&b, "powerd_extreme", PROM_UNTYPED, "Extreme values.");
	const double extremes[] = { DBL_MAX, -DBL_MAX, DBL_MIN, 1e-300, INFINITY, -INFINITY, -0.0 };
	for (size_t i = 0; i < ARRAY_SIZE(extremes); i++) {
		char idx[8];
		snprintf(idx, sizeof(idx), "%zu", i);
		const char *labels[] = { "i", idx, NULL };
		prom_sample(&b, "powerd_extreme", labels, extremes[i]);
	}

	int r = promtool_check(b.buf);
	if (r == -ENOENT)
		skip();
	if (r != 0)
		fail_msg("promtool rejected:\n%s", b.buf);

	/* The check can fail: an unescaped quote in a label value and a sample without a value. */
	assert_int_not_equal(promtool_check("# HELP x_total X.\n# TYPE x_total counter\n"
					    "x_total{zone=\"a\"b\"} 1\n"),
		0);
	assert_int_not_equal(promtool_check("# HELP y Y.\n# TYPE y gauge\ny{a=\"b\"}\n"), 0);
	strbuf_done(&b);
}

/* Label values are UTF-8 for Prometheus, which rejects a whole scrape over one invalid value: a
 * comm the kernel cut to 15 bytes inside a character, or any bytes a process chose. Each invalid
 * byte becomes U+FFFD; valid text is kept. */
static void test_escape_invalid_utf8(void **state)
{
	struct strbuf b = { 0 };

	prom_escape_label_value(&b, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x8b");
	assert_string_equal(b.buf, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x8b");
	strbuf_reset(&b);
	prom_escape_label_value(&b, "caf\xc3");
	assert_string_equal(b.buf, "caf\xef\xbf\xbd");
	strbuf_reset(&b);
	/* stray continuation, overlong '/', surrogate, above U+10FFFF, 0xff */
	prom_escape_label_value(&b, "\x80|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xff\"");
	assert_string_equal(b.buf, "\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
				   "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
				   "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
				   "\xef\xbf\xbd\\\"");
	strbuf_reset(&b);

	prom_family(&b, "powerd_process_power_watts", PROM_GAUGE, "Power per process.");
	const char *labels[] = { "pid", "1", "comm", "donn\xc3\xa9-export\xc3", NULL };
	prom_sample(&b, "powerd_process_power_watts", labels, 1);
	int r = promtool_check(b.buf);
	if (r != -ENOENT && r != 0)
		fail_msg("promtool rejected:\n%s", b.buf);
	strbuf_done(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_edges),
		cmocka_unit_test(test_format_round_trip_random),
		cmocka_unit_test(test_integers_plain),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_promtool),
		cmocka_unit_test(test_escape_invalid_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
