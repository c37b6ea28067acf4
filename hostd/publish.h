/* Publishers: the ways a domain's energy leaves powerd-host. The tick computes every domain's
 * energy once, then hands it to each of the domain's publishers in one loop (accounting.c): the
 * tree in the domain's share (publish_tree.c, DESIGN.md §1) and the virtio-serial channel
 * (channel.c, §4). A publisher is an object with a publish operation; it keeps its own state
 * (open files, a socket) and never blocks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/powercap.h"

struct tree;

/* A domain's publishers, by slot: at most one of each. */
enum publish_slot { PUBLISH_TREE, PUBLISH_CHANNEL, PUBLISH_SLOTS };

/* What one tick hands to every publisher: the same for all domains, but for total_uj. */
struct publish_tick {
	const struct heartbeat *hb; /* seq, interval, time, estimated, instance */
	const char *const *zone_names;
	size_t n_zones;
};

struct publisher;

struct publisher_ops {
	const char *kind; /* "tree", "channel": messages and powerd_errors_total{kind} */
	/* Publish the domain's cumulative energy per zone (total_uj[0..tick->n_zones)). 0; -EAGAIN
	 * when nothing was published by design (a channel not connected, or full: the next record
	 * supersedes this one); another negative errno is a failure the caller counts and logs
	 * once per streak. */
	int (*publish)(
		struct publisher *p, const struct publish_tick *tick, const uint64_t *total_uj);
	void (*free)(struct publisher *p);
};

/* Embedded first in each implementation. */
struct publisher {
	const struct publisher_ops *ops;
	bool is_failing; /* for logging once per streak */
};

void publisher_free(struct publisher *p);
/* p's publish, its failures logged once per streak under the domain's name. */
int publisher_publish(struct publisher *p, const char *domain, const struct publish_tick *tick,
	const uint64_t *total_uj);

/* The tree publisher owns t (tree_write on every tick). */
struct publisher *publish_tree_new(struct tree *t);
