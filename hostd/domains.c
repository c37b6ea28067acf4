/* The domain tracking every manager shares (see domains.h and manager.h): shares, accounting,
 * the channel publisher and its deferred checks, kept and orphan shares, include/exclude, lookup
 * and rendering. Where domains come from is the manager's (d->ops): nothing here knows libvirt or
 * Proxmox. */
#include "hostd/domains.h"

#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "common/prom.h"
#include "hostd/accounting.h"
#include "hostd/channel.h"
#include "hostd/domain_info.h"
#include "hostd/host_config.h"
#include "hostd/manager.h"

struct domains {
	struct event_base *base;
	const struct host_config *cfg;
	struct accounting *acct;
	struct mounts *mounts;
	const struct manager_ops *ops;
	struct manager *m;
	struct event *channel_ev; /* deferred channel checks: outside the manager's callbacks */
	struct event *orphan_ev;  /* the periodic orphan sweep */
	void (*attempt_cb)(void *arg);
	void *attempt_arg;
	struct domain **v; /* in the order tracked, but a dropped one's place takes the last */
	size_t n, cap;
	/* v by name (domains_find is called for every domain of every listing): open addressing,
	 * linear probing, at most half full; idx_cap a power of two */
	struct domain **idx;
	size_t idx_cap;
	/* Excluded while running: their shares stay until they stop (qemu holds the export). */
	char **kept;
	size_t n_kept;
};

struct event_base *domains_base(const struct domains *d)
{
	return d->base;
}

const struct host_config *domains_config(const struct domains *d)
{
	return d->cfg;
}

struct accounting *domains_accounting(const struct domains *d)
{
	return d->acct;
}

static size_t name_hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
	/* mixed, since the slot takes the low bits: FNV's are alike for names that differ only in
	 * their last digits (vmids) */
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	return (size_t)h;
}

/* The slot of name in the index, or the empty slot it would take. */
static size_t index_slot(const struct domains *d, const char *name)
{
	size_t mask = d->idx_cap - 1;

	for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask)
		if (!d->idx[i] || streq(d->idx[i]->name, name))
			return i;
}

static void index_add(struct domains *d, struct domain *dm)
{
	if (2 * (d->n + 1) > d->idx_cap) {
		struct domain **old = d->idx;
		size_t old_cap = d->idx_cap;

		d->idx_cap = old_cap ? old_cap * 2 : 32;
		d->idx = xcalloc(d->idx_cap, sizeof(*d->idx));
		for (size_t i = 0; i < old_cap; i++)
			if (old[i])
				d->idx[index_slot(d, old[i]->name)] = old[i];
		free(old);
	}
	size_t i = index_slot(d, dm->name);
	if (!d->idx[i]) /* a name is tracked once; the first one stays found */
		d->idx[i] = dm;
}

/* Out of the index; the entries after it that probed past its slot move back (no tombstones). */
static void index_remove(struct domains *d, const struct domain *dm)
{
	size_t mask = d->idx_cap - 1;
	size_t i;

	if (!d->idx || d->idx[i = index_slot(d, dm->name)] != dm)
		return;
	d->idx[i] = NULL;
	for (size_t j = (i + 1) & mask; d->idx[j]; j = (j + 1) & mask) {
		size_t home = name_hash(d->idx[j]->name) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			d->idx[i] = d->idx[j];
			d->idx[j] = NULL;
			i = j;
		}
	}
}

struct domain *domains_find(const struct domains *d, const char *name)
{
	return d->idx ? d->idx[index_slot(d, name)] : NULL;
}

struct domain *const *domains_all(const struct domains *d, size_t *ret_n)
{
	*ret_n = d->n;
	return d->v;
}

/* A share written in place (a plain export a running qemu held): try for the read-only tmpfs
 * again, mounted now if qemu is gone, adopted if the hook mounted it before a restart. */
void domains_reshare(struct domains *d, struct domain *dm, bool is_running)
{
	enum mount_state ms;
	int r, fd;

	if (dm->mount != MOUNT_IN_PLACE)
		return;
	r = mounts_prepare(d->mounts, dm->name, is_running, &fd, &ms);
	if (r < 0)
		return;
	if (ms != MOUNT_IN_PLACE) {
		if (accounting_domain_set_tree(d->acct, dm->acct, fd) == 0)
			dm->mount = ms;
		else if (!is_running) /* back to the directory the tree is still written in */
			mounts_teardown(d->mounts, dm->name);
	}
	close(fd);
}

int domains_set_pid(struct domains *d, struct domain *dm, pid_t pid, const char *own_cgroup)
{
	return accounting_domain_set_pid_in(d->acct, dm->acct, pid, own_cgroup);
}

/* Look at the domain's channel from the loop, soon: never inside a manager's event dispatch. */
void domains_channel_check_later(struct domains *d, struct domain *dm)
{
	static const struct timeval zero = { 0, 0 };

	if (!dm->channel)
		return;
	dm->needs_channel_check = true;
	evtimer_add(d->channel_ev, &zero);
}

/* A check may block on its manager for a while (a QMP session that gets no answer: up to its
 * 0.5 s budget; a libvirt call): after DOMAINS_CHANNEL_BATCH_MS the rest waits for the loop's next
 * turn, so that ticks, the watchdog and events go on between checks, however many domains are
 * due (a restart with every VM's QMP hung). */
static void channel_check_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval zero = { 0, 0 };
	struct domains *d = arg;
	uint64_t start_ns = now_monotonic_ns();

	for (size_t i = 0; i < d->n; i++) {
		struct domain *dm = d->v[i];
		if (!dm->needs_channel_check)
			continue;
		if (now_monotonic_ns() - start_ns >= DOMAINS_CHANNEL_BATCH_MS * NSEC_PER_MSEC) {
			/* libevent's cached time is the turn's start: behind every timer due */
			event_base_update_cache_time(d->base);
			evtimer_add(d->channel_ev, &zero);
			return;
		}
		dm->needs_channel_check = false;
		if (dm->is_running)
			d->ops->channel_check(d->m, dm);
	}
}

void domains_set_running(struct domains *d, struct domain *dm, bool is_running)
{
	bool was_running = dm->is_running;

	dm->is_running = is_running;
	if (is_running)
		domains_channel_check_later(d, dm);
	else if (dm->channel)
		channel_set_unserved(dm->channel, CHANNEL_OFF, NULL);
	if (!is_running) {
		dm->is_unserved_logged = false; /* said again at the next start */
		dm->pid = 0;
		dm->is_paused = false;
		dm->has_cpu_reader = false;
		if (was_running) {
			accounting_domain_set_pid(d->acct, dm->acct, 0);
			if (dm->is_persistent)
				domains_reshare(d, dm, false);
		}
		return;
	}
	d->ops->set_cpu(d->m, dm, was_running);
}

/* include/exclude, on the title too where the manager names domains twice */
static bool tracks(const struct domains *d, const char *name, const char *title)
{
	return host_config_tracks_titled(d->cfg, name, d->ops->is_title_filtered ? title : NULL);
}

struct domain *domains_track(struct domains *d, const char *name, const char *title,
	bool is_persistent, bool is_running, void *ref)
{
	struct acct_domain *acct;
	enum mount_state ms;
	struct domain *dm;
	int r, fd;

	if (!name || !tracks(d, name, title))
		return NULL;
	r = mounts_prepare(d->mounts, name, is_running, &fd, &ms);
	if (r < 0)
		return NULL;
	r = accounting_add_domain(d->acct, name, fd, &acct);
	close(fd);
	if (r < 0) {
		log_err("domain %s: cannot set up its tree: %s", name, strerror(-r));
		/* Untracked, nothing would ever unmount it; the next try (or the hook) mounts
		 * again. A running qemu may hold it: that one stays. */
		if (ms == MOUNT_TMPFS && !is_running)
			mounts_teardown(d->mounts, name);
		return NULL;
	}
	dm = xcalloc(1, sizeof(*dm));
	dm->owner = d;
	dm->name = xstrdup(name);
	dm->title = title ? xstrdup(title) : NULL;
	dm->is_persistent = is_persistent;
	dm->mount = ms;
	dm->acct = acct;
	dm->info = domain_info_new();
	if (d->cfg->channel == CHANNEL_MODE_AUTO && channel_new(d->base, name, &dm->channel) == 0)
		accounting_domain_set_publisher(
			acct, PUBLISH_CHANNEL, channel_publisher(dm->channel));
	d->ops->domain_init(d->m, dm, ref);
	domains_set_running(d, dm, is_running);
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = xreallocarray(d->v, d->cap, sizeof(*d->v));
	}
	index_add(d, dm);
	d->v[d->n++] = dm;
	log_info("domain %s: tracked (%s, %s)", name, is_persistent ? "persistent" : "transient",
		is_running ? "running" : "shut off");
	return dm;
}

void domains_drop(struct domains *d, struct domain *dm, bool teardown)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i] == dm) {
			d->v[i] = d->v[--d->n];
			break;
		}
	index_remove(d, dm);
	accounting_remove_domain(d->acct, dm->acct);
	if (teardown && dm->mount == MOUNT_TMPFS)
		mounts_teardown(d->mounts, dm->name);
	if (teardown)
		log_info("domain %s: no longer tracked", dm->name);
	d->ops->domain_done(d->m, dm);
	domain_info_free(dm->info);
	free(dm->title);
	free(dm->name);
	free(dm);
}

static size_t kept_find(const struct domains *d, const char *name)
{
	for (size_t i = 0; i < d->n_kept; i++)
		if (streq(d->kept[i], name))
			return i;
	return SIZE_MAX;
}

static void kept_remove(struct domains *d, size_t i)
{
	free(d->kept[i]);
	d->kept[i] = d->kept[--d->n_kept];
}

/* A kept share whose domain stopped or went: now it may go. */
static void kept_release(struct domains *d, size_t i)
{
	mounts_teardown(d->mounts, d->kept[i]);
	log_info("domain %s: stopped while excluded, its share is removed", d->kept[i]);
	kept_remove(d, i);
}

void domains_untracked_stopped(struct domains *d, const char *name)
{
	size_t k = kept_find(d, name);

	if (k != SIZE_MAX)
		kept_release(d, k);
}

/* The domain is no longer tracked (domains.exclude, or no longer in include). Its share is
 * torn down, unless the domain runs: a running qemu holds its export, and unmounting it under
 * qemu freezes the guest's reads and fails its next start; that share stays, unwritten, until
 * the domain stops, and is adopted again (counters from its tree) if it is included again. */
static void domain_exclude(struct domains *d, struct domain *dm)
{
	if (!dm->is_running || dm->mount != MOUNT_TMPFS) {
		domains_drop(d, dm, true);
		return;
	}
	log_info("domain %s: no longer tracked; its share stays until the domain stops", dm->name);
	if (kept_find(d, dm->name) == SIZE_MAX) {
		d->kept = xreallocarray(d->kept, d->n_kept + 1, sizeof(*d->kept));
		d->kept[d->n_kept++] = xstrdup(dm->name);
	}
	domains_drop(d, dm, false);
}

/* Remove the shares no known domain owns (see DOMAINS_ORPHAN_GRACE_S). Connected only: without
 * the manager's word a share's domain may be starting. */
void domains_sweep_orphans(struct domains *d)
{
	char **names = NULL;
	size_t n = 0;

	if (!d->ops->is_connected(d->m) || mounts_list(d->mounts, &names, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *name = names[i];
		if (domains_find(d, name) || kept_find(d, name) != SIZE_MAX ||
			d->ops->may_run(d->m, name))
			continue;
		int r = mounts_teardown_if_older(d->mounts, name, DOMAINS_ORPHAN_GRACE_S);
		if (r == 0)
			log_info("domain %s: its share had no domain (a failed start, or one that "
				 "stopped while powerd-host was down): removed",
				name);
		else if (r != -EBUSY)
			log_warn("domain %s: cannot remove its orphan share: %s", name,
				strerror(-r));
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void orphan_cb(evutil_socket_t fd, short what, void *arg)
{
	domains_sweep_orphans(arg);
}

static bool is_listed(const char *name, const struct manager_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].name && streq(v[i].name, name))
			return true;
	return false;
}

void domains_apply(struct domains *d, const struct manager_entry *v, size_t n)
{
	accounting_listing_begin(d->acct);
	for (size_t i = 0; i < d->n; i++)
		d->v[i]->is_seen = false;
	for (size_t i = 0; i < n; i++) {
		const char *name = v[i].name;
		bool is_persistent = v[i].is_persistent;
		bool is_running = v[i].is_running;
		struct domain *dm = name ? domains_find(d, name) : NULL;
		size_t k = name ? kept_find(d, name) : SIZE_MAX;

		bool is_included = name && tracks(d, name, v[i].title);

		if (k != SIZE_MAX && (!is_running || is_included)) {
			/* stopped: the share may go; included again: adopted just below */
			if (is_running)
				kept_remove(d, k);
			else
				kept_release(d, k);
		}
		if (!dm) {
			dm = domains_track(
				d, name, v[i].title, is_persistent, is_running, v[i].ref);
		} else if (is_included && v[i].is_unchanged) {
			/* nothing new since the last listing: nothing to do */
		} else if (is_included) {
			d->ops->domain_update(d->m, dm, v[i].ref);
			dm->is_persistent = is_persistent;
			if (is_running || dm->is_running)
				domains_set_running(d, dm, is_running);
		} else {
			dm->is_running = is_running;
			domain_exclude(d, dm);
			dm = NULL;
		}
		if (dm)
			dm->is_seen = true;
	}
	/* Kept shares of domains no longer listed at all (transient, stopped meanwhile). */
	for (size_t k = d->n_kept; k-- > 0;)
		if (!is_listed(d->kept[k], v, n))
			kept_release(d, k);
	/* Gone while we were not listening (undefined, or transient and stopped), or excluded. */
	for (size_t i = d->n; i-- > 0;)
		if (!d->v[i]->is_seen)
			domains_drop(d, d->v[i], true);
	accounting_listing_end(d->acct);
	log_debug("reconcile: %zu domains listed, %zu tracked", n, d->n);
}

int domains_reconcile(struct domains *d)
{
	return d->ops->reconcile(d->m);
}

void domains_attempt_done(struct domains *d)
{
	if (d->attempt_cb)
		d->attempt_cb(d->attempt_arg);
}

static const struct manager_ops *manager_for(const struct host_config *cfg)
{
	return host_config_manager(cfg) == MANAGER_PROXMOX ? &manager_proxmox_ops
							   : &manager_libvirt_ops;
}

int domains_new(struct event_base *base, const struct host_config *cfg, struct accounting *acct,
	struct domains **ret)
{
	struct domains *d = xcalloc(1, sizeof(*d));
	int r;

	d->base = base;
	d->cfg = cfg;
	d->acct = acct;
	d->ops = manager_for(cfg);
	r = mounts_new(cfg->share_dir, cfg->tmpfs_size, &d->mounts);
	if (r < 0) {
		free(d);
		return r;
	}
	d->channel_ev = evtimer_new(base, channel_check_cb, d);
	d->orphan_ev = event_new(base, -1, EV_PERSIST, orphan_cb, d);
	if (!d->channel_ev || !d->orphan_ev) {
		domains_free(d);
		return -ENOMEM;
	}
	r = d->ops->create(d, &d->m);
	if (r < 0) {
		domains_free(d);
		return r;
	}
	const struct timeval sweep = { DOMAINS_ORPHAN_SWEEP_S, 0 };
	event_add(d->orphan_ev, &sweep);
	*ret = d;
	return 0;
}

void domains_free(struct domains *d)
{
	if (!d)
		return;
	while (d->n > 0)
		domains_drop(d, d->v[d->n - 1], false);
	free(d->v);
	free(d->idx);
	while (d->n_kept > 0)
		kept_remove(d, d->n_kept - 1);
	free(d->kept);
	if (d->m)
		d->ops->destroy(d->m);
	if (d->channel_ev)
		event_free(d->channel_ev);
	if (d->orphan_ev)
		event_free(d->orphan_ev);
	mounts_free(d->mounts);
	free(d);
}

void domains_set_attempt_cb(struct domains *d, void (*cb)(void *arg), void *arg)
{
	d->attempt_cb = cb;
	d->attempt_arg = arg;
}

void domains_start(struct domains *d)
{
	d->ops->start(d->m);
}

void domains_set_config(struct domains *d, const struct host_config *cfg)
{
	if (!streq(cfg->share_dir, mounts_share_dir(d->mounts)))
		log_warn("share_dir changed to %s: takes effect at the next start", cfg->share_dir);
	if (cfg->channel != d->cfg->channel)
		log_warn("channel changed: takes effect at the next start");
	d->cfg = cfg;
	if (d->ops->reconcile(d->m) != -ENOTCONN)
		return;
	/* Disconnected: newly included domains wait for the reconnect's reconcile, newly
	 * excluded ones go now (running ones keep their share). */
	for (size_t i = d->n; i-- > 0;)
		if (!tracks(d, d->v[i]->name, d->v[i]->title))
			domain_exclude(d, d->v[i]);
}

void domains_reconnect(struct domains *d, unsigned delay_ms)
{
	d->ops->reconnect(d->m, delay_ms);
}

bool domains_is_connected(const struct domains *d)
{
	return d->ops->is_connected(d->m);
}

const char *domains_manager_name(const struct domains *d)
{
	return d->ops->name;
}

size_t domains_count(const struct domains *d)
{
	return d->n;
}

unsigned domains_backoff_ms(const struct domains *d)
{
	return d->ops->backoff_ms(d->m);
}

static void domain_view_of(const struct domain *dm, struct domain_view *ret)
{
	*ret = (struct domain_view){ .is_persistent = dm->is_persistent,
		.is_running = dm->is_running,
		.is_paused = dm->is_paused,
		.mount = dm->mount,
		.channel = dm->channel ? channel_get_state(dm->channel) : CHANNEL_OFF,
		.channel_reason = dm->channel ? channel_reason(dm->channel) : "",
		.title = dm->title };
}

int domains_lookup(const struct domains *d, const char *name, struct domain_view *ret)
{
	const struct domain *dm = domains_find(d, name);

	if (!dm)
		return -ENOENT;
	domain_view_of(dm, ret);
	return 0;
}
static const char *mount_state_name(enum mount_state ms)
{
	return ms == MOUNT_TMPFS ? "tmpfs" : ms == MOUNT_IN_PLACE ? "in_place" : "none";
}

/* Why the channel is not served, as a label of its transport sample: only where there is a
 * reason (an empty label is no label to Prometheus). connecting has one only where the manager
 * waits on purpose (Proxmox: QMP busy, the VM locked by qemu-server); libvirt's has none. */
static void render_channel_transport(const struct domain *dm, struct strbuf *out)
{
	enum channel_state st = dm->channel ? channel_get_state(dm->channel) : CHANNEL_OFF;
	const char *reason = dm->channel ? channel_reason(dm->channel) : "";
	const char *chan[] = { "domain", dm->name, "transport", "channel", "state",
		channel_state_name(st), "reason", reason, NULL };

	if (!reason[0] || (st != CHANNEL_NO_CONTROLLER && st != CHANNEL_HOTPLUG_REFUSED &&
				  st != CHANNEL_NO_HOOKSCRIPT && st != CHANNEL_CONNECTING))
		chan[6] = NULL;
	prom_sample(out, "powerd_domain_transport", chan, 1);
}

void domains_render(const struct domains *d, struct strbuf *out)
{
	domain_info_render_family(out);
	for (size_t i = 0; i < d->n; i++)
		domain_info_render(out, d->v[i]->name, d->v[i]->info);
	prom_family(out, "powerd_domain_channel_connected", PROM_GAUGE,
		"1 while powerd-host is connected to the domain's energy channel.");
	for (size_t i = 0; i < d->n; i++) {
		const struct domain *dm = d->v[i];
		const char *labels[] = { "domain", dm->name, NULL };
		bool is_connected =
			dm->channel && channel_get_state(dm->channel) == CHANNEL_CONNECTED;
		prom_sample(out, "powerd_domain_channel_connected", labels, is_connected ? 1 : 0);
	}
	prom_family(out, "powerd_domain_transport", PROM_GAUGE,
		"Each way a domain's energy is published and its state, value 1: transport tree "
		"(state tmpfs, in_place, none) and channel (connected, connecting, no_controller, "
		"hotplug_refused, no_hookscript, off; reason: why no_controller, hotplug_refused, "
		"no_hookscript, or connecting where powerd-host waits on purpose).");
	for (size_t i = 0; i < d->n; i++) {
		const struct domain *dm = d->v[i];
		const char *tree[] = { "domain", dm->name, "transport", "tree", "state",
			mount_state_name(dm->mount), NULL };
		prom_sample(out, "powerd_domain_transport", tree, 1);
		render_channel_transport(dm, out);
	}
	prom_family(out, "powerd_domain_channel_records_total", PROM_COUNTER,
		"Records written to the domain's energy channel (outcome sent), or dropped because "
		"the socket had no room or was gone (outcome dropped).");
	for (size_t i = 0; i < d->n; i++) {
		const struct domain *dm = d->v[i];
		if (!dm->channel)
			continue;
		const char *sent[] = { "domain", dm->name, "outcome", "sent", NULL };
		const char *dropped[] = { "domain", dm->name, "outcome", "dropped", NULL };
		prom_sample(out, "powerd_domain_channel_records_total", sent,
			(double)channel_records_sent(dm->channel));
		prom_sample(out, "powerd_domain_channel_records_total", dropped,
			(double)channel_records_dropped(dm->channel));
	}
}

void domains_foreach(const struct domains *d,
	void (*cb)(void *arg, const char *name, const struct domain_view *v,
		const struct acct_domain *acct),
	void *arg)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct domain *dm = d->v[i];
		struct domain_view v;

		domain_view_of(dm, &v);
		cb(arg, dm->name, &v, dm->acct);
	}
}
