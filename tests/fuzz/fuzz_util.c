/* libFuzzer target: the strict number, duration and size parsers of common/util.c (config values,
 * sysfs and cgroup file contents), with the properties their callers rely on. */
#include <inttypes.h>
#include <math.h>

#include "common/util.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

/* A parsed u64 is the input's digits without leading zeros. */
static void check_u64(const char *s, size_t len)
{
	uint64_t v, w;
	char back[32];
	int r = parse_u64_span(s, len, &v);

	if (r < 0) {
		if (r != -EINVAL && r != -ERANGE)
			abort();
		return;
	}
	size_t skip = 0;
	while (skip + 1 < len && s[skip] == '0')
		skip++;
	int n = snprintf(back, sizeof(back), "%" PRIu64, v);
	if ((size_t)n != len - skip || memcmp(back, s + skip, len - skip) != 0)
		abort();
	if (parse_u64(back, &w) < 0 || w != v)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	_cleanup_free_ char *s = xstrndup(buf, size);
	uint64_t v, w;
	double d;
	int r, r2;

	check_u64(buf, size);
	/* parse_u64_content is parse_u64_span without one final newline */
	r = parse_u64_content(buf, size, &v);
	r2 = parse_u64_span(buf, size && buf[size - 1] == '\n' ? size - 1 : size, &w);
	if (r != r2 || (r == 0 && v != w))
		abort();
	if (strlen(s) == size) {
		r = parse_u64(s, &v);
		r2 = parse_u64_span(buf, size, &w);
		if (r != r2 || (r == 0 && v != w))
			abort();
	}
	if (parse_double(s, &d) == 0 && (!isfinite(d) || d < 0))
		abort();
	parse_duration_ms(s, &v);
	parse_size_bytes(s, &v);
	return 0;
}
