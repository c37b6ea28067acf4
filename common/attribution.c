/* Splitting an interval's energy by CPU time in exact integer µJ with carried fixed-point
 * remainders (DESIGN.md §2). Pure arithmetic: no I/O, no globals. */
#include "common/attribution.h"

#include "common/util.h"

#define FRAC_MASK ((UINT64_C(1) << ATTRIBUTION_FRAC_BITS) - 1)

typedef unsigned __int128 u128;

/* floor(energy × cpu × 2^32 / d) without overflow: energy × cpu fits in 128 bits, and since
 * cpu ≤ d the quotient is below energy × 2^32, the remainder below d < 2^96 (d sums at most
 * SIZE_MAX / 2^32 values, far more domains than a host runs). */
static u128 share_fixed(uint64_t energy_uj, uint64_t cpu_ns, u128 d)
{
	u128 p = (u128)energy_uj * cpu_ns;
	u128 whole = p / d;
	u128 rem = p % d;

	return (whole << ATTRIBUTION_FRAC_BITS) + (rem << ATTRIBUTION_FRAC_BITS) / d;
}

void attribution_split(uint64_t energy_uj, uint64_t busy_ns, const uint64_t *cpu_ns, size_t n,
	uint64_t *frac, uint64_t *ret_uj)
{
	u128 sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += cpu_ns[i];
	u128 d = MAX((u128)busy_ns, sum);

	for (size_t i = 0; i < n; i++) {
		if (d == 0) {
			ret_uj[i] = 0;
			continue;
		}
		u128 t = share_fixed(energy_uj, cpu_ns[i], d) + (frac[i] & FRAC_MASK);
		ret_uj[i] = (uint64_t)(t >> ATTRIBUTION_FRAC_BITS);
		frac[i] = (uint64_t)t & FRAC_MASK;
	}
}
