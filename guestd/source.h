/* The energy source of the guest, behind one interface: a reader does the I/O (a powercap tree
 * read in a thread of its own, so a stalled 9p or virtiofs mount never blocks the event loop),
 * and hands over whole readings; the source keeps the served per-zone totals monotonic across
 * wraps, host resets, and the source disappearing and coming back, and judges freshness. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/powercap.h"

struct event_base;

struct source_zone {
	char id[POWERCAP_NAME_MAX];   /* "intel-rapl:0:1": identity across reopenings */
	char name[POWERCAP_NAME_MAX]; /* the zone's name file: the served label */
	unsigned package;
	bool is_package;
	bool is_present; /* in the source as last opened */
	struct energy_counter counter;
	bool has_base; /* total_uj was set from the zone's first value ever read */
	/* Seeded from a previous run's output (source_seed) with the host instance it counted
	 * from: the first reading of that instance resumes at raw + resume_offset_uj. */
	bool has_resume_offset;
	uint64_t resume_offset_uj;
	uint64_t interval_uj; /* energy of the last interval */
	double power_w;	      /* average over the last interval */
};

/* One zone of a reading: what the source says now. */
struct source_reading_zone {
	char id[POWERCAP_NAME_MAX];
	char name[POWERCAP_NAME_MAX];
	unsigned package;
	bool is_package;
	struct counter_limits
		limits; /* how the counter wraps (no range: never, a decrease resets) */
	uint64_t energy_uj;
};

/* What a reader hands over: every zone read together (used whole or not at all), with what the
 * source says about its freshness; or why there is nothing. */
struct source_reading {
	int error; /* 0, or a negative errno with problem saying why */
	char problem[512];
	bool is_closed;	  /* with error: the reader let go of the source, its zones are gone */
	bool is_reopened; /* the zones are those of a source opened afresh */
	enum powercap_layout layout; /* with is_reopened: what the tree looks written by */
	struct source_reading_zone *zones;
	size_t n_zones;
	bool has_heartbeat; /* hb is set: freshness from its seq */
	struct heartbeat hb;
	/* The counters' origin (a host boot and share_dir, DESIGN.md §4): when it changes the
	 * counters are rebased. "" when the source does not say. */
	char instance[33];
};

void source_reading_done(struct source_reading *r);

struct source_reader;

struct source_reader_ops {
	/* Begin one reading. -EBUSY while the previous one has not finished. */
	int (*request)(struct source_reader *r);
	/* 0 and the finished reading in *ret (the caller owns it), -EAGAIN when none is ready. */
	int (*take)(struct source_reader *r, struct source_reading *ret);
	/* Block until the reading in flight is ready, at most timeout_ns: 0 or -ETIMEDOUT. For
	 * callers without an event loop (tests, the first sample before READY). */
	int (*wait)(struct source_reader *r, uint64_t timeout_ns);
	/* Has the reader lost what it reads (a port that went away)? NULL: never. */
	bool (*is_gone)(const struct source_reader *r);
	/* Let go. A reader stuck in I/O is left to finish on its own and frees itself then. */
	void (*free)(struct source_reader *r);
};

struct source_reader {
	const struct source_reader_ops *ops;
	/* Called on the loop when a reading is ready (readers made with an event base only). */
	void (*on_ready)(void *arg);
	void *arg;
};

struct source {
	char *spec;	 /* as configured: "auto", a tree's path or a port's */
	char *root;	 /* what is read now, for messages */
	bool is_channel; /* the reader is the energy channel's */
	char *ports_dir, *dev_dir, *auto_tree; /* where auto looks for the port and the tree */
	struct source_reader *reader;
	struct event_base *base; /* NULL: readings are waited for (source_sample) */
	void (*on_ready)(void *arg);
	void *on_ready_arg;
	bool is_in_flight;
	uint64_t requested_ns;
	/* Every zone ever seen (at most 2 * POWERCAP_ZONES_MAX), so served totals never go back. */
	struct source_zone *zones;
	size_t n_zones;

	bool is_up;
	bool has_sampled;
	bool has_heartbeat;
	bool is_estimated;
	bool is_open;		     /* the reader holds the source open */
	enum powercap_layout layout; /* of the tree as last opened */
	uint64_t hb_seq;
	uint64_t hb_changed_ns; /* when seq was last seen to change */
	uint64_t host_interval_ms;

	char instance[33];	/* of the last reading that said it */
	char seed_instance[33]; /* of what source_seed() resumed from, until the next reading */
	bool has_logged_rebase; /* for the current streak of counters that went down */

	uint64_t last_sample_ns;
	uint64_t interval_ns;	   /* time between the last two samples */
	uint64_t package_delta_uj; /* the VM's energy in the last interval: Σ packages */
	char problem[512];	   /* why it is down, for logs and STATUS */
};

/* spec: "auto" (the channel's port when /sys/class/virtio-ports lists it, looked for at every
 * tick while absent, else the tree at /var/scaphandre), a port's device path (under /dev/, or any
 * path that is not a directory: a FIFO stand-in), or a tree's path. The test-only environment
 * variable POWERD_GUEST_TEST_ROOT=D makes auto look in D/sys/class/virtio-ports, D/dev and
 * D/var/scaphandre. */
struct source *source_new(const char *spec);
/* From now on readings are not waited for: on_ready(arg) is called on base's loop when one is
 * ready, and source_finish() takes it. */
void source_set_loop(
	struct source *s, struct event_base *base, void (*on_ready)(void *), void *arg);
void source_free(struct source *s);
/* Another spec; served totals continue, counters restart from their next sample. */
void source_set_root(struct source *s, const char *spec);

/* The tick at now_ns: ask the reader for a reading, and account it if it is ready at once.
 * -EINPROGRESS when it will be ready later (on_ready, then source_finish()). A reading still not
 * ready since the last tick means the source hangs: the source is down from now (-ETIMEDOUT,
 * problem says so), its totals are kept, and no second reading is asked for until it answers.
 * Otherwise as source_finish(). */
int source_begin(struct source *s, uint64_t now_ns, uint64_t guest_interval_ms);
/* Take the reading that is ready and account it at now_ns; guest_interval_ms sets how long a
 * frozen heartbeat is tolerated. 0 when the source is up, -EAGAIN when nothing is ready (nothing
 * changes), else a negative errno with s->problem saying why. */
int source_finish(struct source *s, uint64_t now_ns, uint64_t guest_interval_ms);
/* Both, waiting for the reading up to MAX(guest_interval_ms, 3 s) (no event loop). */
int source_sample(struct source *s, uint64_t now_ns, uint64_t guest_interval_ms);

/* What a previous run of powerd-guest laid out (tree_out, sysfs_out), so that the served totals
 * and the trees never go back across restarts. */
struct source_seed_zone {
	char name[POWERCAP_NAME_MAX];
	uint64_t total_uj; /* the total it had reached */
	bool has_offset;   /* its total was raw + offset_uj for the seed's host instance */
	uint64_t offset_uj;
};

/* Before the first reading: each zone starts at its seed's total (a zone already known is raised
 * to it), in the seed's order. The first reading continues from there; if it is from the seed's
 * instance, a zone with an offset resumes at raw + offset (the energy given while powerd-guest was
 * down is counted) when that is not less. instance: "" when unknown. */
void source_seed(struct source *s, const char *instance, const struct source_seed_zone *zones,
	size_t n_zones);

/* Is the source the energy channel, or may it become it (auto)? */
bool source_may_be_channel(const struct source *s);

/* Σ of the packages' served totals and power. */
uint64_t source_total_uj(const struct source *s);
double source_power_w(const struct source *s);
/* The heartbeat counts as stale when seq has not moved for this long. */
uint64_t source_stale_after_ms(uint64_t guest_interval_ms, uint64_t host_interval_ms);
