/* tree_out and sysfs_out: a guest lays out the share's tree (DESIGN.md §1) from its served totals,
 * so powercap readers inside the VM (node_exporter --path.sysfs, Scaphandre --vm, Kepler) read a
 * channel-fed VM as a share-fed one; sysfs_out's class/powercap is the same tree without the
 * heartbeat, as the kernel lists it (DESIGN.md §6). Written with common/tree.c: atomic replaces,
 * 0644, a zone's place kept once laid out. Nothing laid out here ever goes back (but by wrapping
 * at the range): a restart goes on from what it finds (tree_out_seed). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "guestd/source.h"

struct tree_out;

/* path: created (with its parents, 0755) at the first write. has_heartbeat: with powerd's
 * heartbeat file (tree_out), or without, as the kernel's sysfs (sysfs_out). key: the config key
 * that names it in messages (a string that outlives t). */
struct tree_out *tree_out_new(const char *key, const char *path, bool has_heartbeat);
void tree_out_free(struct tree_out *t);
const char *tree_out_path(const struct tree_out *t);
/* Create the directory (and its parents, 0755), empty until the first write: a reader started
 * before there is anything to lay out (node_exporter refuses a --path.sysfs that does not exist)
 * finds a powercap class without zones. Failures are logged. */
int tree_out_prepare(struct tree_out *t);
/* Write the source's present zones (package-0 first) and the heartbeat. Failures are logged once
 * per streak; the next call lays the tree out again. */
int tree_out_write(struct tree_out *t, const struct source *s, uint64_t interval_ms);
/* Before the first reading: seed s with what a previous run of powerd-guest left at the path (the
 * zones' order and values, and the state file beside them), so that neither the served totals nor
 * the tree go back. Nothing there: 0, nothing done. */
int tree_out_seed(struct tree_out *t, struct source *s);
