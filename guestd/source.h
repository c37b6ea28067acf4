/* The energy source of the guest: a powercap tree (the powerd share in a VM, /sys/class/powercap on
 * bare metal) sampled once per tick. Keeps the served per-zone totals monotonic across wraps, host
 * resets, and the tree disappearing and coming back; judges freshness from the heartbeat. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/powercap.h"

struct source_zone {
	char id[POWERCAP_NAME_MAX];   /* "intel-rapl:0:1": identity across reopenings */
	char name[POWERCAP_NAME_MAX]; /* the zone's name file: the served label */
	unsigned package;
	bool is_package;
	bool is_present; /* in the tree as last opened */
	struct energy_counter counter;
	bool has_base;	      /* total_uj was set from the zone's first value ever read */
	uint64_t interval_uj; /* energy of the last interval */
	double power_w;	      /* average over the last interval */
};

struct source {
	char *root;
	struct powercap_tree *tree;
	/* Every zone ever seen (at most 2 * POWERCAP_ZONES_MAX), so served totals never go back. */
	struct source_zone *zones;
	size_t n_zones;

	bool is_up;
	bool has_sampled;
	bool has_heartbeat;
	bool is_estimated;
	enum powercap_layout layout; /* of the tree as last opened */
	uint64_t hb_seq;
	uint64_t hb_changed_ns; /* when seq was last seen to change */
	uint64_t host_interval_ms;

	uint64_t last_sample_ns;
	uint64_t interval_ns;	   /* time between the last two samples */
	uint64_t package_delta_uj; /* the VM's energy in the last interval: Σ packages */
	char problem[512];	   /* why it is down, for logs and STATUS */
};

struct source *source_new(const char *root);
void source_free(struct source *s);
/* Point at another tree; served totals continue, counters restart from their next sample. */
void source_set_root(struct source *s, const char *root);
/* Take one sample at now_ns; guest_interval_ms sets how long a frozen heartbeat is tolerated.
 * Returns 0 when the source is up, else a negative errno with s->problem saying why. */
int source_sample(struct source *s, uint64_t now_ns, uint64_t guest_interval_ms);
/* Σ of the packages' served totals and power. */
uint64_t source_total_uj(const struct source *s);
double source_power_w(const struct source *s);
/* The heartbeat counts as stale when seq has not moved for this long. */
uint64_t source_stale_after_ms(uint64_t guest_interval_ms, uint64_t host_interval_ms);
