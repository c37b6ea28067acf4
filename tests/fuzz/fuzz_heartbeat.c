/* libFuzzer target: heartbeat_parse (common/powercap.c), the file a guest reads from the share its
 * host writes, and the property that what heartbeat_format writes parses back to the same. */
#include "common/powercap.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct heartbeat hb, back;
	char buf[256];

	if (heartbeat_parse((const char *)data, size, &hb) < 0)
		return 0;
	size_t n = heartbeat_format(&hb, buf, sizeof(buf));
	if (n == 0 || n >= sizeof(buf) || heartbeat_parse(buf, n, &back) < 0)
		abort();
	if (back.seq != hb.seq || back.interval_ms != hb.interval_ms ||
		back.time_ms != hb.time_ms || back.is_estimated != hb.is_estimated ||
		!streq(back.instance, hb.instance))
		abort();
	return 0;
}
