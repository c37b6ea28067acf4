/* libFuzzer target: powerd-guest's YAML config (guestd/guest_config.c over common/config.c),
 * loaded by path as the daemon does, from a memfd; a loaded config holds the schema's bounds. */
#include <syslog.h>

#include "common/util.h"
#include "guestd/guest_config.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

/* What the daemon relies on once a file loaded: every bound of the schema held. */
static void check_loaded(const struct guest_config *c)
{
	if (!c->source || !c->tree_out || !c->listen || !c->proc_root || !c->cgroup_root)
		abort();
	if (c->interval_ms < GUEST_INTERVAL_MIN_MS || c->interval_ms > GUEST_INTERVAL_MAX_MS)
		abort();
	if ((unsigned)c->metric_names > GUEST_NAMES_SCAPHANDRE ||
		(unsigned)c->attribution > GUEST_ATTR_NONE || c->log_level_index < 0 ||
		guest_config_log_level(c) > LOG_DEBUG)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_config c;
	char path[64], err[512];
	int fd = fuzz_memfd(data, size, path, sizeof(path));

	err[0] = '\0';
	if (guest_config_load(path, &c, err, sizeof(err)) == 0) {
		struct guest_config copy;

		check_loaded(&c);
		guest_config_copy(&copy, &c);
		(void)guest_config_log_level(&copy);
		guest_config_free(&copy);
		guest_config_free(&c);
	} else if (!err[0]) {
		abort(); /* a refused config always says why */
	}
	close(fd);
	return 0;
}
