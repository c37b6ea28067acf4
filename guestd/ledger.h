/* The guest's energy split over its consumers (services or processes) by their share of busy CPU
 * time, accumulated into monotonic per-consumer totals (DESIGN.md §2). Pure: fed samples, no I/O.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guestd/cpuacct.h"

struct ledger_entry {
	struct cpu_sample s; /* labels and the last cumulative CPU time; owned */
	uint64_t frac;	     /* carried remainder, see attribution_split() */
	uint64_t total_uj;
	uint64_t interval_uj; /* energy of the last interval */
};

struct ledger {
	struct ledger_entry *v; /* sorted by key */
	size_t n;
	uint64_t last_busy_ns;
	bool has_baseline;
};

void ledger_free(struct ledger *l);
/* Account one interval: energy_uj is the VM's energy since the previous call, busy_ns the guest's
 * cumulative busy CPU time now, samples the consumers now (sorted by key, taken over: the caller's
 * struct is emptied). Consumers absent from samples are dropped. A consumer first seen after the
 * first call started since the previous one, so all its CPU time falls in this interval. */
void ledger_update(
	struct ledger *l, uint64_t energy_uj, uint64_t busy_ns, struct cpu_samples *samples);
/* Σ of every entry's total (≤ the VM energy fed in since they appeared). */
uint64_t ledger_sum_uj(const struct ledger *l);
