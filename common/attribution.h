/* Splitting an interval's energy by CPU time (over domains on the host, over services or
 * processes in the guest), in exact integer µJ (DESIGN.md §2).
 * Pure arithmetic: no I/O, no globals. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Fixed-point remainders: each domain carries the fraction of a µJ it was owed but not given,
 * in units of 2^-32 µJ, so that over any run Σ domain energy = floor of the exact share and
 * Σ domains ≤ host energy, exactly. */
#define ATTRIBUTION_FRAC_BITS 32

/* energy_uj: the zone's energy this interval (after the idle policy took its part).
 * busy_ns: the host's busy CPU time this interval. cpu_ns[i]: domain i's CPU time.
 * The denominator is max(busy_ns, Σ cpu_ns), so shares never sum above 1 whatever the skew
 * between the clocks. frac[i] in/out: domain i's carried remainder. ret_uj[i]: µJ given to
 * domain i this interval. */
void attribution_split(uint64_t energy_uj, uint64_t busy_ns, const uint64_t *cpu_ns, size_t n,
	uint64_t *frac, uint64_t *ret_uj);
