/* libFuzzer target: powercap_tree_open (common/powercap.c) on a small fixture tree the input
 * describes (zone directories with name, energy_uj, max_energy_range_uj, and a heartbeat; see
 * fuzz.h for the format), strict and lenient (Scaphandre's qemu layout), then every zone read
 * and the heartbeat, as a reader of a per-domain tree or of sysfs does. No fd may outlive the tree.
 */
#include "common/powercap.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void check_tree(const struct powercap_tree *t)
{
	if (t->n_zones == 0 || t->n_zones > POWERCAP_ZONES_MAX)
		abort();
	for (size_t i = 0; i < t->n_zones; i++) {
		const struct powercap_zone *z = &t->zones[i];
		struct counter_limits lim;
		uint64_t uj;

		if (z->parent >= (int)i || (z->parent >= 0 && t->zones[z->parent].parent != -1))
			abort(); /* a subzone follows its package */
		if (!memchr(z->id, '\0', sizeof(z->id)) || !memchr(z->name, '\0', sizeof(z->name)))
			abort();
		powercap_zone_read(t, z, &uj);
		powercap_zone_limits(z, COUNTER_RAPL, &lim);
		if (lim.max_power_uw == 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *root = fuzz_fixture_build(data, size);
	unsigned fds = fuzz_fd_count();
	struct powercap_tree *t = NULL;
	struct heartbeat hb;
	char err[512];

	/* strict, as powerd-host opens sysfs and the guest a powerd tree; then lenient, as the
	 * guest opens a tree that may be Scaphandre's qemu exporter's */
	for (unsigned flags = 0; flags <= POWERCAP_OPEN_SCAPHANDRE_QEMU; flags++) {
		if (powercap_tree_open_flags(root, flags, &t, err, sizeof(err)) < 0)
			continue;
		check_tree(t);
		(void)powercap_layout_name(t->layout);
		powercap_heartbeat_read(t, &hb);
		powercap_tree_free(t);
	}
	if (fuzz_fd_count() != fds)
		abort();
	return 0;
}
