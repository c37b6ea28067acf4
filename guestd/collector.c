/* A sampling tick: source, in-guest attribution, exposition. */
#include "guestd/collector.h"

#include <stdio.h>

#include "common/log.h"
#include "guestd/exporter.h"
#include "guestd/tree_out.h"
#include "version.h"

/* Keep *out if it is still at path, else make it anew there (none for ""). Where the channel may
 * be read, its directory is made at once: a reader started before the port shows finds it. */
static void output_apply(struct collector *c, struct tree_out **out, const char *key,
	const char *path, bool has_heartbeat)
{
	if (*out && !streq(tree_out_path(*out), path)) {
		tree_out_free(*out);
		*out = NULL;
	}
	if (!*out && path[0]) {
		*out = tree_out_new(key, path, has_heartbeat);
		if (source_may_be_channel(c->source))
			(void)tree_out_prepare(*out);
	}
}

static void collector_apply(struct collector *c, const struct guest_config *cfg)
{
	_cleanup_free_ char *powercap =
		cfg->sysfs_out[0] ? xasprintf("%s/class/powercap", cfg->sysfs_out) : xstrdup("");

	output_apply(c, &c->tree_out, "tree_out", cfg->tree_out, true);
	/* As the kernel's: no heartbeat file. */
	output_apply(c, &c->sysfs_out, "sysfs_out", powercap, false);
	c->metric_names = cfg->metric_names;
	c->interval_ms = cfg->interval_ms;
	free(c->proc_root);
	free(c->cgroup_root);
	c->proc_root = xstrdup(cfg->proc_root);
	c->cgroup_root = xstrdup(cfg->cgroup_root);
	if (c->attribution != cfg->attribution) {
		ledger_free(&c->ledger);
		c->attribution = cfg->attribution;
	}
}

struct collector *collector_new(const struct guest_config *cfg)
{
	struct collector *c = xcalloc(1, sizeof(*c));

	c->source = source_new(cfg->source);
	c->attribution = cfg->attribution;
	collector_apply(c, cfg);
	/* A restart goes on from what the last run laid out: readers never see it go back. */
	if (c->tree_out)
		(void)tree_out_seed(c->tree_out, c->source);
	if (c->sysfs_out)
		(void)tree_out_seed(c->sysfs_out, c->source);
	return c;
}

void collector_free(struct collector *c)
{
	if (!c)
		return;
	source_free(c->source);
	tree_out_free(c->tree_out);
	tree_out_free(c->sysfs_out);
	ledger_free(&c->ledger);
	free(c->proc_root);
	free(c->cgroup_root);
	strbuf_done(&c->exposition);
	free(c);
}

void collector_reconfigure(struct collector *c, const struct guest_config *cfg)
{
	if (!streq(c->source->spec, cfg->source))
		source_set_root(c->source, cfg->source);
	/* Other roots are other counters: start the ledger again, keeping nothing stale. */
	if (!streq(c->proc_root, cfg->proc_root) || !streq(c->cgroup_root, cfg->cgroup_root))
		ledger_free(&c->ledger);
	collector_apply(c, cfg);
}

static void attribute(struct collector *c)
{
	struct cpu_samples samples = { 0 };
	uint64_t busy_ns;
	int r;

	if (c->attribution == GUEST_ATTR_NONE)
		return;
	r = cpuacct_busy_ns(c->proc_root, &busy_ns);
	if (r >= 0) {
		if (c->attribution == GUEST_ATTR_UNITS)
			r = cpuacct_units(c->cgroup_root, &samples);
		else
			r = cpuacct_processes(
				c->proc_root, c->metric_names == GUEST_NAMES_SCAPHANDRE, &samples);
	}
	if (r < 0) {
		if (!c->attribution_failed)
			log_warn("attribution by %s: cannot read %s: %s",
				c->attribution == GUEST_ATTR_UNITS ? "units" : "processes",
				c->attribution == GUEST_ATTR_UNITS ? c->cgroup_root : c->proc_root,
				strerror(-r));
		c->attribution_failed = true;
		/* Nothing attributed this interval; keep the served totals. */
		return;
	}
	if (c->attribution_failed)
		log_notice("attribution works again");
	c->attribution_failed = false;
	ledger_update(&c->ledger, c->source->package_delta_uj, busy_ns, &samples);
}

static void log_transition(struct collector *c)
{
	bool is_up = c->source->is_up;

	if (c->has_logged_state && is_up == c->was_up)
		return;
	if (!is_up)
		log_warn("%s", c->source->problem);
	else if (c->has_logged_state)
		log_notice("%s: readable again", c->source->root);
	else
		log_info("reading %s", c->source->root);
	c->was_up = is_up;
	c->has_logged_state = true;
}

/* The tick's reading is accounted (or the source is down): attribute, render, tell. */
static void collector_done(struct collector *c)
{
	log_transition(c);
	attribute(c);
	/* A share-fed guest has its tree already; while the source is down the heartbeat stops. */
	if (c->source->is_channel && c->source->is_up) {
		if (c->tree_out)
			tree_out_write(c->tree_out, c->source, c->interval_ms);
		if (c->sysfs_out)
			tree_out_write(c->sysfs_out, c->source, c->interval_ms);
	}
	strbuf_reset(&c->exposition);
	exporter_render(&c->exposition,
		&(struct exporter_view){
			.source = c->source,
			.ledger = c->attribution == GUEST_ATTR_NONE ? NULL : &c->ledger,
			.attribution = c->attribution,
			.metric_names = c->metric_names,
			.interval_ns = c->source->interval_ns,
			.version = POWERD_VERSION,
		});
	if (c->on_update)
		c->on_update(c->on_update_arg);
}

static void on_source_ready(void *arg)
{
	struct collector *c = arg;

	/* -EAGAIN: already taken (by a waiting tick, or by the next tick's begin). */
	if (source_finish(c->source, now_monotonic_ns(), c->interval_ms) != -EAGAIN)
		collector_done(c);
}

void collector_set_loop(
	struct collector *c, struct event_base *base, void (*on_update)(void *), void *arg)
{
	source_set_loop(c->source, base, on_source_ready, c);
	c->on_update = on_update;
	c->on_update_arg = arg;
}

void collector_begin(struct collector *c, uint64_t now_ns)
{
	if (source_begin(c->source, now_ns, c->interval_ms) != -EINPROGRESS)
		collector_done(c);
}

int collector_tick(struct collector *c, uint64_t now_ns)
{
	int r = source_sample(c->source, now_ns, c->interval_ms);

	collector_done(c);
	return r;
}

void collector_status(const struct collector *c, char *buf, size_t size)
{
	if (c->source->is_up)
		snprintf(buf, size, "reading %s: %.1f W", c->source->root,
			source_power_w(c->source));
	else
		snprintf(buf, size, "%s", c->source->problem);
}
