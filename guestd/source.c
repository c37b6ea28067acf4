/* The served side of the guest's source: readings from a reader become wrap-aware, monotonic
 * per-zone totals, with freshness judged from the heartbeat. No I/O here: the reader does it. */
#include "guestd/source.h"

#include <stdio.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"
#include "guestd/channel_reader.h"
#include "guestd/guest_config.h"
#include "guestd/tree_reader.h"

void source_reading_done(struct source_reading *r)
{
	if (!r)
		return;
	free(r->zones);
	*r = (struct source_reading){ 0 };
}

/* Where auto looks: the system's paths, or under a test's fixture root. */
static void auto_paths_set(struct source *s)
{
	const char *test_root = getenv("POWERD_GUEST_TEST_ROOT");

	if (!test_root || test_root[0] != '/')
		test_root = "";
	s->ports_dir = xasprintf("%s%s", test_root, CHANNEL_SYSFS_PORTS);
	s->dev_dir = xasprintf("%s/dev", test_root);
	s->auto_tree = xasprintf("%s%s", test_root, GUEST_DEFAULT_TREE);
}

static bool is_auto(const struct source *s)
{
	return streq(s->spec, GUEST_SOURCE_AUTO);
}

/* The path to read when nothing is found yet: auto starts with the tree. */
static const char *spec_path(const struct source *s)
{
	return is_auto(s) ? s->auto_tree : s->spec;
}

struct source *source_new(const char *spec)
{
	struct source *s = xcalloc(1, sizeof(*s));

	s->spec = xstrdup(spec);
	auto_paths_set(s);
	s->root = xstrdup(spec_path(s));
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
	free(s->spec);
	free(s->root);
	free(s->ports_dir);
	free(s->dev_dir);
	free(s->auto_tree);
	free(s);
}

/* Read path from now on: served totals continue, each counter's next value is a new baseline. */
static void source_switch(struct source *s, const char *path)
{
	reader_drop(s);
	zones_absent(s);
	if (s->root != path) {
		free(s->root);
		s->root = xstrdup(path);
	}
	/* Another source's raw values mean nothing against this one's. */
	for (size_t i = 0; i < s->n_zones; i++)
		s->zones[i].counter.has_last = false;
	s->has_heartbeat = false;
	s->hb_changed_ns = 0;
}

void source_set_root(struct source *s, const char *spec)
{
	free(s->spec);
	s->spec = xstrdup(spec);
	source_switch(s, spec_path(s));
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

static struct source_zone *zone_find_absent(struct source *s, const char *name, unsigned package)
{
	for (size_t i = 0; i < s->n_zones; i++)
		if (!s->zones[i].is_present && s->zones[i].package == package &&
			streq(s->zones[i].name, name))
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

		if (!z && (z = zone_find_absent(s, rz->name, rz->package)))
			/* The same zone from another kind of source (the share, then the channel):
			 * one served series, its total going on. */
			snprintf(z->id, sizeof(z->id), "%s", rz->id);
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
	if (now_ns - s->hb_changed_ns >= stale_ns && rd->instance[0]) {
		snprintf(s->problem, sizeof(s->problem),
			"%s: no new record for %llu ms (last seq %llu): the host stopped sending",
			s->root, (unsigned long long)((now_ns - s->hb_changed_ns) / NSEC_PER_MSEC),
			(unsigned long long)hb->seq);
		return -ESTALE;
	}
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
		enum counter_step step;
		uint64_t last_raw = z->counter.last_raw;

		if (z->has_resume_offset && rd->instance[0] &&
			streq(rd->instance, s->seed_instance) && !z->counter.has_last &&
			raw + z->resume_offset_uj >= z->counter.total_uj)
			z->counter.total_uj = raw + z->resume_offset_uj;
		z->has_resume_offset = false;

		z->interval_uj = energy_counter_update(&z->counter, raw, &rz->limits, dt_ns, &step);
		if (step == COUNTER_RESET && rd->instance[0] && !s->has_logged_rebase) {
			log_notice("%s: %s went down (%llu to %llu uJ): rebased, the served total "
				   "goes on",
				s->root, z->name, (unsigned long long)last_raw,
				(unsigned long long)raw);
			s->has_logged_rebase = true;
		} else if (step == COUNTER_OK) {
			s->has_logged_rebase = false;
		}
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

static int reader_new(struct source *s, bool is_port, struct source_reader **ret)
{
	s->is_channel = is_port;
	if (is_port)
		return channel_reader_new(s->root, s->base, ret);
	return tree_reader_new(s->root, s->base, on_reader_ready, s, ret);
}

/* A configured path is a port when it is under /dev/ or is not a directory (a FIFO in tests). */
static bool is_port_path(const char *path)
{
	struct stat st;

	return startswith(path, "/dev/") || (stat(path, &st) == 0 && !S_ISDIR(st.st_mode));
}

bool source_may_be_channel(const struct source *s)
{
	return is_auto(s) || is_port_path(s->spec);
}

/* auto: the port when it is there (it may be hot-plugged at any time), else the tree. */
static void auto_choose(struct source *s)
{
	char port[512];
	bool has_port = channel_port_find(s->ports_dir, s->dev_dir, CHANNEL_PORT_NAME, port,
				sizeof(port)) == 0;

	if (has_port && (!s->is_channel || !streq(s->root, port))) {
		log_info("energy channel %s (%s): reading it", port, CHANNEL_PORT_NAME);
		source_switch(s, port);
		s->is_channel = true;
	} else if (!has_port && s->is_channel && s->reader && s->reader->ops->is_gone &&
		   s->reader->ops->is_gone(s->reader)) {
		log_info("energy channel gone: reading %s", s->auto_tree);
		source_switch(s, s->auto_tree);
		s->is_channel = false;
	}
}

static int reader_get(struct source *s, struct source_reader **ret)
{
	if (!s->reader) {
		bool is_port = is_auto(s) ? s->is_channel : is_port_path(s->root);
		int r = reader_new(s, is_port, &s->reader);
		if (r < 0) {
			s->reader = NULL;
			snprintf(s->problem, sizeof(s->problem), "%s: cannot start its reader: %s",
				s->root, strerror(-r));
			return r;
		}
	}
	*ret = s->reader;
	return 0;
}

/* Counters from another host (a restart of powerd-host with a new share_dir, a reboot, a
 * migration): this reading is a new baseline, the served totals go on from where they are. */
static void instance_check(struct source *s, const struct source_reading *rd)
{
	if (!rd->instance[0])
		return;
	if (s->instance[0] && !streq(s->instance, rd->instance)) {
		log_notice(
			"%s: counters of another host instance (%s, was %s): rebased, the served "
			"totals go on",
			s->root, rd->instance, s->instance);
		for (size_t i = 0; i < s->n_zones; i++)
			s->zones[i].counter.has_last = false;
	}
	snprintf(s->instance, sizeof(s->instance), "%s", rd->instance);
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
	instance_check(s, rd);
	r = heartbeat_check(s, rd, now_ns, guest_interval_ms);
	if (r < 0) {
		source_down(s);
		return r;
	}
	zones_update(s, rd, dt_ns);
	s->seed_instance[0] = '\0';
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

	if (is_auto(s))
		auto_choose(s);
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
	/* Generous: a big tree under valgrind on a loaded machine takes a second. */
	uint64_t timeout_ns = MAX(guest_interval_ms, 3000) * NSEC_PER_MSEC;
	int r = source_begin(s, now_ns, guest_interval_ms);

	if (r != -EINPROGRESS)
		return r;
	if (s->reader->ops->wait(s->reader, timeout_ns) < 0)
		return source_hangs(s, now_ns + timeout_ns);
	return source_finish(s, now_ns, guest_interval_ms);
}

void source_seed(struct source *s, const char *instance, const struct source_seed_zone *zones,
	size_t n_zones)
{
	for (size_t i = 0; i < n_zones; i++) {
		const struct source_seed_zone *sz = &zones[i];
		struct source_zone *z = NULL;

		for (size_t j = 0; j < s->n_zones && !z; j++)
			if (streq(s->zones[j].name, sz->name))
				z = &s->zones[j];
		if (!z) {
			if (s->n_zones >= 2 * POWERCAP_ZONES_MAX)
				continue;
			s->zones = xreallocarray(s->zones, s->n_zones + 1, sizeof(*s->zones));
			z = &s->zones[s->n_zones++];
			/* No id: the first reading's zone of that name takes this record over. */
			*z = (struct source_zone){ .is_package = streq(sz->name, "package-0") };
			snprintf(z->name, sizeof(z->name), "%s", sz->name);
		}
		if (!z->has_base || z->counter.total_uj < sz->total_uj) {
			z->counter.total_uj = sz->total_uj;
			z->has_base = true;
		}
		if (sz->has_offset && !z->has_resume_offset) {
			z->has_resume_offset = true;
			z->resume_offset_uj = sz->offset_uj;
		}
	}
	if (instance && instance[0] && !s->seed_instance[0]) {
		snprintf(s->seed_instance, sizeof(s->seed_instance), "%s", instance);
		/* A reading of another instance is then logged as a rebase. */
		if (!s->instance[0])
			snprintf(s->instance, sizeof(s->instance), "%s", instance);
	}
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
