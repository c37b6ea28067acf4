/* libFuzzer target: the idle level file powerd-host keeps in <share_dir>/.powerd/idle-level
 * (hostd/idle_level.c), parsed when the daemon starts. What idle_level_format writes must parse
 * back to the same levels (formatting it again gives the same text). */
#include "common/util.h"
#include "hostd/idle_level.h"
#include "tests/fuzz/fuzz.h"

static const char *const zone_names[] = { "package-0", "package-1", "dram", "psys" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct idle_level *l = idle_level_new(NULL, zone_names, ARRAY_SIZE(zone_names));
	struct idle_level *back = idle_level_new(NULL, zone_names, ARRAY_SIZE(zone_names));
	int r = idle_level_parse(l, (const char *)data, size);

	if (r < 0 && r != -EINVAL && r != -EPROTONOSUPPORT)
		abort();
	_cleanup_free_ char *text = idle_level_format(l);
	if (!text || idle_level_parse(back, text, strlen(text)) != 0)
		abort();
	_cleanup_free_ char *again = idle_level_format(back);
	if (!streq(text, again))
		abort();
	for (size_t z = 0; z < ARRAY_SIZE(zone_names); z++) {
		double w, bw;
		bool has = idle_level_get(l, z, &w);

		if (has != idle_level_get(back, z, &bw) || (has && w != bw) ||
			idle_level_is_learning(l, z) != idle_level_is_learning(back, z))
			abort();
	}
	idle_level_free(back);
	idle_level_free(l);
	return 0;
}
