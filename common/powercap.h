/* Reading powercap trees: /sys/class/powercap on bare metal and hypervisors, or a per-domain tree
 * that powerd-host writes (DESIGN.md §1). Plus wrap-aware counter arithmetic. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POWERCAP_NAME_MAX 64
#define POWERCAP_ZONES_MAX 256
/* The heartbeat file powerd-host keeps at the top of every per-domain tree. */
#define POWERCAP_HEARTBEAT_FILE ".powerd-heartbeat"

struct powercap_zone {
	char id[POWERCAP_NAME_MAX];   /* "intel-rapl:0", "intel-rapl:0:1" */
	char name[POWERCAP_NAME_MAX]; /* content of the name file: "package-0", "core", "dram",
					 "psys" */
	int parent;	  /* index of the package zone in tree->zones; -1 for a package */
	unsigned package; /* N of intel-rapl:N */
	int dir_fd;	  /* the zone's directory, kept open */
	int energy_fd;	  /* energy_uj kept open (sysfs only), else -1: reopened per read */
	uint64_t max_energy_range_uj; /* 0 when the file is missing or unreadable */
	bool has_max_energy_range;
	uint64_t max_power_uw; /* largest constraint_N_max_power_uw (sysfs), 0 when none */
};

/* What wrote the tree, as far as its shape tells. */
enum powercap_layout {
	POWERCAP_LAYOUT_POWERD,		 /* powercap files outside sysfs: powerd-host's tree */
	POWERCAP_LAYOUT_SYSFS,		 /* the kernel's /sys/class/powercap */
	POWERCAP_LAYOUT_SCAPHANDRE_QEMU, /* Scaphandre's qemu exporter: energy_uj only, no name */
};

struct powercap_tree {
	char *root; /* the path it was opened from, for messages */
	int root_fd;
	bool is_sysfs; /* attributes re-read on pread; elsewhere files are replaced by rename */
	enum powercap_layout layout;
	bool is_lenient;	     /* opened with POWERCAP_OPEN_SCAPHANDRE_QEMU, not on sysfs */
	struct powercap_zone *zones; /* packages first in id order, each followed by its subzones */
	size_t n_zones;
};

/* Scan root for zones: top-level "intel-rapl:N" (and "amd-rapl:N"; "intel-rapl-mmio" is skipped:
 * it duplicates the package counter), their "…:N:M" subzones nested or as top-level entries.
 * -ENOENT: root missing; -ENODATA: no zone at all; other errors name the entry in err. */
int powercap_tree_open(const char *root, struct powercap_tree **ret, char *err, size_t err_size);
/* POWERCAP_OPEN_SCAPHANDRE_QEMU also reads the tree Scaphandre's `qemu` exporter writes, outside
 * sysfs only: a top-level zone without a name file is "package-N" (N of intel-rapl:N), and a
 * subzone without name or energy_uj is skipped; layout then says POWERCAP_LAYOUT_SCAPHANDRE_QEMU.
 * Real sysfs stays strict whatever the flags, and so does powercap_tree_open(). */
#define POWERCAP_OPEN_SCAPHANDRE_QEMU (1u << 0)
int powercap_tree_open_flags(
	const char *root, unsigned flags, struct powercap_tree **ret, char *err, size_t err_size);
/* "powerd", "sysfs" or "scaphandre-qemu": the value of the guest's layout label. */
const char *powercap_layout_name(enum powercap_layout layout);
void powercap_tree_free(struct powercap_tree *t);

/* Read one zone's energy_uj, strictly parsed. -EINVAL on garbage or truncated content. */
int powercap_zone_read(
	const struct powercap_tree *t, const struct powercap_zone *z, uint64_t *ret_energy_uj);

/* A monotonic 64-bit total kept from a counter that wraps.
 * A decrease is a wrap only when the energy it implies over the elapsed time is plausible for the
 * zone (at most its max power); otherwise it is a reset of the source, absorbed with a delta of 0
 * (then the new value is followed). A decrease after a stall longer than half the range is still a
 * wrap when its power is plausible. An increase is always energy (counters only move forward). */
enum counter_step {
	COUNTER_FIRST, /* first sample: delta 0 */
	COUNTER_OK,
	COUNTER_WRAPPED,
	COUNTER_RESET,
};

enum counter_kind {
	/* Hardware RAPL (sysfs): the 32-bit status counter times the energy unit. The kernel's
	 * max_energy_range_uj is 0xffffffff units (rounded down to a µJ), so the counter wraps one
	 * unit (max / 0xffffffff, 61.035 µJ on most Intel parts) above it: counted exactly, the
	 * fraction of a µJ carried. A range the kernel's formula cannot give wraps at the range. */
	COUNTER_RAPL,
	/* powerd's own trees: values 0..range-1 (written as total % range), wrap at the range */
	COUNTER_EXACT,
};

/* Without a constraint_N_max_power_uw, the most a zone is believed to draw: above any package or
 * whole host (an 8-socket server stays under 3 kW), far below what most resets mistaken for
 * wraps imply (a RAPL counter at 200 kJ reset to 0 would be a 62 kJ wrap: 62 kW over 1 s). A
 * reset just below the top of the range is indistinguishable from a wrap, and costs as little. */
#define COUNTER_MAX_POWER_UW_DEFAULT (UINT64_C(5000) * 1000000)
/* A zone's constraint max power is its sustained limit (TDP, PL1); turbo and short-term limits
 * run above it: the plausible maximum is this many times the largest constraint. */
#define COUNTER_CONSTRAINT_FACTOR 4

struct counter_limits {
	enum counter_kind kind;
	uint64_t max_range_uj; /* 0: no range known, every decrease is a reset */
	uint64_t max_power_uw; /* 0: COUNTER_MAX_POWER_UW_DEFAULT */
};

struct energy_counter {
	uint64_t last_raw;
	uint64_t total_uj;
	uint32_t frac_nj; /* of a µJ owed by RAPL wraps (the unit is not a whole µJ) */
	bool has_last;
};

/* The limits of zone z read as kind: its range, and its constraint max power times
 * COUNTER_CONSTRAINT_FACTOR, else the default. */
void powercap_zone_limits(
	const struct powercap_zone *z, enum counter_kind kind, struct counter_limits *ret);

/* Feed one raw sample taken dt_ns after the previous one; returns the energy since the previous
 * one (µJ) and adds it to total_uj. */
uint64_t energy_counter_update(struct energy_counter *c, uint64_t raw,
	const struct counter_limits *lim, uint64_t dt_ns, enum counter_step *ret_step);

/* The heartbeat (file POWERCAP_HEARTBEAT_FILE), text of "key value" lines:
 *   version 1
 *   seq <u64>           incremented at every host tick
 *   interval_ms <u64>   the host's sampling interval
 *   time_ms <u64>       CLOCK_REALTIME of the tick, informative only (guest clocks drift)
 *   estimated <0|1>     1 when energy is estimated from CPU use, not measured
 *   instance <32 hex>   the counters' origin (one host boot and share_dir; DESIGN.md §4);
 *                       written when known, optional when read
 * Unknown keys are ignored (forward compatible); missing seq or interval_ms is -EINVAL. */
struct heartbeat {
	uint64_t seq;
	uint64_t interval_ms;
	uint64_t time_ms;
	bool is_estimated;
	char instance[33]; /* "" when unknown */
};

int heartbeat_parse(const char *buf, size_t len, struct heartbeat *ret);
/* Render into buf (at least 160 bytes); returns the length. */
size_t heartbeat_format(const struct heartbeat *hb, char *buf, size_t size);
/* Read the heartbeat at the top of t. -ENOENT when there is none (bare-metal sysfs). */
int powercap_heartbeat_read(const struct powercap_tree *t, struct heartbeat *ret);
