/* Sampling a powercap tree: open (and re-open while it is missing), heartbeat freshness, and
 * wrap-aware per-zone totals. */
#include "guestd/source.h"

#include <stdio.h>
#include <sys/stat.h>

#include "common/util.h"

struct source *source_new(const char *root)
{
	struct source *s = xcalloc(1, sizeof(*s));

	s->root = xstrdup(root);
	return s;
}

static void source_close(struct source *s)
{
	powercap_tree_free(s->tree);
	s->tree = NULL;
	for (size_t i = 0; i < s->n_zones; i++)
		s->zones[i].is_present = false;
}

void source_free(struct source *s)
{
	if (!s)
		return;
	source_close(s);
	free(s->zones);
	free(s->root);
	free(s);
}

void source_set_root(struct source *s, const char *root)
{
	source_close(s);
	free(s->root);
	s->root = xstrdup(root);
	/* Another tree's raw values mean nothing against this one's. */
	for (size_t i = 0; i < s->n_zones; i++)
		s->zones[i].counter.has_last = false;
	s->has_heartbeat = false;
	s->hb_changed_ns = 0;
}

uint64_t source_stale_after_ms(uint64_t guest_interval_ms, uint64_t host_interval_ms)
{
	/* The host ticks at least once per host interval; seeing no change for two of the longer
	 * intervals means it stopped. With the samples a guest interval apart that is noticed
	 * within three guest intervals when the host is not slower than the guest. */
	return 2 * MAX(guest_interval_ms, host_interval_ms);
}

static struct source_zone *zone_find(struct source *s, const char *id)
{
	for (size_t i = 0; i < s->n_zones; i++)
		if (streq(s->zones[i].id, id))
			return &s->zones[i];
	return NULL;
}

/* Map the tree's zones onto the kept records; adds records for zones never seen before. */
static void zones_attach(struct source *s)
{
	for (size_t i = 0; i < s->tree->n_zones; i++) {
		const struct powercap_zone *pz = &s->tree->zones[i];
		struct source_zone *z = zone_find(s, pz->id);

		if (!z) {
			/* A tree has up to POWERCAP_ZONES_MAX packages and as many subzones. */
			if (s->n_zones >= 2 * POWERCAP_ZONES_MAX)
				continue;
			s->zones = xreallocarray(s->zones, s->n_zones + 1, sizeof(*s->zones));
			z = &s->zones[s->n_zones++];
			*z = (struct source_zone){ 0 };
			snprintf(z->id, sizeof(z->id), "%s", pz->id);
		}
		/* The name may change with a new tree (a host with other hardware). */
		snprintf(z->name, sizeof(z->name), "%s", pz->name);
		z->package = pz->package;
		/* psys, top-level on client CPUs, already includes the packages. */
		z->is_package = pz->parent < 0 && startswith(pz->name, "package-");
		z->is_present = true;
	}
}

static int source_open(struct source *s)
{
	char err[256] = "";
	struct stat st;
	/* Guests may be upgraded before their hosts: Scaphandre's own qemu tree is read too. */
	int r = powercap_tree_open_flags(
		s->root, POWERCAP_OPEN_SCAPHANDRE_QEMU, &s->tree, err, sizeof(err));

	if (r >= 0 && s->tree->n_zones == 0) {
		powercap_tree_free(s->tree);
		r = -ENODATA;
	}
	/* A file missing inside the tree is named by err; "missing" is for the root only. */
	if (r == -ENOENT && stat(s->root, &st) < 0 && errno == ENOENT)
		snprintf(s->problem, sizeof(s->problem), "%s: missing", s->root);
	else if (r == -ENODATA)
		snprintf(s->problem, sizeof(s->problem), "%s: no powercap zones", s->root);
	else if (r < 0)
		snprintf(s->problem, sizeof(s->problem), "%s: %s", s->root,
			err[0] ? err : strerror(-r));
	if (r < 0) {
		s->tree = NULL;
		return r;
	}
	s->layout = s->tree->layout;
	zones_attach(s);
	return 0;
}

static int heartbeat_check(struct source *s, uint64_t now_ns, uint64_t guest_interval_ms)
{
	struct heartbeat hb;
	int r = powercap_heartbeat_read(s->tree, &hb);

	if (r == -ENOENT) {
		/* Bare-metal sysfs has none: fresh for as long as it can be read. */
		s->has_heartbeat = false;
		s->is_estimated = false;
		return 0;
	}
	if (r < 0) {
		snprintf(s->problem, sizeof(s->problem), "%s/%s: %s", s->root,
			POWERCAP_HEARTBEAT_FILE, strerror(-r));
		return r;
	}
	if (!s->has_heartbeat || hb.seq != s->hb_seq || s->hb_changed_ns == 0) {
		s->hb_seq = hb.seq;
		s->hb_changed_ns = now_ns;
	}
	s->has_heartbeat = true;
	s->host_interval_ms = hb.interval_ms;
	s->is_estimated = hb.is_estimated;
	uint64_t stale_ns =
		source_stale_after_ms(guest_interval_ms, hb.interval_ms) * NSEC_PER_MSEC;
	if (now_ns - s->hb_changed_ns >= stale_ns) {
		snprintf(s->problem, sizeof(s->problem),
			"%s: host daemon stopped (heartbeat seq %llu unchanged for %llu ms)",
			s->root, (unsigned long long)hb.seq,
			(unsigned long long)((now_ns - s->hb_changed_ns) / NSEC_PER_MSEC));
		return -ESTALE;
	}
	return 0;
}

/* Read every zone first, then update: a sample is used whole or not at all. *raw gets one value
 * per zone of the tree (caller frees). */
static int zones_read(struct source *s, uint64_t **ret_raw)
{
	uint64_t *raw = *ret_raw = xreallocarray(*ret_raw, MAX(s->tree->n_zones, 1), sizeof(*raw));

	for (size_t i = 0; i < s->tree->n_zones; i++) {
		const struct powercap_zone *pz = &s->tree->zones[i];
		int r = powercap_zone_read(s->tree, pz, &raw[i]);

		if (r < 0) {
			snprintf(s->problem, sizeof(s->problem), "%s/%s/energy_uj: %s", s->root,
				pz->id, r == -EINVAL ? "invalid content" : strerror(-r));
			return r;
		}
	}
	return 0;
}

static bool is_same_root(const struct source *s)
{
	struct stat path_st, fd_st;

	if (stat(s->root, &path_st) < 0 || fstat(s->tree->root_fd, &fd_st) < 0)
		return false;
	return path_st.st_dev == fd_st.st_dev && path_st.st_ino == fd_st.st_ino;
}

static int source_read(
	struct source *s, uint64_t now_ns, uint64_t guest_interval_ms, uint64_t **raw)
{
	int r;

	if (s->tree && !is_same_root(s)) {
		/* Unmounted, replaced or moved away: what the fds still reach is not the source. */
		source_close(s);
	}
	if (!s->tree) {
		r = source_open(s);
		if (r < 0)
			return r;
	}
	r = heartbeat_check(s, now_ns, guest_interval_ms);
	if (r < 0)
		return r;
	return zones_read(s, raw);
}

static void zones_update(struct source *s, const uint64_t *raw, uint64_t dt_ns)
{
	s->package_delta_uj = 0;
	for (size_t i = 0; i < s->n_zones; i++) {
		s->zones[i].interval_uj = 0;
		s->zones[i].power_w = 0;
	}
	for (size_t i = 0; i < s->tree->n_zones; i++) {
		const struct powercap_zone *pz = &s->tree->zones[i];
		struct source_zone *z = zone_find(s, pz->id);
		struct counter_limits lim;

		if (!z)
			continue;
		/* sysfs wraps as RAPL does; powerd's trees exactly at their range */
		powercap_zone_limits(pz, s->tree->is_sysfs ? COUNTER_RAPL : COUNTER_EXACT, &lim);
		z->interval_uj = energy_counter_update(&z->counter, raw[i], &lim, dt_ns, NULL);
		/* The served total is the tree's own counter, as node_exporter or Scaphandre
		 * reading the same share would report it, not the energy since this daemon started:
		 * it starts at the first value ever read and goes on by unwrapped deltas from there
		 * (so also across guest restarts, host restarts and trees that come back). */
		if (!z->has_base) {
			z->counter.total_uj = raw[i];
			z->has_base = true;
		}
		if (dt_ns > 0)
			z->power_w = (double)z->interval_uj * 1e3 / (double)dt_ns;
		if (z->is_package)
			s->package_delta_uj += z->interval_uj;
	}
}

int source_sample(struct source *s, uint64_t now_ns, uint64_t guest_interval_ms)
{
	_cleanup_free_ uint64_t *raw = NULL;
	uint64_t dt_ns = s->has_sampled ? now_ns - s->last_sample_ns : 0;
	int r;

	s->last_sample_ns = now_ns;
	s->interval_ns = dt_ns;
	s->has_sampled = true;
	r = source_read(s, now_ns, guest_interval_ms, &raw);
	if (r < 0 && r != -ESTALE && s->tree) {
		/* The tree may have been replaced under the fds we hold (unmounted and mounted
		 * again, or rewritten): try once with a fresh open before calling it down. */
		source_close(s);
		r = source_read(s, now_ns, guest_interval_ms, &raw);
	}
	if (r < 0) {
		if (r != -ESTALE)
			source_close(s);
		s->is_up = false;
		s->package_delta_uj = 0;
		for (size_t i = 0; i < s->n_zones; i++) {
			s->zones[i].interval_uj = 0;
			s->zones[i].power_w = 0;
		}
		return r;
	}
	zones_update(s, raw, dt_ns);
	s->is_up = true;
	s->problem[0] = '\0';
	return 0;
}

uint64_t source_total_uj(const struct source *s)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < s->n_zones; i++)
		if (s->zones[i].is_package)
			sum += s->zones[i].counter.total_uj;
	return sum;
}

double source_power_w(const struct source *s)
{
	double sum = 0;

	for (size_t i = 0; i < s->n_zones; i++)
		if (s->zones[i].is_package)
			sum += s->zones[i].power_w;
	return sum;
}
