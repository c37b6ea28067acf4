/* The host's energy per domain zone from powercap (summing packages and same-named subzones),
 * or an estimate from CPU use where the host has no powercap zone. */
#include "hostd/sensor.h"

#include "common/log.h"
#include "common/powercap.h"
#include "common/util.h"

struct host_zone {
	size_t zone; /* the domain zone it is summed into */
	struct energy_counter counter;
	struct counter_limits limits; /* RAPL semantics: powercap_root is the hardware's */
	uint64_t raw;
};

struct sensor {
	struct powercap_tree *tree; /* NULL: estimated */
	struct host_zone *host;	    /* one per entry of tree->zones; zone SIZE_MAX: not counted */
	size_t n_zones;
	char names[SENSOR_ZONES_MAX][POWERCAP_NAME_MAX];
	double estimate_frac_uj;
	bool is_failing;
	bool is_partial;
};

static int subzone_rank(const char *name)
{
	static const char *const order[] = { "core", "uncore", "dram" };

	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		if (streq(name, order[i]))
			return (int)i;
	return (int)ARRAY_SIZE(order);
}

static size_t zone_index(struct sensor *s, const char *name)
{
	for (size_t i = 1; i < s->n_zones; i++)
		if (streq(s->names[i], name))
			return i;
	return SIZE_MAX;
}

static void map_zones(struct sensor *s)
{
	const struct powercap_tree *t = s->tree;

	s->n_zones = 0;
	for (size_t i = 0; i < t->n_zones; i++) {
		const struct powercap_zone *z = &t->zones[i];
		s->host[i].zone = SIZE_MAX;
		powercap_zone_limits(z, COUNTER_RAPL, &s->host[i].limits);
		if (z->parent < 0 && startswith(z->name, "package-")) {
			s->host[i].zone = 0;
			s->n_zones = MAX(s->n_zones, (size_t)1);
		}
	}
	if (s->n_zones == 0)
		return;
	snprintf(s->names[0], sizeof(s->names[0]), "package-0");
	/* subzone names in a fixed order, so a tree keeps its layout across restarts */
	for (int rank = 0; rank <= 3; rank++) {
		for (size_t i = 0; i < t->n_zones; i++) {
			const struct powercap_zone *z = &t->zones[i];
			if (z->parent < 0 || s->host[z->parent].zone != 0 ||
				subzone_rank(z->name) != rank || !z->name[0])
				continue;
			size_t k = zone_index(s, z->name);
			if (k == SIZE_MAX) {
				if (s->n_zones == SENSOR_ZONES_MAX) {
					log_warn("sensor: too many subzone kinds, %s not counted",
						z->id);
					continue;
				}
				k = s->n_zones++;
				snprintf(s->names[k], sizeof(s->names[k]), "%s", z->name);
			}
			s->host[i].zone = k;
		}
	}
	for (size_t i = 0; i < t->n_zones; i++)
		if (s->host[i].zone == SIZE_MAX)
			log_info("sensor: %s (%s) not counted in any domain zone", t->zones[i].id,
				t->zones[i].name);
}

int sensor_open(const char *powercap_root, struct sensor **ret)
{
	struct sensor *s = xcalloc(1, sizeof(*s));
	char err[256] = "";
	int r;

	r = powercap_tree_open(powercap_root, &s->tree, err, sizeof(err));
	if (r == 0) {
		s->host = xcalloc(s->tree->n_zones, sizeof(*s->host));
		map_zones(s);
		if (s->n_zones == 0) {
			powercap_tree_free(s->tree);
			s->tree = NULL;
			free(s->host);
			s->host = NULL;
			r = -ENODATA;
		}
	}
	if (r == -ENOENT || r == -ENODATA) {
		log_notice("sensor: no powercap package under %s: energy is estimated from CPU use",
			powercap_root);
		s->n_zones = 1;
		snprintf(s->names[0], sizeof(s->names[0]), "package-0");
		*ret = s;
		return 0;
	}
	if (r < 0) {
		log_err("sensor: cannot open %s: %s", powercap_root, err[0] ? err : strerror(-r));
		sensor_free(s);
		return r;
	}
	for (size_t i = 0; i < s->n_zones; i++)
		log_info("sensor: zone %s", s->names[i]);
	*ret = s;
	return 0;
}

void sensor_free(struct sensor *s)
{
	if (!s)
		return;
	powercap_tree_free(s->tree);
	free(s->host);
	free(s);
}

size_t sensor_n_zones(const struct sensor *s)
{
	return s->n_zones;
}

const char *sensor_zone_name(const struct sensor *s, size_t zone)
{
	return zone < s->n_zones ? s->names[zone] : NULL;
}

bool sensor_is_estimated(const struct sensor *s)
{
	return !s->tree;
}

double sensor_estimate_uj(
	double idle_w, double max_w, uint64_t busy_ns, uint64_t all_ns, uint64_t dt_ns)
{
	double util = all_ns ? (double)MIN(busy_ns, all_ns) / (double)all_ns : 0;
	double watts = idle_w + (MAX(max_w, idle_w) - idle_w) * util;

	/* W × ns = 1e-9 J = 1e-3 µJ */
	return watts * (double)dt_ns / 1e3;
}

bool sensor_is_partial(const struct sensor *s)
{
	return s->is_partial;
}

int sensor_sample(struct sensor *s, const struct sensor_interval *iv, double idle_w, double max_w,
	uint64_t *delta_uj)
{
	for (size_t z = 0; z < s->n_zones; z++)
		delta_uj[z] = 0;
	if (!s->tree) {
		/* nothing runs while the host is suspended: no energy to estimate for it */
		double e =
			sensor_estimate_uj(idle_w, max_w, iv->busy_ns, iv->all_ns, iv->running_ns) +
			s->estimate_frac_uj;
		delta_uj[0] = (uint64_t)e;
		s->estimate_frac_uj = e - (double)delta_uj[0];
		s->is_partial = false;
		return 0;
	}

	/* read every counted zone first: a failure leaves all counters as they were */
	for (size_t i = 0; i < s->tree->n_zones; i++) {
		if (s->host[i].zone == SIZE_MAX)
			continue;
		int r = powercap_zone_read(s->tree, &s->tree->zones[i], &s->host[i].raw);
		if (r < 0) {
			if (!s->is_failing)
				log_warn("sensor: cannot read %s/%s/energy_uj: %s", s->tree->root,
					s->tree->zones[i].id, strerror(-r));
			s->is_failing = true;
			return r;
		}
	}
	if (s->is_failing)
		log_notice("sensor: %s readable again", s->tree->root);
	s->is_failing = false;
	s->is_partial = false;
	for (size_t i = 0; i < s->tree->n_zones; i++) {
		struct host_zone *h = &s->host[i];
		enum counter_step step;
		if (h->zone == SIZE_MAX)
			continue;
		delta_uj[h->zone] += energy_counter_update(
			&h->counter, h->raw, &h->limits, iv->elapsed_ns, &step);
		if (step == COUNTER_RESET)
			log_notice(
				"sensor: %s energy_uj went back without a plausible wrap (at most "
				"%.0f W over %.3f s): counted as 0",
				s->tree->zones[i].id, (double)h->limits.max_power_uw / 1e6,
				(double)iv->elapsed_ns / 1e9);
		if (step == COUNTER_RESET || step == COUNTER_FIRST)
			s->is_partial = true;
	}
	return 0;
}
