/* Writing one powercap-compatible tree (DESIGN.md §1) inside a directory the caller owns: a
 * domain's tree on the host, a channel-fed guest's tree_out in the VM. Every path is relative to
 * directory fds, nothing follows symlinks, files are replaced atomically (exclusive temporary +
 * rename) with mode 0644. A hostile guest that plants symlinks, directories or junk in the tree can
 * make a write fail, never make one land outside. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/powercap.h"

/* energy_uj wraps to 0 when it reaches this (written as max_energy_range_uj): 2^50 µJ ≈ 1.13 GJ,
 * 130 days at 100 W (a RAPL package's range is 262 kJ, minutes to hours), and exact in a double.
 * A reader that takes any decrease for a wrap (Kepler) counts a wrap exactly; a value that went
 * back would count as ~1.1 GJ, so nothing written here ever goes back but by this wrap. */
#define TREE_MAX_ENERGY_RANGE_UJ (UINT64_C(1) << 50)

struct tree;

/* Lay out (or repair) the tree in dirfd for zones names[0..n): names[0] is the package zone
 * ("package-0", directory intel-rapl:0), the rest subzones (intel-rapl:0/intel-rapl:0:K, and a
 * relative top-level symlink intel-rapl:0:K). Values already present are adopted: read them with
 * tree_adopted_uj(). */
int tree_open(int dirfd, const char *const *names, size_t n, struct tree **ret);
/* The same, laying out energy_uj as total_uj[i] (modulo the range) from the start, adopting
 * nothing: a reader never sees a zone's first value lower than its next. */
int tree_open_values(
	int dirfd, const char *const *names, size_t n, const uint64_t *total_uj, struct tree **ret);
void tree_free(struct tree *t);
/* The energy_uj found in zone i when the tree was opened (0 if none or unreadable). */
uint64_t tree_adopted_uj(const struct tree *t, size_t i);
/* Write each zone's energy (total_uj[i] modulo the range) and the heartbeat. */
int tree_write(struct tree *t, const uint64_t *total_uj, const struct heartbeat *hb);
