/* The domain manager (see domains.h). Event callbacks only translate a libvirt event into a call
 * on the domain it names; a dropped connection is cleaned up and retried from timers on the loop,
 * never from inside libvirt's close callback. */
#include "hostd/domains.h"

#include <fcntl.h>

#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/log.h"
#include "common/util.h"
#include "common/prom.h"
#include "hostd/accounting.h"
#include "hostd/channel.h"
#include "hostd/domxml.h"
#include "hostd/host_config.h"

/* Where libvirt's qemu driver (system instance) records each domain's qemu pid. */
#define QEMU_PID_DIR "/run/libvirt/qemu"

struct domain {
	struct domains *owner;
	char *name;
	unsigned char uuid[VIR_UUID_BUFLEN];
	bool is_persistent;
	bool is_running;
	bool is_paused;
	bool is_seen; /* reconcile mark */
	enum mount_state mount;
	pid_t pid;	     /* qemu's, 0 when unknown or not running */
	bool has_cpu_reader; /* CPU time from libvirt (no host process known) */
	virDomainPtr vdom;   /* NULL while disconnected */
	struct acct_domain *acct;
	struct channel *channel;  /* owned by acct (its channel publisher); NULL: channel off */
	bool needs_channel_check; /* the deferred channel check (channel_check_cb) is due */
	bool is_unserved_logged;  /* no controller / refused: said once per domain */
};

struct domains {
	struct event_base *base;
	const struct host_config *cfg;
	struct accounting *acct;
	struct mounts *mounts;
	virConnectPtr conn;
	int event_id;
	bool has_close_cb;
	bool is_connected;
	bool is_qemu;
	bool is_failing; /* connection attempts failing: logged once per streak */
	bool is_read_only_logged;
	unsigned backoff_ms;
	struct event *reconnect_ev;
	struct event *dropped_ev;
	struct event *channel_ev; /* deferred channel checks: libvirt calls outside its callbacks */
	struct event *orphan_ev;  /* the periodic orphan sweep */
	void (*attempt_cb)(void *arg);
	void *attempt_arg;
	struct domain **v;
	size_t n, cap;
	/* Excluded while running: their shares stay until they stop (qemu holds the export). */
	char **kept;
	size_t n_kept;
};

static void libvirt_error(void *arg, virErrorPtr err)
{
	/* libvirt prints every error on stderr by default; the caller logs what matters. */
	if (err && err->message)
		log_debug("libvirt: %s", err->message);
}

static const char *last_error(void)
{
	const char *m = virGetLastErrorMessage();

	return m ? m : "unknown error";
}

static struct domain *domain_find(const struct domains *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (streq(d->v[i]->name, name))
			return d->v[i];
	return NULL;
}

static int read_qemu_pid(const char *name, pid_t *ret)
{
	_cleanup_free_ char *path = xasprintf(QEMU_PID_DIR "/%s.pid", name);
	char buf[32];
	uint64_t pid;
	size_t len;
	int r;

	r = read_file_at(AT_FDCWD, path, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	r = parse_u64_content(buf, len, &pid);
	if (r < 0 && len > 0 && buf[len - 1] != '\n')
		r = parse_u64(buf, &pid);
	if (r < 0 || pid == 0 || pid > INT32_MAX)
		return -EINVAL;
	*ret = (pid_t)pid;
	return 0;
}

/* The documented fallback for drivers without a host process per domain (the test driver,
 * remote hypervisors): libvirt's own cumulative CPU time of the domain. */
static int read_cpu_libvirt(void *arg, uint64_t *ret_ns)
{
	struct domain *dm = arg;
	virDomainInfo info;

	if (!dm->vdom)
		return -ENOTCONN;
	if (virDomainGetInfo(dm->vdom, &info) < 0)
		return -EIO;
	*ret_ns = info.cpuTime;
	return 0;
}

/* A share written in place (a plain export a running qemu held): try for the read-only tmpfs
 * again, mounted now if qemu is gone, adopted if the hook mounted it before a restart. */
static void domain_reshare(struct domains *d, struct domain *dm, bool is_running)
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

/* Look at the domain's channel from the loop, soon: never inside libvirt's event dispatch. */
static void channel_check_later(struct domains *d, struct domain *dm)
{
	static const struct timeval zero = { 0, 0 };

	if (!dm->channel)
		return;
	dm->needs_channel_check = true;
	evtimer_add(d->channel_ev, &zero);
}

static void channel_unserved(struct domain *dm, enum channel_state st, const char *reason)
{
	channel_set_unserved(dm->channel, st, reason);
	if (dm->is_unserved_logged)
		return;
	dm->is_unserved_logged = true;
	if (st == CHANNEL_NO_CONTROLLER)
		log_warn("domain %s: no virtio-serial controller, so no energy channel; run "
			 "'powerd-host attach %s --channel' and restart the domain (or use its "
			 "share)",
			dm->name, dm->name);
	else
		log_warn("domain %s: libvirt refused to hot-plug the energy channel: %s", dm->name,
			reason);
}

/* The live XML of a running domain says whether it has the channel (and qemu's socket for it)
 * and a controller to plug it into. */
static int channel_inspect(struct domain *dm, struct domxml_channel *ret)
{
	_cleanup_free_ char *xml = virDomainGetXMLDesc(dm->vdom, 0);

	if (!xml) {
		log_warn("domain %s: cannot read its live XML: %s", dm->name, last_error());
		return -EIO;
	}
	int r = domxml_channel_inspect(xml, ret);
	if (r < 0)
		log_warn("domain %s: cannot parse its live XML", dm->name);
	return r;
}

/* Hot-plug the channel if the domain lacks it (live only: the definition stays as it is), then
 * connect to the socket libvirt chose for it. */
static void channel_check(struct domain *dm)
{
	struct domxml_channel ch;

	if (!dm->vdom || !dm->is_running || channel_inspect(dm, &ch) < 0)
		return;
	if (!ch.has_channel && !ch.has_controller) {
		channel_unserved(dm, CHANNEL_NO_CONTROLLER, "no virtio-serial controller");
		goto out;
	}
	if (!ch.has_channel) {
		if (virDomainAttachDeviceFlags(
			    dm->vdom, DOMXML_CHANNEL_DEVICE, VIR_DOMAIN_AFFECT_LIVE) < 0) {
			channel_unserved(dm, CHANNEL_HOTPLUG_REFUSED, last_error());
			goto out;
		}
		log_info("domain %s: energy channel hot-plugged (live only)", dm->name);
		domxml_channel_done(&ch);
		if (channel_inspect(dm, &ch) < 0)
			return;
	}
	dm->is_unserved_logged = false;
	if (!ch.path)
		log_warn("domain %s: its energy channel has no unix socket in the live XML",
			dm->name);
	channel_connect_to(dm->channel, ch.path);
out:
	domxml_channel_done(&ch);
}

static void channel_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct domains *d = arg;

	for (size_t i = 0; i < d->n; i++) {
		struct domain *dm = d->v[i];
		if (!dm->needs_channel_check)
			continue;
		dm->needs_channel_check = false;
		channel_check(dm);
	}
}

static void domain_set_running(struct domains *d, struct domain *dm, bool is_running)
{
	bool was_running = dm->is_running;
	pid_t pid = 0;

	dm->is_running = is_running;
	if (is_running)
		channel_check_later(d, dm);
	else if (dm->channel)
		channel_set_unserved(dm->channel, CHANNEL_OFF, NULL);
	if (!is_running) {
		dm->pid = 0;
		dm->is_paused = false;
		dm->has_cpu_reader = false;
		if (was_running) {
			accounting_domain_set_pid(d->acct, dm->acct, 0);
			if (dm->is_persistent)
				domain_reshare(d, dm, false);
		}
		return;
	}
	/* Re-resolving what did not change would cost the domain one interval's CPU delta. */
	if (d->is_qemu && read_qemu_pid(dm->name, &pid) == 0) {
		if (was_running && pid == dm->pid)
			return;
		/* restarted while we were not listening */
		if (was_running)
			domain_reshare(d, dm, true);
		if (accounting_domain_set_pid(d->acct, dm->acct, pid) == 0) {
			dm->pid = pid;
			dm->has_cpu_reader = false;
			return;
		}
	}
	if (was_running && dm->has_cpu_reader)
		return;
	dm->pid = 0;
	accounting_domain_set_pid(d->acct, dm->acct, 0);
	accounting_domain_set_cpu_reader(dm->acct, read_cpu_libvirt, dm);
	dm->has_cpu_reader = true;
}

static void domain_set_vdom(struct domain *dm, virDomainPtr vdom)
{
	if (vdom)
		virDomainRef(vdom);
	if (dm->vdom)
		virDomainFree(dm->vdom);
	dm->vdom = vdom;
	if (vdom)
		virDomainGetUUID(vdom, dm->uuid);
}

/* Start tracking: share, tree, accounting. NULL when the domain is not tracked or its share
 * cannot be made (logged there). */
static struct domain *domain_track(
	struct domains *d, virDomainPtr vdom, bool is_persistent, bool is_running)
{
	const char *name = virDomainGetName(vdom);
	struct acct_domain *acct;
	enum mount_state ms;
	struct domain *dm;
	int r, fd;

	if (!name || !host_config_tracks(d->cfg, name))
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
	dm->is_persistent = is_persistent;
	dm->mount = ms;
	dm->acct = acct;
	if (d->cfg->channel == CHANNEL_MODE_AUTO && channel_new(d->base, name, &dm->channel) == 0)
		accounting_domain_set_publisher(
			acct, PUBLISH_CHANNEL, channel_publisher(dm->channel));
	domain_set_vdom(dm, vdom);
	domain_set_running(d, dm, is_running);
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = xreallocarray(d->v, d->cap, sizeof(*d->v));
	}
	d->v[d->n++] = dm;
	log_info("domain %s: tracked (%s, %s)", name, is_persistent ? "persistent" : "transient",
		is_running ? "running" : "shut off");
	return dm;
}

/* Stop tracking; with teardown the share goes too (the domain is gone for good). */
static void domain_drop(struct domains *d, struct domain *dm, bool teardown)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i] == dm) {
			d->v[i] = d->v[--d->n];
			break;
		}
	accounting_remove_domain(d->acct, dm->acct);
	if (teardown && dm->mount == MOUNT_TMPFS)
		mounts_teardown(d->mounts, dm->name);
	if (teardown)
		log_info("domain %s: no longer tracked", dm->name);
	domain_set_vdom(dm, NULL);
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

/* The domain is no longer tracked (domains.exclude, or no longer in include). Its share is
 * torn down, unless the domain runs: a running qemu holds its export, and unmounting it under
 * qemu freezes the guest's reads and fails its next start; that share stays, unwritten, until
 * the domain stops, and is adopted again (counters from its tree) if it is included again. */
static void domain_exclude(struct domains *d, struct domain *dm)
{
	if (!dm->is_running || dm->mount != MOUNT_TMPFS) {
		domain_drop(d, dm, true);
		return;
	}
	log_info("domain %s: no longer tracked; its share stays until the domain stops", dm->name);
	if (kept_find(d, dm->name) == SIZE_MAX) {
		d->kept = xreallocarray(d->kept, d->n_kept + 1, sizeof(*d->kept));
		d->kept[d->n_kept++] = xstrdup(dm->name);
	}
	domain_drop(d, dm, false);
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr vdom, int event, int detail, void *opaque)
{
	struct domains *d = opaque;
	const char *name = virDomainGetName(vdom);
	struct domain *dm;

	if (!name)
		return 0;
	dm = domain_find(d, name);
	log_debug("domain %s: lifecycle event %d detail %d", name, event, detail);
	switch (event) {
	case VIR_DOMAIN_EVENT_DEFINED:
		/* virsh domrename: the definition keeps the old share path, which went with the
		 * old name; only the operator's attach can point it at the new one. */
		if (detail == VIR_DOMAIN_EVENT_DEFINED_RENAMED)
			log_warn("domain %s: renamed; its share is now %s/%s: run 'powerd-host "
				 "attach %s' before starting it",
				name, d->cfg->share_dir, name, name);
		if (dm) {
			dm->is_persistent = true;
			domain_set_vdom(dm, vdom);
		} else {
			domain_track(d, vdom, true, virDomainIsActive(vdom) == 1);
		}
		break;
	case VIR_DOMAIN_EVENT_STARTED:
	case VIR_DOMAIN_EVENT_RESUMED:
		if (!dm) {
			domain_track(d, vdom, virDomainIsPersistent(vdom) == 1, true);
			break;
		}
		domain_set_vdom(dm, vdom);
		dm->is_paused = false;
		domain_set_running(d, dm, true);
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		if (dm)
			dm->is_paused = true;
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
	case VIR_DOMAIN_EVENT_CRASHED:
		if (!dm && kept_find(d, name) != SIZE_MAX)
			kept_release(d, kept_find(d, name));
		if (!dm)
			break;
		domain_set_running(d, dm, false);
		if (!dm->is_persistent)
			domain_drop(d, dm, true);
		break;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		if (!dm)
			break;
		dm->is_persistent = false;
		if (!dm->is_running)
			domain_drop(d, dm, true);
		break;
	default:
		break;
	}
	return 0;
}

/* Whether a domain of that name runs in libvirt now: its qemu may hold the export. Unknown
 * (an error) counts as running. */
static bool is_running_in_libvirt(struct domains *d, const char *name)
{
	virDomainPtr vdom = virDomainLookupByName(d->conn, name);

	if (!vdom) {
		virErrorPtr err = virGetLastError();
		return !(err && err->code == VIR_ERR_NO_DOMAIN);
	}
	bool is_active = virDomainIsActive(vdom) != 0;
	virDomainFree(vdom);
	return is_active;
}

/* Remove the shares no known domain owns (see DOMAINS_ORPHAN_GRACE_S). Connected only: without
 * libvirt's word a share's domain may be starting. */
static void sweep_orphans(struct domains *d)
{
	char **names = NULL;
	size_t n = 0;

	if (!d->conn || mounts_list(d->mounts, &names, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *name = names[i];
		if (domain_find(d, name) || kept_find(d, name) != SIZE_MAX ||
			is_running_in_libvirt(d, name))
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
	sweep_orphans(arg);
}

static bool is_listed(const char *name, virDomainPtr *list, int n)
{
	for (int i = 0; i < n; i++) {
		const char *other = virDomainGetName(list[i]);
		if (other && streq(other, name))
			return true;
	}
	return false;
}

int domains_reconcile(struct domains *d)
{
	virDomainPtr *list = NULL;
	int n;

	if (!d->conn)
		return -ENOTCONN;
	n = virConnectListAllDomains(d->conn, &list, 0);
	if (n < 0) {
		log_warn("cannot list the domains of %s: %s", d->cfg->libvirt_uri, last_error());
		return -EIO;
	}
	for (size_t i = 0; i < d->n; i++)
		d->v[i]->is_seen = false;
	for (int i = 0; i < n; i++) {
		const char *name = virDomainGetName(list[i]);
		bool is_persistent = virDomainIsPersistent(list[i]) == 1;
		bool is_running = virDomainIsActive(list[i]) == 1;
		struct domain *dm = name ? domain_find(d, name) : NULL;
		size_t k = name ? kept_find(d, name) : SIZE_MAX;

		if (k != SIZE_MAX && (!is_running || host_config_tracks(d->cfg, name))) {
			/* stopped: the share may go; included again: adopted just below */
			if (is_running)
				kept_remove(d, k);
			else
				kept_release(d, k);
		}
		if (!dm) {
			dm = domain_track(d, list[i], is_persistent, is_running);
		} else if (host_config_tracks(d->cfg, name)) {
			domain_set_vdom(dm, list[i]);
			dm->is_persistent = is_persistent;
			if (is_running || dm->is_running)
				domain_set_running(d, dm, is_running);
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
		if (!is_listed(d->kept[k], list, n))
			kept_release(d, k);
	for (int i = 0; i < n; i++)
		virDomainFree(list[i]);
	free(list);
	sweep_orphans(d);
	/* Gone while we were not listening (undefined, or transient and stopped), or excluded. */
	for (size_t i = d->n; i-- > 0;)
		if (!d->v[i]->is_seen)
			domain_drop(d, d->v[i], true);
	log_debug("reconcile: %d domains listed, %zu tracked", n, d->n);
	return 0;
}

static void schedule_reconnect(struct domains *d, unsigned delay_ms)
{
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	evtimer_add(d->reconnect_ev, &tv);
}

static void close_cb(virConnectPtr conn, int reason, void *opaque);

static void disconnect(struct domains *d)
{
	if (!d->conn)
		return;
	if (d->event_id >= 0)
		virConnectDomainEventDeregisterAny(d->conn, d->event_id);
	d->event_id = -1;
	if (d->has_close_cb)
		virConnectUnregisterCloseCallback(d->conn, close_cb);
	d->has_close_cb = false;
	for (size_t i = 0; i < d->n; i++)
		domain_set_vdom(d->v[i], NULL);
	virConnectClose(d->conn);
	d->conn = NULL;
	d->is_connected = false;
}

static void close_cb(virConnectPtr conn, int reason, void *opaque)
{
	struct domains *d = opaque;
	static const struct timeval zero = { 0, 0 };

	/* Inside libvirt's dispatch: only note it, clean up from the loop. */
	d->is_connected = false;
	evtimer_add(d->dropped_ev, &zero);
}

static void dropped_cb(evutil_socket_t fd, short what, void *arg)
{
	struct domains *d = arg;

	log_warn(
		"connection to %s lost, reconnecting in %u ms", d->cfg->libvirt_uri, d->backoff_ms);
	disconnect(d);
	schedule_reconnect(d, d->backoff_ms);
}

static void attempt_failed(struct domains *d, const char *what)
{
	if (!d->is_failing)
		log_warn("cannot %s %s: %s; retrying with backoff up to %u s", what,
			d->cfg->libvirt_uri, last_error(), DOMAINS_BACKOFF_MAX_MS / 1000);
	d->is_failing = true;
	disconnect(d);
	schedule_reconnect(d, d->backoff_ms);
	d->backoff_ms = MIN(d->backoff_ms * 2, DOMAINS_BACKOFF_MAX_MS);
}

/* Hot-plugging the channel is a write API: channel: auto asks for a read-write connection, and
 * falls back to a read-only one (no hot-plug, channels already there are still served). */
static virConnectPtr open_connection(struct domains *d)
{
	virConnectPtr conn;

	if (d->cfg->channel != CHANNEL_MODE_AUTO)
		return virConnectOpenReadOnly(d->cfg->libvirt_uri);
	conn = virConnectOpen(d->cfg->libvirt_uri);
	if (conn)
		return conn;
	conn = virConnectOpenReadOnly(d->cfg->libvirt_uri);
	if (conn && !d->is_read_only_logged)
		log_warn("no read-write connection to %s (%s): the energy channel cannot be "
			 "hot-plugged, only channels already defined are served",
			d->cfg->libvirt_uri, last_error());
	d->is_read_only_logged = conn != NULL;
	return conn;
}

static void connect_attempt(struct domains *d)
{
	const char *type;

	d->conn = open_connection(d);
	if (!d->conn) {
		attempt_failed(d, "connect to");
		goto out;
	}
	/* Drivers without keepalive (test, local in-process) answer -1: fine. */
	virConnectSetKeepAlive(d->conn, 5, 3);
	d->has_close_cb = virConnectRegisterCloseCallback(d->conn, close_cb, d, NULL) == 0;
	d->event_id = virConnectDomainEventRegisterAny(d->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), d, NULL);
	if (d->event_id < 0) {
		attempt_failed(d, "register lifecycle events on");
		goto out;
	}
	type = virConnectGetType(d->conn);
	d->is_qemu = type && streq(type, "QEMU");
	d->is_connected = true;
	if (d->is_failing)
		log_notice("connected to %s again", d->cfg->libvirt_uri);
	else
		log_info("connected to %s", d->cfg->libvirt_uri);
	d->is_failing = false;
	d->backoff_ms = DOMAINS_BACKOFF_MIN_MS;
	domains_reconcile(d);
out:
	if (d->attempt_cb)
		d->attempt_cb(d->attempt_arg);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	connect_attempt(arg);
}

int domains_new(struct event_base *base, const struct host_config *cfg, struct accounting *acct,
	struct domains **ret)
{
	struct domains *d = xcalloc(1, sizeof(*d));
	int r;

	d->base = base;
	d->cfg = cfg;
	d->acct = acct;
	d->event_id = -1;
	d->backoff_ms = DOMAINS_BACKOFF_MIN_MS;
	r = mounts_new(cfg->share_dir, cfg->tmpfs_size, &d->mounts);
	if (r < 0) {
		free(d);
		return r;
	}
	d->reconnect_ev = evtimer_new(base, reconnect_cb, d);
	d->dropped_ev = evtimer_new(base, dropped_cb, d);
	d->channel_ev = evtimer_new(base, channel_check_cb, d);
	d->orphan_ev = event_new(base, -1, EV_PERSIST, orphan_cb, d);
	if (!d->reconnect_ev || !d->dropped_ev || !d->channel_ev || !d->orphan_ev) {
		domains_free(d);
		return -ENOMEM;
	}
	const struct timeval sweep = { DOMAINS_ORPHAN_SWEEP_S, 0 };
	event_add(d->orphan_ev, &sweep);
	virSetErrorFunc(NULL, libvirt_error);
	*ret = d;
	return 0;
}

void domains_free(struct domains *d)
{
	if (!d)
		return;
	while (d->n > 0)
		domain_drop(d, d->v[d->n - 1], false);
	free(d->v);
	while (d->n_kept > 0)
		kept_remove(d, d->n_kept - 1);
	free(d->kept);
	disconnect(d);
	if (d->reconnect_ev)
		event_free(d->reconnect_ev);
	if (d->dropped_ev)
		event_free(d->dropped_ev);
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
	connect_attempt(d);
}

void domains_set_config(struct domains *d, const struct host_config *cfg)
{
	if (!streq(cfg->share_dir, mounts_share_dir(d->mounts)))
		log_warn("share_dir changed to %s: takes effect at the next start", cfg->share_dir);
	if (cfg->channel != d->cfg->channel)
		log_warn("channel changed: takes effect at the next start");
	d->cfg = cfg;
	if (d->conn) {
		domains_reconcile(d);
		return;
	}
	/* Disconnected: newly included domains wait for the reconnect's reconcile, newly
	 * excluded ones go now (running ones keep their share). */
	for (size_t i = d->n; i-- > 0;)
		if (!host_config_tracks(cfg, d->v[i]->name))
			domain_exclude(d, d->v[i]);
}

void domains_reconnect(struct domains *d, unsigned delay_ms)
{
	disconnect(d);
	evtimer_del(d->reconnect_ev);
	schedule_reconnect(d, delay_ms);
}

bool domains_is_connected(const struct domains *d)
{
	return d->is_connected;
}

size_t domains_count(const struct domains *d)
{
	return d->n;
}

unsigned domains_backoff_ms(const struct domains *d)
{
	return d->backoff_ms;
}

int domains_lookup(const struct domains *d, const char *name, struct domain_view *ret)
{
	const struct domain *dm = domain_find(d, name);

	if (!dm)
		return -ENOENT;
	*ret = (struct domain_view){ .is_persistent = dm->is_persistent,
		.is_running = dm->is_running,
		.is_paused = dm->is_paused,
		.mount = dm->mount,
		.channel = dm->channel ? channel_get_state(dm->channel) : CHANNEL_OFF,
		.channel_reason = dm->channel ? channel_reason(dm->channel) : "" };
	return 0;
}

static const char *mount_state_name(enum mount_state ms)
{
	return ms == MOUNT_TMPFS ? "tmpfs" : ms == MOUNT_IN_PLACE ? "in_place" : "none";
}

void domains_render(const struct domains *d, struct strbuf *out)
{
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
		"hotplug_refused, off).");
	for (size_t i = 0; i < d->n; i++) {
		const struct domain *dm = d->v[i];
		enum channel_state st = dm->channel ? channel_get_state(dm->channel) : CHANNEL_OFF;
		const char *tree[] = { "domain", dm->name, "transport", "tree", "state",
			mount_state_name(dm->mount), NULL };
		const char *chan[] = { "domain", dm->name, "transport", "channel", "state",
			channel_state_name(st), NULL };
		prom_sample(out, "powerd_domain_transport", tree, 1);
		prom_sample(out, "powerd_domain_transport", chan, 1);
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
		struct domain_view v = { .is_persistent = dm->is_persistent,
			.is_running = dm->is_running,
			.is_paused = dm->is_paused,
			.mount = dm->mount,
			.channel = dm->channel ? channel_get_state(dm->channel) : CHANNEL_OFF,
			.channel_reason = dm->channel ? channel_reason(dm->channel) : "" };

		cb(arg, dm->name, &v, dm->acct);
	}
}
