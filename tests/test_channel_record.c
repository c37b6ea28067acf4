/* The energy channel's record (common/channel_record.c): the writer and the strict parser. */
#include "tests/testutil.h"

#include <inttypes.h>
#include <zlib.h>

#include "common/channel_record.h"

#define INSTANCE "0123456789abcdef0123456789abcdef"

static struct channel_record sample(void)
{
	struct channel_record r = {
		.seq = 42,
		.interval_ms = 1000,
		.time_ms = UINT64_C(1764620000000),
		.is_estimated = true,
		.instance = INSTANCE,
		.n_zones = 3,
	};
	strcpy(r.zones[0].name, "package-0");
	r.zones[0].energy_uj = UINT64_C(123456789012);
	strcpy(r.zones[1].name, "core");
	r.zones[1].energy_uj = 0;
	strcpy(r.zones[2].name, "dram");
	r.zones[2].energy_uj = UINT64_MAX;
	return r;
}

/* body (everything before " crc=") with its correct crc and '\n'-less end, into a heap string. */
static char *with_crc(const char *body)
{
	uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)body, (uInt)strlen(body));
	return xasprintf("%s crc=%08lx", body, crc & 0xffffffffUL);
}

static int parse_str(const char *s, struct channel_record *r)
{
	return channel_record_parse(s, strlen(s), r);
}

static void test_round_trip(void **state)
{
	struct channel_record in = sample(), out;
	char buf[CHANNEL_RECORD_MAX];

	size_t n = channel_record_format(&in, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(strlen(buf), n);
	assert_int_equal(buf[n - 1], '\n');
	assert_non_null(
		strstr(buf, "powerd-energy/1 seq=42 instance=" INSTANCE
			    " interval_ms=1000 time_ms=1764620000000 estimated=1"
			    " z.package-0=123456789012 z.core=0 z.dram=18446744073709551615 crc="));
	assert_int_equal(channel_record_parse(buf, n - 1, &out), 0);
	assert_true(out.seq == in.seq && out.interval_ms == in.interval_ms &&
		    out.time_ms == in.time_ms && out.is_estimated);
	assert_string_equal(out.instance, INSTANCE);
	assert_int_equal(out.n_zones, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(out.zones[i].name, in.zones[i].name);
		assert_true(out.zones[i].energy_uj == in.zones[i].energy_uj);
	}
	uint64_t v;
	assert_int_equal(channel_record_zone(&out, "dram", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(channel_record_zone(&out, "uncore", &v), -ENOENT);
}

static void test_format_refuses(void **state)
{
	struct channel_record r = sample();
	char buf[CHANNEL_RECORD_MAX];
	size_t n = channel_record_format(&r, buf, sizeof(buf));

	/* Exactly the room for the line and its NUL, and one byte less. */
	assert_int_equal(channel_record_format(&r, buf, n + 1), n);
	assert_int_equal(channel_record_format(&r, buf, n), 0);

	r = sample();
	strcpy(r.zones[1].name, "bad zone");
	assert_int_equal(channel_record_format(&r, buf, sizeof(buf)), 0);
	r = sample();
	strcpy(r.zones[0].name, "core2"); /* no package-0 */
	assert_int_equal(channel_record_format(&r, buf, sizeof(buf)), 0);
	r = sample();
	strcpy(r.zones[2].name, "core"); /* duplicate */
	assert_int_equal(channel_record_format(&r, buf, sizeof(buf)), 0);
	r = sample();
	r.instance[3] = 'A';
	assert_int_equal(channel_record_format(&r, buf, sizeof(buf)), 0);
	r = sample();
	r.n_zones = 0;
	assert_int_equal(channel_record_format(&r, buf, sizeof(buf)), 0);
	r.n_zones = CHANNEL_ZONES_MAX + 1;
	assert_int_equal(channel_record_format(&r, buf, sizeof(buf)), 0);
}

/* 16 zones of 63-byte names with 20-digit values do not fit in 1024 bytes: dropped, not cut. */
static void test_oversized(void **state)
{
	struct channel_record r = sample(), out;
	char buf[4096];

	r.n_zones = CHANNEL_ZONES_MAX;
	for (size_t i = 1; i < r.n_zones; i++) {
		snprintf(r.zones[i].name, sizeof(r.zones[i].name), "%02u%061d", (unsigned)(i % 100),
			0);
		r.zones[i].energy_uj = UINT64_MAX;
	}
	assert_int_equal(channel_record_format(&r, buf, sizeof(buf)), 0);

	/* A line over the bound is refused by the parser even with a good crc. */
	char body[2048];
	int n = snprintf(body, sizeof(body),
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1 pad=%01000d",
		0);
	assert_true(n > CHANNEL_RECORD_MAX);
	_cleanup_free_ char *line = with_crc(body);
	assert_int_equal(parse_str(line, &out), -EINVAL);

	/* Sixteen zones parse, seventeen do not. */
	char many[2048] = "powerd-energy/1 seq=1 instance=" INSTANCE
			  " interval_ms=1 time_ms=1 estimated=0 z.package-0=1";
	for (int i = 1; i < CHANNEL_ZONES_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), " z.z%d=%d", i, i);
	_cleanup_free_ char *sixteen = with_crc(many);
	assert_int_equal(parse_str(sixteen, &out), 0);
	assert_int_equal(out.n_zones, CHANNEL_ZONES_MAX);
	strcat(many, " z.z99=1");
	_cleanup_free_ char *seventeen = with_crc(many);
	assert_int_equal(parse_str(seventeen, &out), -EINVAL);
}

static void test_truncated(void **state)
{
	struct channel_record r = sample(), out;
	char buf[CHANNEL_RECORD_MAX];
	size_t n = channel_record_format(&r, buf, sizeof(buf));

	/* Every prefix of a good record is refused. */
	for (size_t len = 0; len < n - 1; len++)
		assert_int_equal(channel_record_parse(buf, len, &out), -EINVAL);
	assert_int_equal(channel_record_parse(buf, n - 1, &out), 0);
	/* The '\n' is not part of what the parser is given. */
	assert_int_equal(channel_record_parse(buf, n, &out), -EINVAL);
}

static void test_garbage(void **state)
{
	struct channel_record out;
	static const char *const bodies[] = {
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0", /* no zone */
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.core=1", /* no package-0 */
		"powerd-energy/1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1", /* no seq */
		"powerd-energy/1 seq=1 seq=2 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1", /* duplicate key */
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1 z.package-0=2", /* duplicate
										       zone */
		"powerd-energy/1 seq=1  instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1", /* two spaces */
		"powerd-energy/1 seq=-1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1", /* sign */
		"powerd-energy/1 seq=+1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1",
		"powerd-energy/1 seq=1x instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1",
		"powerd-energy/1 seq=18446744073709551616 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1", /* overflow */
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=", /* empty value */
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=2 z.package-0=1",
		"powerd-energy/1 seq=1 instance=0123456789ABCDEF0123456789abcdef"
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1", /* uppercase hex */
		"powerd-energy/1 seq=1 instance=0123"
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1",
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1 z.bad/zone=1",
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1 z.=1",
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1 crc=00000000", /* crc twice */
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1 novalue",
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1 =x",
		"powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1\tx=1", /* control byte */
		"Powerd-energy/1 seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1",
		"powerd-energy/x seq=1 instance=" INSTANCE
		" interval_ms=1 time_ms=1 estimated=0 z.package-0=1",
		"",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
		_cleanup_free_ char *line = with_crc(bodies[i]);
		if (parse_str(line, &out) != -EINVAL)
			fail_msg("accepted or misjudged: %s", line);
	}
	assert_int_equal(parse_str("", &out), -EINVAL);
	assert_int_equal(parse_str("hello world", &out), -EINVAL);
	assert_int_equal(parse_str("powerd-energy/1", &out), -EINVAL);
	assert_int_equal(parse_str("powerd-energy/1 crc=", &out), -EINVAL);
	const char nul[] = "powerd-energy/1 seq=1\0 crc=00000000";
	assert_int_equal(channel_record_parse(nul, sizeof(nul) - 1, &out), -EINVAL);
}

static void test_future_version(void **state)
{
	struct channel_record out;

	assert_int_equal(parse_str("powerd-energy/2 seq=1 whatever the new format is", &out),
		-EPROTONOSUPPORT);
	assert_int_equal(parse_str("powerd-energy/17", &out), -EPROTONOSUPPORT);
	/* The version is judged before the size: a longer future record is still "upgrade". */
	char big[3000];
	snprintf(big, sizeof(big), "powerd-energy/2 pad=%02900d", 0);
	assert_int_equal(parse_str(big, &out), -EPROTONOSUPPORT);
	assert_int_equal(parse_str("powerd-energy/ seq=1", &out), -EINVAL);
}

static void test_crc_mismatch(void **state)
{
	struct channel_record r = sample(), out;
	char buf[CHANNEL_RECORD_MAX];
	size_t n = channel_record_format(&r, buf, sizeof(buf));

	/* One digit of a value changed: the crc catches it. */
	char *p = strstr(buf, "seq=42");
	p[4] = '3';
	assert_int_equal(channel_record_parse(buf, n - 1, &out), -EINVAL);
	p[4] = '4';
	assert_int_equal(channel_record_parse(buf, n - 1, &out), 0);
	/* An uppercase crc is not the format. */
	char *crc = strstr(buf, " crc=") + 5;
	for (char *c = crc; c < buf + n - 1; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	if (strpbrk(crc, "ABCDEF"))
		assert_int_equal(channel_record_parse(buf, n - 1, &out), -EINVAL);
	/* A short crc. */
	_cleanup_free_ char *line = with_crc("powerd-energy/1 seq=1 instance=" INSTANCE
					     " interval_ms=1 time_ms=1 estimated=0 z.package-0=1");
	size_t len = strlen(line);
	assert_int_equal(channel_record_parse(line, len, &out), 0);
	memmove(line + len - 9, line + len - 8, 9);
	assert_int_equal(channel_record_parse(line, len - 1, &out), -EINVAL);
}

static void test_unknown_key(void **state)
{
	struct channel_record out;
	_cleanup_free_ char *line =
		with_crc("powerd-energy/1 flavour=new seq=7 z.package-0=5 instance=" INSTANCE
			 " interval_ms=250 time_ms=9 future.key=x:y estimated=0 z.dram=3");

	assert_int_equal(parse_str(line, &out), 0);
	assert_int_equal(out.seq, 7);
	assert_int_equal(out.interval_ms, 250);
	assert_false(out.is_estimated);
	assert_int_equal(out.n_zones, 2);
	assert_string_equal(out.zones[1].name, "dram");
	assert_int_equal(out.zones[1].energy_uj, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_format_refuses),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_future_version),
		cmocka_unit_test(test_crc_mismatch),
		cmocka_unit_test(test_unknown_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
