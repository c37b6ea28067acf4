/* The host's energy, per domain zone: what a domain's tree mirrors (DESIGN.md §1).
 * Zone 0 "package-0" is the sum of every host package (intel-rapl:N named package-*), then one
 * zone per subzone name found under the packages ("core", "uncore", "dram", in that order, any
 * other name after them), the same name summed across packages. Top-level zones that are not
 * packages (psys: the whole platform, overlapping the packages) are not counted, nor is mmio
 * (it duplicates the package counter; the powercap reader skips it).
 * Without any powercap zone, energy is estimated from host CPU use with the configured idle and
 * max watts, as one zone "package-0", flagged estimated. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SENSOR_ZONES_MAX 8

struct sensor;

/* Open powercap_root; where it is missing or has no zone, the sensor estimates. */
int sensor_open(const char *powercap_root, struct sensor **ret);
void sensor_free(struct sensor *s);
size_t sensor_n_zones(const struct sensor *s);
const char *sensor_zone_name(const struct sensor *s, size_t zone);
bool sensor_is_estimated(const struct sensor *s);

/* One interval, as the sensor needs it. */
struct sensor_interval {
	uint64_t elapsed_ns;	  /* CLOCK_BOOTTIME: what energy counters saw, suspend included */
	uint64_t running_ns;	  /* CLOCK_MONOTONIC: the time the host ran (the estimate's) */
	uint64_t busy_ns, all_ns; /* host CPU time (the estimate's) */
};

/* One sample: the energy of each zone since the previous successful sample into
 * delta_uj[sensor_n_zones()], 0 at the first. A failed read of any zone fails the whole sample
 * (-errno) and changes nothing: the next sample covers both intervals. */
int sensor_sample(struct sensor *s, const struct sensor_interval *iv, double idle_w, double max_w,
	uint64_t *delta_uj);
/* The last successful sample was a first one, or a zone went back without a plausible wrap
 * (counted 0): its energy is not the interval's. */
bool sensor_is_partial(const struct sensor *s);

/* The estimate's energy over dt_ns in µJ (as a real number: the caller carries fractions). */
double sensor_estimate_uj(
	double idle_w, double max_w, uint64_t busy_ns, uint64_t all_ns, uint64_t dt_ns);
