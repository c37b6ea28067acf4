/* tree_out: a channel-fed guest lays out the share's tree (DESIGN.md §1) from its served totals,
 * so powercap readers inside the VM (node_exporter --path.sysfs, Scaphandre --vm, Kepler) read a
 * channel-fed VM as a share-fed one. Written with common/tree.c: atomic replaces, 0644, and a
 * heartbeat that moves at each write (it stops when the source is down). */
#pragma once

#include <stdint.h>

#include "guestd/source.h"

struct tree_out;

/* path: created (with its parents, 0755) at the first write. */
struct tree_out *tree_out_new(const char *path);
void tree_out_free(struct tree_out *t);
const char *tree_out_path(const struct tree_out *t);
/* Write the source's present zones (package-0 first) and the heartbeat. Failures are logged once
 * per streak; the next call lays the tree out again. */
int tree_out_write(struct tree_out *t, const struct source *s, uint64_t interval_ms);
