/* One powerd-host tick: host energy per zone, host and domain CPU time, the idle policy, the
 * exact split, then every domain's publishers (its tree, its channel); and the host metrics. Per
 * tick: one read per host zone, one of /proc/stat, one per domain, n_zones + 1 file replacements
 * per domain, no allocation. */
#include "hostd/accounting.h"

#include <math.h>
#include <time.h>

#include "common/attribution.h"
#include "common/log.h"
#include "common/prom.h"
#include "common/util.h"
#include "common/tree.h"
#include "hostd/cputime.h"
#include "hostd/idle_level.h"
#include "hostd/instance.h"
#include "hostd/publish.h"
#include "hostd/sensor.h"
#include "version.h"

struct acct_domain {
	char *name;
	size_t index;			       /* in accounting.domains */
	struct publisher *pubs[PUBLISH_SLOTS]; /* by enum publish_slot, NULL where none */
	struct cpu_source *cpu;
	int (*read_cpu_ns)(void *arg, uint64_t *ret_ns);
	void *read_cpu_arg;
	uint64_t last_cpu_ns;
	bool has_last_cpu;
	bool is_cpu_failing;
	bool is_cgroup_shared; /* its cgroup is another domain's too: read its process */
	uint64_t frac[SENSOR_ZONES_MAX];
	uint64_t total_uj[SENSOR_ZONES_MAX];
	uint64_t last_uj[SENSOR_ZONES_MAX]; /* this interval's share, for the power gauge */
};

/* The publishers' kinds follow, one per slot. */
enum { ERR_SENSOR, ERR_CPU, ERR_CGROUP, ERR_PUBLISH, ERR_KINDS = ERR_PUBLISH + PUBLISH_SLOTS };
static const char *const error_kinds[ERR_KINDS] = { "sensor", "cpu", "cgroup", "tree", "channel" };

struct accounting {
	const struct host_config *cfg;
	struct sensor *sensor;
	struct host_cpu *host_cpu;
	const char *zone_names[SENSOR_ZONES_MAX];
	size_t n_zones;

	struct acct_domain **domains;
	size_t n_domains, cap_domains;
	/* scratch for attribution_split, sized with the domain array */
	uint64_t *cpu_ns, *frac, *share_uj;

	void (*clock)(void *arg, uint64_t *ret_boot_ns, uint64_t *ret_mono_ns);
	void *clock_arg;
	bool has_last;
	uint64_t last_boot_ns, last_mono_ns, last_busy_ns, last_all_ns;
	uint64_t last_dt_ns;
	uint64_t host_total_uj[SENSOR_ZONES_MAX];
	uint64_t host_last_uj[SENSOR_ZONES_MAX];
	uint64_t unattributed_uj[SENSOR_ZONES_MAX]; /* host energy no domain got, summed by tick */
	struct idle_level *idle;		    /* learned under idle_power: host */
	bool has_gap;				    /* a failed read since the last good tick */
	uint64_t seq;
	char instance[CHANNEL_INSTANCE_LEN + 1];
	uint64_t last_tick_ns;
	uint64_t errors[ERR_KINDS];
	bool is_host_cpu_failing;
	/* within a listing: the cgroup mounts, read at its first pid (NULL until then) */
	unsigned listing_depth;
	struct cpu_mounts *listing_mounts;
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Below this the boot clock's lead over the monotonic one is read jitter, not a suspend. */
#define ACCOUNTING_SUSPEND_MIN_NS (10 * NSEC_PER_MSEC)

static void real_clock(void *arg, uint64_t *ret_boot_ns, uint64_t *ret_mono_ns)
{
	(void)arg;
	*ret_boot_ns = now_boottime_ns();
	*ret_mono_ns = now_monotonic_ns();
}

void accounting_set_clock(struct accounting *a,
	void (*clock)(void *arg, uint64_t *ret_boot_ns, uint64_t *ret_mono_ns), void *arg)
{
	a->clock = clock ? clock : real_clock;
	a->clock_arg = arg;
}

int accounting_new(const struct host_config *cfg, struct accounting **ret)
{
	struct accounting *a = xcalloc(1, sizeof(*a));
	int r;

	a->cfg = cfg;
	a->clock = real_clock;
	r = sensor_open(cfg->powercap_root, &a->sensor);
	if (r < 0)
		goto fail;
	r = host_cpu_open(cfg->proc_root, &a->host_cpu);
	if (r < 0)
		goto fail;
	/* until the daemon sets the one kept in share_dir */
	r = host_instance_random(a->instance);
	if (r < 0)
		goto fail;
	a->n_zones = sensor_n_zones(a->sensor);
	for (size_t z = 0; z < a->n_zones; z++)
		a->zone_names[z] = sensor_zone_name(a->sensor, z);
	a->idle = idle_level_new(cfg->share_dir, a->zone_names, a->n_zones);
	if (sensor_is_estimated(a->sensor) && cfg->max_watts <= 0)
		log_warn(
			"no powercap zone and estimate.max_watts is 0: every domain will read 0 J");
	*ret = a;
	return 0;
fail:
	accounting_free(a);
	return r;
}

static void domain_free(struct acct_domain *d)
{
	if (!d)
		return;
	for (size_t s = 0; s < PUBLISH_SLOTS; s++)
		publisher_free(d->pubs[s]);
	cpu_source_free(d->cpu);
	free(d->name);
	free(d);
}

void accounting_free(struct accounting *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n_domains; i++)
		domain_free(a->domains[i]);
	free(a->domains);
	free(a->cpu_ns);
	free(a->frac);
	free(a->share_uj);
	cpu_mounts_free(a->listing_mounts);
	idle_level_free(a->idle);
	sensor_free(a->sensor);
	host_cpu_free(a->host_cpu);
	free(a);
}

void accounting_set_config(struct accounting *a, const struct host_config *cfg)
{
	/* estimate watts and the idle policy are read at every tick; roots take a restart */
	a->cfg = cfg;
}

void accounting_listing_begin(struct accounting *a)
{
	a->listing_depth++;
}

void accounting_listing_end(struct accounting *a)
{
	if (a->listing_depth == 0 || --a->listing_depth > 0)
		return;
	cpu_mounts_free(a->listing_mounts);
	a->listing_mounts = NULL;
}

/* pid's CPU-time source; within a listing, against the mounts read at its first pid. */
static int open_cpu_source(
	struct accounting *a, pid_t pid, const char *own_cgroup, struct cpu_source **ret)
{
	if (a->listing_depth == 0)
		return cpu_source_open_in(
			a->cfg->proc_root, a->cfg->cgroup_root, pid, own_cgroup, ret);
	if (!a->listing_mounts)
		a->listing_mounts = cpu_mounts_read(a->cfg->proc_root, a->cfg->cgroup_root);
	return cpu_source_open_with(a->listing_mounts, pid, own_cgroup, ret);
}

void accounting_set_instance(struct accounting *a, const char *instance)
{
	snprintf(a->instance, sizeof(a->instance), "%s", instance);
}

const char *accounting_instance(const struct accounting *a)
{
	return a->instance;
}

int accounting_add_domain(
	struct accounting *a, const char *name, int tree_dirfd, struct acct_domain **ret)
{
	struct tree *t = NULL;
	int r;

	if (tree_dirfd >= 0) {
		r = tree_open(tree_dirfd, a->zone_names, a->n_zones, &t);
		if (r < 0) {
			log_warn("domain %s: cannot lay out its tree: %s", name, strerror(-r));
			a->errors[ERR_PUBLISH + PUBLISH_TREE]++;
			return r;
		}
	}
	if (a->n_domains == a->cap_domains) {
		a->cap_domains = a->cap_domains ? a->cap_domains * 2 : 16;
		a->domains = xreallocarray(a->domains, a->cap_domains, sizeof(*a->domains));
		a->cpu_ns = xreallocarray(a->cpu_ns, a->cap_domains, sizeof(uint64_t));
		a->frac = xreallocarray(a->frac, a->cap_domains, sizeof(uint64_t));
		a->share_uj = xreallocarray(a->share_uj, a->cap_domains, sizeof(uint64_t));
	}
	struct acct_domain *d = xcalloc(1, sizeof(*d));
	d->name = xstrdup(name);
	if (t) {
		for (size_t z = 0; z < a->n_zones; z++)
			d->total_uj[z] = tree_adopted_uj(t, z);
		d->pubs[PUBLISH_TREE] = publish_tree_new(t);
	}
	d->index = a->n_domains;
	a->domains[a->n_domains++] = d;
	if (ret)
		*ret = d;
	return 0;
}

void accounting_remove_domain(struct accounting *a, struct acct_domain *d)
{
	if (!d)
		return;
	size_t i = d->index;
	a->domains[i] = a->domains[--a->n_domains];
	a->domains[i]->index = i;
	domain_free(d);
}

int accounting_domain_set_tree(struct accounting *a, struct acct_domain *d, int tree_dirfd)
{
	struct tree *t = NULL;
	int r;

	r = tree_open(tree_dirfd, a->zone_names, a->n_zones, &t);
	if (r == 0)
		r = tree_write(t, d->total_uj, NULL);
	if (r < 0) {
		tree_free(t);
		log_warn("domain %s: cannot lay out its tree: %s", d->name, strerror(-r));
		a->errors[ERR_PUBLISH + PUBLISH_TREE]++;
		return r;
	}
	accounting_domain_set_publisher(d, PUBLISH_TREE, publish_tree_new(t));
	return 0;
}

void accounting_domain_set_publisher(
	struct acct_domain *d, enum publish_slot slot, struct publisher *p)
{
	publisher_free(d->pubs[slot]);
	d->pubs[slot] = p;
}

struct publisher *accounting_domain_publisher(const struct acct_domain *d, enum publish_slot slot)
{
	return d->pubs[slot];
}

/* A cgroup that is not the domain's own would give it other processes' CPU time (issue 10 #5):
 * read its process instead, count it, say so once. */
static void domain_cgroup_not_own(struct accounting *a, struct acct_domain *d, const char *why)
{
	a->errors[ERR_CGROUP]++;
	log_warn("domain %s: %s: CPU time from its qemu process %s instead, which misses vhost "
		 "and I/O threads outside it",
		d->name, why, cpu_source_path(d->cpu));
}

/* Two tracked domains in one cgroup: neither may read it (both would get the sum). */
static void domain_check_shared(struct accounting *a, struct acct_domain *d)
{
	bool is_shared = false;

	for (size_t i = 0; i < a->n_domains; i++) {
		struct acct_domain *o = a->domains[i];
		if (o == d || !o->cpu || !cpu_source_is_same_cgroup(d->cpu, o->cpu))
			continue;
		is_shared = true;
		/* tried once: a thousand domains in one cgroup cost no syscalls per check */
		if (o->is_cgroup_shared)
			continue;
		o->is_cgroup_shared = true;
		if (cpu_source_use_process(o->cpu) == 0) {
			o->has_last_cpu = false;
			_cleanup_free_ char *why =
				xasprintf("its cgroup is shared with domain %s", d->name);
			domain_cgroup_not_own(a, o, why);
		}
	}
	d->is_cgroup_shared = is_shared;
	if (is_shared && cpu_source_use_process(d->cpu) == 0)
		domain_cgroup_not_own(a, d, "its cgroup is shared with another domain");
}

int accounting_domain_set_pid(struct accounting *a, struct acct_domain *d, pid_t pid)
{
	return accounting_domain_set_pid_in(a, d, pid, NULL);
}

int accounting_domain_set_pid_in(
	struct accounting *a, struct acct_domain *d, pid_t pid, const char *own_cgroup)
{
	cpu_source_free(d->cpu);
	d->cpu = NULL;
	d->read_cpu_ns = NULL;
	d->has_last_cpu = false;
	d->is_cgroup_shared = false;
	if (pid <= 0)
		return 0;
	int r = open_cpu_source(a, pid, own_cgroup, &d->cpu);
	if (r < 0) {
		log_warn("domain %s: no CPU time for pid %d: %s", d->name, (int)pid, strerror(-r));
		return r;
	}
	if (cpu_source_has_foreign_cgroup(d->cpu) && own_cgroup) {
		_cleanup_free_ char *why = xasprintf("its cgroup is not %s", own_cgroup);
		domain_cgroup_not_own(a, d, why);
	} else if (cpu_source_has_foreign_cgroup(d->cpu)) {
		domain_cgroup_not_own(a, d,
			"its cgroup is not a per-domain one (the root, libvirtd's, or outside "
			"machine.slice and machine/)");
	}
	domain_check_shared(a, d);
	log_debug("domain %s: CPU time from %s (%s)", d->name, cpu_source_path(d->cpu),
		cpu_source_kind_name(cpu_source_kind(d->cpu)));
	return 0;
}

void accounting_domain_set_cpu_reader(
	struct acct_domain *d, int (*read_cpu_ns)(void *arg, uint64_t *ret_ns), void *arg)
{
	cpu_source_free(d->cpu);
	d->cpu = NULL;
	d->read_cpu_ns = read_cpu_ns;
	d->read_cpu_arg = arg;
	d->has_last_cpu = false;
}

const char *accounting_domain_cpu_source(const struct acct_domain *d)
{
	if (d->cpu)
		return cpu_source_kind_name(cpu_source_kind(d->cpu));
	return d->read_cpu_ns ? "libvirt" : NULL;
}

const char *accounting_domain_name(const struct acct_domain *d)
{
	return d->name;
}

uint64_t accounting_domain_energy_uj(const struct acct_domain *d, size_t zone)
{
	return zone < SENSOR_ZONES_MAX ? d->total_uj[zone] : 0;
}

/* The domain's CPU time since the last tick; 0 when it cannot be read (logged per streak). */
static uint64_t domain_cpu_delta(struct accounting *a, struct acct_domain *d)
{
	uint64_t ns = 0, delta = 0;
	int r;

	if (d->cpu)
		r = cpu_source_read(d->cpu, &ns);
	else if (d->read_cpu_ns)
		r = d->read_cpu_ns(d->read_cpu_arg, &ns);
	else
		return 0;
	if (r < 0) {
		a->errors[ERR_CPU]++;
		if (!d->is_cpu_failing)
			log_warn("domain %s: cannot read CPU time%s%s: %s", d->name,
				d->cpu ? " from " : "", d->cpu ? cpu_source_path(d->cpu) : "",
				strerror(-r));
		d->is_cpu_failing = true;
		/* the next good read is a baseline: its delta would span the whole streak */
		d->has_last_cpu = false;
		return 0;
	}
	if (d->is_cpu_failing)
		log_info("domain %s: CPU time readable again", d->name);
	d->is_cpu_failing = false;
	/* a counter that went back (the process restarted) starts a new baseline */
	if (d->has_last_cpu && ns >= d->last_cpu_ns)
		delta = ns - d->last_cpu_ns;
	d->last_cpu_ns = ns;
	d->has_last_cpu = true;
	return delta;
}

/* The idle level of zone z under idle_power: host: estimate.idle_watts for the package zone
 * (the whole host's idle), else the learned one. false: none known yet. */
static bool idle_level_w(const struct accounting *a, size_t z, double *ret_w)
{
	if (a->cfg->idle_watts > 0 && z == 0) {
		*ret_w = a->cfg->idle_watts;
		return true;
	}
	return a->idle && idle_level_get(a->idle, z, ret_w);
}

/* An interval whose average power is the host's: not the first, no reset in it (counted 0), no
 * failed read before it, not stretched (a stall over two intervals) and not a suspend (the
 * time the host ran well short of the time that passed). */
static bool is_clean_interval(const struct accounting *a, const struct sensor_interval *iv)
{
	uint64_t interval_ns = a->cfg->interval_ms * NSEC_PER_MSEC;

	return !a->has_gap && !sensor_is_partial(a->sensor) && iv->elapsed_ns > 0 &&
	       iv->elapsed_ns <= 2 * interval_ns &&
	       iv->running_ns + interval_ns / 2 >= iv->elapsed_ns;
}

/* Under idle_power: host, the energy of the interval that is idle power and stays unattributed.
 * A suspended host draws no idle power: the idle part is over the time it ran. */
static uint64_t idle_part_uj(struct accounting *a, size_t z, uint64_t energy_uj,
	const struct sensor_interval *iv, bool is_clean)
{
	double idle_w;

	if (a->cfg->idle_power != IDLE_POLICY_HOST || iv->running_ns == 0)
		return 0;
	if (is_clean) {
		double util = iv->all_ns ? (double)iv->busy_ns / (double)iv->all_ns : 1;
		idle_level_observe(
			a->idle, z, (double)energy_uj * 1e3 / (double)iv->elapsed_ns, util);
	}
	if (!idle_level_w(a, z, &idle_w))
		return 0;
	double idle_uj = idle_w * (double)iv->running_ns / 1e3;
	return idle_uj >= (double)energy_uj ? energy_uj : (uint64_t)idle_uj;
}

/* The tick's energy, computed once, to every publisher of every domain. */
static void publish(struct accounting *a)
{
	struct heartbeat hb = {
		.seq = a->seq,
		.interval_ms = a->cfg->interval_ms,
		.time_ms = now_realtime_ms(),
		.is_estimated = sensor_is_estimated(a->sensor),
	};
	memcpy(hb.instance, a->instance, sizeof(hb.instance));
	const struct publish_tick tick = {
		.hb = &hb,
		.zone_names = a->zone_names,
		.n_zones = a->n_zones,
	};

	for (size_t i = 0; i < a->n_domains; i++) {
		struct acct_domain *d = a->domains[i];
		for (size_t s = 0; s < PUBLISH_SLOTS; s++)
			if (d->pubs[s] &&
				publisher_publish(d->pubs[s], d->name, &tick, d->total_uj) < 0)
				a->errors[ERR_PUBLISH + s]++;
	}
}

int accounting_tick(struct accounting *a)
{
	uint64_t t0 = thread_cpu_ns();
	uint64_t now_boot, now_mono, busy, all;
	uint64_t delta_uj[SENSOR_ZONES_MAX];
	int r;

	a->clock(a->clock_arg, &now_boot, &now_mono);
	r = host_cpu_read(a->host_cpu, &busy, &all);
	if (r < 0) {
		a->errors[ERR_CPU]++;
		if (!a->is_host_cpu_failing)
			log_warn("cannot read host CPU time from %s/stat: %s", a->cfg->proc_root,
				strerror(-r));
		a->is_host_cpu_failing = true;
		a->has_gap = a->has_last;
		goto out;
	}
	a->is_host_cpu_failing = false;

	/* Elapsed time counts suspend (CLOCK_BOOTTIME), as RAPL does: with CLOCK_MONOTONIC the
	 * first interval after a resume would hold the suspend's energy in one interval's time.
	 * It is the time run plus a suspend, if any: the two clocks are read a moment apart, and
	 * that jitter must not make the estimate's power (energy over run time) differ from its
	 * gauge's (over elapsed time). */
	uint64_t run = a->has_last ? now_mono - a->last_mono_ns : 0;
	uint64_t boot = a->has_last ? now_boot - a->last_boot_ns : 0;
	uint64_t dt = boot > run + ACCOUNTING_SUSPEND_MIN_NS ? boot : run;
	/* differences modulo 2^64: the ns totals of a big host wrap after years */
	uint64_t dbusy = a->has_last ? busy - a->last_busy_ns : 0;
	uint64_t dall = a->has_last ? all - a->last_all_ns : 0;
	const struct sensor_interval iv = {
		.elapsed_ns = dt,
		.running_ns = run,
		.busy_ns = dbusy,
		.all_ns = dall,
	};
	r = sensor_sample(a->sensor, &iv, a->cfg->idle_watts, a->cfg->max_watts, delta_uj);
	if (r < 0) {
		/* baselines stay: the next good tick covers this interval too */
		a->errors[ERR_SENSOR]++;
		a->has_gap = a->has_last;
		goto out;
	}
	a->last_boot_ns = now_boot;
	a->last_mono_ns = now_mono;
	a->last_busy_ns = busy;
	a->last_all_ns = all;
	a->last_dt_ns = dt;

	bool is_clean = a->has_last && is_clean_interval(a, &iv);
	a->has_gap = false;
	for (size_t i = 0; i < a->n_domains; i++)
		a->cpu_ns[i] = domain_cpu_delta(a, a->domains[i]);
	if (!a->has_last) {
		/* first tick: CPU baselines only, and a tree with a heartbeat */
		a->has_last = true;
		for (size_t i = 0; i < a->n_domains; i++)
			a->cpu_ns[i] = 0;
	}

	for (size_t z = 0; z < a->n_zones; z++) {
		uint64_t energy = delta_uj[z] - idle_part_uj(a, z, delta_uj[z], &iv, is_clean);
		for (size_t i = 0; i < a->n_domains; i++)
			a->frac[i] = a->domains[i]->frac[z];
		attribution_split(energy, dbusy, a->cpu_ns, a->n_domains, a->frac, a->share_uj);
		uint64_t left_uj = delta_uj[z];
		for (size_t i = 0; i < a->n_domains; i++) {
			struct acct_domain *d = a->domains[i];
			d->frac[z] = a->frac[i];
			d->total_uj[z] += a->share_uj[i];
			d->last_uj[z] = a->share_uj[i];
			left_uj -= a->share_uj[i];
		}
		a->unattributed_uj[z] += left_uj;
		a->host_total_uj[z] += delta_uj[z];
		a->host_last_uj[z] = delta_uj[z];
	}
	if (a->cfg->idle_power == IDLE_POLICY_HOST)
		idle_level_sync(a->idle, now_boot);
	a->seq++;
	publish(a);
	r = 0;
out:
	a->last_tick_ns = thread_cpu_ns() - t0;
	return r;
}

size_t accounting_n_zones(const struct accounting *a)
{
	return a->n_zones;
}

const char *accounting_zone_name(const struct accounting *a, size_t zone)
{
	return zone < a->n_zones ? a->zone_names[zone] : NULL;
}

uint64_t accounting_host_energy_uj(const struct accounting *a, size_t zone)
{
	return zone < a->n_zones ? a->host_total_uj[zone] : 0;
}

static double power_w(uint64_t uj, uint64_t dt_ns)
{
	return dt_ns ? (double)uj * 1e3 / (double)dt_ns : 0;
}

double accounting_host_power_w(const struct accounting *a, size_t zone)
{
	return zone < a->n_zones ? power_w(a->host_last_uj[zone], a->last_dt_ns) : 0;
}

bool accounting_is_estimated(const struct accounting *a)
{
	return sensor_is_estimated(a->sensor);
}

size_t accounting_n_domains(const struct accounting *a)
{
	return a->n_domains;
}

uint64_t accounting_last_tick_ns(const struct accounting *a)
{
	return a->last_tick_ns;
}

static void render_idle_level(const struct accounting *a, struct strbuf *out)
{
	prom_family(out, "powerd_idle_level_watts", PROM_GAUGE,
		"Idle power per zone that idle_power: host leaves unattributed, in watts.");
	for (size_t z = 0; z < a->n_zones; z++) {
		const char *labels[] = { "zone", a->zone_names[z], NULL };
		double w = 0;
		idle_level_w(a, z, &w);
		prom_sample(out, "powerd_idle_level_watts", labels, w);
	}
	prom_family(out, "powerd_idle_level_learning", PROM_GAUGE,
		"1 while a zone's idle level is learned and the host has not been seen idle: it "
		"may "
		"be a loaded power (set estimate.idle_watts).");
	for (size_t z = 0; z < a->n_zones; z++) {
		const char *labels[] = { "zone", a->zone_names[z], NULL };
		bool is_learning =
			!(a->cfg->idle_watts > 0 && z == 0) && idle_level_is_learning(a->idle, z);
		prom_sample(out, "powerd_idle_level_learning", labels, is_learning ? 1 : 0);
	}
}

void accounting_render(const struct accounting *a, bool libvirt_connected, struct strbuf *out)
{
	prom_family(out, "powerd_host_energy_joules_total", PROM_COUNTER,
		"Energy of the host per zone (summed over packages), in joules.");
	for (size_t z = 0; z < a->n_zones; z++) {
		const char *labels[] = { "zone", a->zone_names[z], NULL };
		prom_sample(out, "powerd_host_energy_joules_total", labels,
			(double)a->host_total_uj[z] / 1e6);
	}
	prom_family(out, "powerd_host_power_watts", PROM_GAUGE,
		"Average power of the host per zone over the last interval, in watts.");
	for (size_t z = 0; z < a->n_zones; z++) {
		const char *labels[] = { "zone", a->zone_names[z], NULL };
		prom_sample(out, "powerd_host_power_watts", labels, accounting_host_power_w(a, z));
	}
	prom_family(out, "powerd_host_unattributed_energy_joules_total", PROM_COUNTER,
		"Host energy attributed to no domain per zone (idle power under idle_power: host, "
		"CPU time outside domains), in joules; with every domain's, the host's.");
	for (size_t z = 0; z < a->n_zones; z++) {
		const char *labels[] = { "zone", a->zone_names[z], NULL };
		prom_sample(out, "powerd_host_unattributed_energy_joules_total", labels,
			(double)a->unattributed_uj[z] / 1e6);
	}
	prom_family(out, "powerd_domain_energy_joules_total", PROM_COUNTER,
		"Energy attributed to a domain per zone by its share of host CPU time, in joules.");
	for (size_t i = 0; i < a->n_domains; i++)
		for (size_t z = 0; z < a->n_zones; z++) {
			const char *labels[] = { "domain", a->domains[i]->name, "zone",
				a->zone_names[z], NULL };
			prom_sample(out, "powerd_domain_energy_joules_total", labels,
				(double)a->domains[i]->total_uj[z] / 1e6);
		}
	prom_family(out, "powerd_domain_power_watts", PROM_GAUGE,
		"Average power attributed to a domain per zone over the last interval, in watts.");
	for (size_t i = 0; i < a->n_domains; i++)
		for (size_t z = 0; z < a->n_zones; z++) {
			const char *labels[] = { "domain", a->domains[i]->name, "zone",
				a->zone_names[z], NULL };
			prom_sample(out, "powerd_domain_power_watts", labels,
				power_w(a->domains[i]->last_uj[z], a->last_dt_ns));
		}
	prom_family(out, "powerd_domain_cpu_source", PROM_GAUGE,
		"Where a running domain's CPU time is read, as the source label (cgroup2, cgroup1, "
		"process, libvirt); value 1.");
	for (size_t i = 0; i < a->n_domains; i++) {
		const char *src = accounting_domain_cpu_source(a->domains[i]);
		const char *labels[] = { "domain", a->domains[i]->name, "source", src, NULL };
		if (src)
			prom_sample(out, "powerd_domain_cpu_source", labels, 1);
	}
	if (a->cfg->idle_power == IDLE_POLICY_HOST)
		render_idle_level(a, out);
	prom_family(out, "powerd_domains", PROM_GAUGE, "Domains whose energy is tracked.");
	prom_sample(out, "powerd_domains", NULL, (double)a->n_domains);
	prom_family(out, "powerd_host_energy_estimated", PROM_GAUGE,
		"1 when host energy is estimated from CPU use (no powercap zone), 0 when "
		"measured.");
	prom_sample(out, "powerd_host_energy_estimated", NULL, accounting_is_estimated(a) ? 1 : 0);
	prom_family(out, "powerd_tick_duration_seconds", PROM_GAUGE,
		"CPU time the last accounting tick took, in seconds.");
	prom_sample(out, "powerd_tick_duration_seconds", NULL, (double)a->last_tick_ns / 1e9);
	prom_family(out, "powerd_errors_total", PROM_COUNTER,
		"Failed reads or writes by kind: sensor (host energy), cpu (CPU time), tree "
		"(domain trees), channel (domain channels), cgroup (a domain's cgroup was not its "
		"own: its process was read).");
	for (size_t k = 0; k < ERR_KINDS; k++) {
		const char *labels[] = { "kind", error_kinds[k], NULL };
		prom_sample(out, "powerd_errors_total", labels, (double)a->errors[k]);
	}
	prom_family(out, "powerd_libvirt_connected", PROM_GAUGE,
		"1 while powerd-host is connected to libvirt.");
	prom_sample(out, "powerd_libvirt_connected", NULL, libvirt_connected ? 1 : 0);
	prom_family(out, "powerd_build_info", PROM_GAUGE, "powerd's version, as a label; value 1.");
	const char *labels[] = { "version", POWERD_VERSION, NULL };
	prom_sample(out, "powerd_build_info", labels, 1);
}
