/* The served side of the guest's source: readings from a reader become wrap-aware, monotonic
 * per-zone totals, with freshness judged from the heartbeat. No I/O here: the reader does it. */
#include "guestd/source.h"

#include <stdio.h>

#include "common/log.h"
#include "common/util.h"
#include "guestd/tree_reader.h"

void source_reading_done(struct source_reading *r)
{
	if (!r)
		return;
	free(r->zones);
	*r = (struct source_reading){ 0 };
}

struct source *source_new(const char *root)
{
	struct source *s = xcalloc(1, sizeof(*s));

	s->root = xstrdup(root);
	return s;
}

static void reader_drop(struct source *s)
{
	if (s->reader)
		s->reader->ops->free(s->reader);
	s->reader = NULL;
	s->is_in_flight = false;
}

static void on_reader_ready(void *arg)
{
	struct source *s = arg;

	if (s->on_ready)
		s->on_ready(s->on_ready_arg);
}

void source_set_loop(struct source *s, struct event_base *base, void (*on_ready)(void *), void *arg)
{
	reader_drop(s);
	s->base = base;
	s->on_ready = on_ready;
	s->on_ready_arg = arg;
}

static void zones_absent(struct source *s)
{
	s->is_open = false;
	for (size_t i = 0; i < s->n_zones; i++)
		s->zones[i].is_present = false;
}

void source_free(struct source *s)
{
	if (!s)
		return;
	reader_drop(s);
	free(s->zones);
	free(s->root);
	free(s);
}

void source_set_root(struct source *s, const char *root)
{
	reader_drop(s);
	zones_absent(s);
	free(s->root);
	s->root = xstrdup(root);
	/* Another source's raw values mean nothing against this one's. */
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

/* Map a freshly opened source's zones onto the kept records; adds records for zones never seen
 * before. */
static void zones_attach(struct source *s, const struct source_reading *rd)
{
	zones_absent(s);
	for (size_t i = 0; i < rd->n_zones; i++) {
		const struct source_reading_zone *rz = &rd->zones[i];
		struct source_zone *z = zone_find(s, rz->id);

		if (!z) {
			/* A tree has up to POWERCAP_ZONES_MAX packages and as many subzones. */
			if (s->n_zones >= 2 * POWERCAP_ZONES_MAX)
				continue;
			s->zones = xreallocarray(s->zones, s->n_zones + 1, sizeof(*s->zones));
			z = &s->zones[s->n_zones++];
			*z = (struct source_zone){ 0 };
			snprintf(z->id, sizeof(z->id), "%s", rz->id);
		}
		/* The name may change with a new tree (a host with other hardware). */
		snprintf(z->name, sizeof(z->name), "%s", rz->name);
		z->package = rz->package;
		z->is_package = rz->is_package;
		z->is_present = true;
	}
}

static int heartbeat_check(struct source *s, const struct source_reading *rd, uint64_t now_ns,
	uint64_t guest_interval_ms)
{
	const struct heartbeat *hb = &rd->hb;

	if (!rd->has_heartbeat) {
		s->has_heartbeat = false;
		s->is_estimated = false;
		return 0;
	}
	if (!s->has_heartbeat || hb->seq != s->hb_seq || s->hb_changed_ns == 0) {
		s->hb_seq = hb->seq;
		s->hb_changed_ns = now_ns;
	}
	s->has_heartbeat = true;
	s->host_interval_ms = hb->interval_ms;
	s->is_estimated = hb->is_estimated;
	uint64_t stale_ns =
		source_stale_after_ms(guest_interval_ms, hb->interval_ms) * NSEC_PER_MSEC;
	if (now_ns - s->hb_changed_ns >= stale_ns) {
		snprintf(s->problem, sizeof(s->problem),
			"%s: host daemon stopped (heartbeat seq %llu unchanged for %llu ms)",
			s->root, (unsigned long long)hb->seq,
			(unsigned long long)((now_ns - s->hb_changed_ns) / NSEC_PER_MSEC));
		return -ESTALE;
	}
	return 0;
}

static void zones_update(struct source *s, const struct source_reading *rd, uint64_t dt_ns)
{
	s->package_delta_uj = 0;
	for (size_t i = 0; i < rd->n_zones; i++) {
		const struct source_reading_zone *rz = &rd->zones[i];
		struct source_zone *z = zone_find(s, rz->id);
		uint64_t raw = rz->energy_uj;

		if (!z)
			continue;
		z->interval_uj = energy_counter_update(&z->counter, raw, &rz->limits, dt_ns, NULL);
		/* The served total is the tree's own counter, as node_exporter or Scaphandre
		 * reading the same share would report it, not the energy since this daemon started:
		 * it starts at the first value ever read and goes on by unwrapped deltas from there
		 * (so also across guest restarts, host restarts and trees that come back). */
		if (!z->has_base) {
			z->counter.total_uj = raw;
			z->has_base = true;
		}
		if (dt_ns > 0)
			z->power_w = (double)z->interval_uj * 1e3 / (double)dt_ns;
		if (z->is_package)
			s->package_delta_uj += z->interval_uj;
	}
}

/* Down: nothing counted this interval, the served totals stay. */
static void source_down(struct source *s)
{
	s->is_up = false;
	s->package_delta_uj = 0;
	for (size_t i = 0; i < s->n_zones; i++) {
		s->zones[i].interval_uj = 0;
		s->zones[i].power_w = 0;
	}
}

static int reader_get(struct source *s, struct source_reader **ret)
{
	if (!s->reader) {
		int r = tree_reader_new(s->root, s->base, on_reader_ready, s, &s->reader);
		if (r < 0) {
			snprintf(s->problem, sizeof(s->problem), "%s: cannot start its reader: %s",
				s->root, strerror(-r));
			return r;
		}
	}
	*ret = s->reader;
	return 0;
}

static int source_apply(struct source *s, const struct source_reading *rd, uint64_t now_ns,
	uint64_t guest_interval_ms)
{
	uint64_t dt_ns = s->has_sampled ? now_ns - s->last_sample_ns : 0;
	int r = rd->error;

	s->last_sample_ns = now_ns;
	s->interval_ns = dt_ns;
	s->has_sampled = true;
	if (r < 0) {
		snprintf(s->problem, sizeof(s->problem), "%s", rd->problem);
		if (rd->is_closed)
			zones_absent(s);
		source_down(s);
		return r;
	}
	if (rd->is_reopened) {
		zones_attach(s, rd);
		s->is_open = true;
		s->layout = rd->layout;
	}
	r = heartbeat_check(s, rd, now_ns, guest_interval_ms);
	if (r < 0) {
		source_down(s);
		return r;
	}
	zones_update(s, rd, dt_ns);
	s->is_up = true;
	s->problem[0] = '\0';
	return 0;
}

int source_finish(struct source *s, uint64_t now_ns, uint64_t guest_interval_ms)
{
	struct source_reading rd = { 0 };
	int r;

	if (!s->reader || !s->is_in_flight)
		return -EAGAIN;
	r = s->reader->ops->take(s->reader, &rd);
	if (r < 0)
		return r;
	s->is_in_flight = false;
	r = source_apply(s, &rd, now_ns, guest_interval_ms);
	source_reading_done(&rd);
	return r;
}

static int source_hangs(struct source *s, uint64_t now_ns)
{
	snprintf(s->problem, sizeof(s->problem), "%s: no answer for %llu ms (the source hangs)",
		s->root, (unsigned long long)((now_ns - s->requested_ns) / NSEC_PER_MSEC));
	source_down(s);
	return -ETIMEDOUT;
}

int source_begin(struct source *s, uint64_t now_ns, uint64_t guest_interval_ms)
{
	struct source_reader *rd;
	int r;

	if (s->is_in_flight) {
		/* Ready but not yet taken (its wake-up is still queued): this tick's reading. */
		r = source_finish(s, now_ns, guest_interval_ms);
		if (r != -EAGAIN)
			return r;
		/* Not ready a whole interval later: the file system hangs (a stalled 9p or
		 * virtiofs server). Serve what is known as down; ask again once it answers. */
		return source_hangs(s, now_ns);
	}
	r = reader_get(s, &rd);
	if (r < 0) {
		source_down(s);
		return r;
	}
	r = rd->ops->request(rd);
	if (r < 0) {
		snprintf(s->problem, sizeof(s->problem), "%s: %s", s->root, strerror(-r));
		source_down(s);
		return r;
	}
	s->is_in_flight = true;
	s->requested_ns = now_ns;
	r = source_finish(s, now_ns, guest_interval_ms);
	return r == -EAGAIN ? -EINPROGRESS : r;
}

int source_sample(struct source *s, uint64_t now_ns, uint64_t guest_interval_ms)
{
	uint64_t timeout_ns = MAX(guest_interval_ms, 1000) * NSEC_PER_MSEC;
	int r = source_begin(s, now_ns, guest_interval_ms);

	if (r != -EINPROGRESS)
		return r;
	if (s->reader->ops->wait(s->reader, timeout_ns) < 0)
		return source_hangs(s, now_ns + timeout_ns);
	return source_finish(s, now_ns, guest_interval_ms);
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
