/* libvirt's domain manager (manager.h): a connection with lifecycle events, a full listing at
 * start-up and after every reconnect, and the energy channel hot-plugged through libvirt. Event
 * callbacks only translate a libvirt event into a call on the domain it names; a dropped
 * connection is cleaned up and retried from timers on the loop, never from inside libvirt's close
 * callback. */
#include <fcntl.h>

#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/log.h"
#include "common/util.h"
#include "hostd/accounting.h"
#include "hostd/channel.h"
#include "hostd/domain_info.h"
#include "hostd/domains.h"
#include "hostd/domxml.h"
#include "hostd/host_config.h"
#include "hostd/manager.h"

/* Where libvirt's qemu driver (system instance) records each domain's qemu pid. */
#define QEMU_PID_DIR "/run/libvirt/qemu"

/* A tracked domain's libvirt side (struct domain's priv). */
struct lv_domain {
	unsigned char uuid[VIR_UUID_BUFLEN];
	virDomainPtr vdom; /* NULL while disconnected */
};

struct manager {
	struct domains *d;
	virConnectPtr conn;
	int event_id;
	int metadata_event_id; /* -1: none (a driver without the event: read at start only) */
	bool has_close_cb;
	bool is_connected;
	bool is_qemu;
	bool is_failing; /* connection attempts failing: logged once per streak */
	bool is_read_only_logged;
	unsigned backoff_ms;
	struct event *reconnect_ev;
	struct event *dropped_ev;
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

static const char *uri(const struct manager *m)
{
	return domains_config(m->d)->libvirt_uri;
}

static struct lv_domain *lv(const struct domain *dm)
{
	return dm->priv;
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

	if (!lv(dm)->vdom)
		return -ENOTCONN;
	if (virDomainGetInfo(lv(dm)->vdom, &info) < 0)
		return -EIO;
	*ret_ns = info.cpuTime;
	return 0;
}

/* Why a domain without a virtio-serial controller has no channel, and its fix: Nova regenerates
 * its domains' XML, so attach cannot help there; the image property is Nova's only switch (it
 * adds the guest agent's channel, and libvirt a controller with it). */
#define NO_CONTROLLER_REASON "no virtio-serial controller: powerd-host attach --channel, restart"
#define NO_CONTROLLER_REASON_NOVA                                                                  \
	"no virtio-serial controller: a Nova instance; its image needs hw_qemu_guest_agent=yes"

static void channel_unserved(struct domain *dm, enum channel_state st, const char *reason)
{
	channel_set_unserved(dm->channel, st, reason);
	if (dm->is_unserved_logged)
		return;
	dm->is_unserved_logged = true;
	if (st == CHANNEL_NO_CONTROLLER && dm->info->is_nova)
		log_warn("domain %s: no virtio-serial controller, so no energy channel (its "
			 "host-side series are exact without it); it is a Nova instance: set "
			 "hw_qemu_guest_agent=yes on its image (Nova then adds the guest agent's "
			 "channel, and with it a controller) and rebuild it or boot a new one",
			dm->name);
	else if (st == CHANNEL_NO_CONTROLLER)
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
	_cleanup_free_ char *xml = virDomainGetXMLDesc(lv(dm)->vdom, 0);

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
static void lv_channel_check(struct manager *m, struct domain *dm)
{
	struct domxml_channel ch;

	if (!lv(dm)->vdom || !dm->is_running || channel_inspect(dm, &ch) < 0)
		return;
	if (!ch.has_channel && !ch.has_controller) {
		channel_unserved(dm, CHANNEL_NO_CONTROLLER,
			dm->info->is_nova ? NO_CONTROLLER_REASON_NOVA : NO_CONTROLLER_REASON);
		goto out;
	}
	if (!ch.has_channel) {
		if (virDomainAttachDeviceFlags(
			    lv(dm)->vdom, DOMXML_CHANNEL_DEVICE, VIR_DOMAIN_AFFECT_LIVE) < 0) {
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

static void lv_set_cpu(struct manager *m, struct domain *dm, bool was_running)
{
	pid_t pid = 0;

	/* Re-resolving what did not change would cost the domain one interval's CPU delta. */
	if (m->is_qemu && read_qemu_pid(dm->name, &pid) == 0) {
		if (was_running && pid == dm->pid)
			return;
		/* restarted while we were not listening */
		if (was_running)
			domains_reshare(m->d, dm, true);
		if (domains_set_pid(m->d, dm, pid, NULL) == 0) {
			dm->pid = pid;
			dm->has_cpu_reader = false;
			return;
		}
	}
	if (was_running && dm->has_cpu_reader)
		return;
	dm->pid = 0;
	domains_set_pid(m->d, dm, 0, NULL);
	accounting_domain_set_cpu_reader(dm->acct, read_cpu_libvirt, dm);
	dm->has_cpu_reader = true;
}

static void domain_set_vdom(struct domain *dm, virDomainPtr vdom)
{
	if (vdom)
		virDomainRef(vdom);
	if (lv(dm)->vdom)
		virDomainFree(lv(dm)->vdom);
	lv(dm)->vdom = vdom;
	if (vdom)
		virDomainGetUUID(vdom, lv(dm)->uuid);
}

/* The domain's info labels: its UUID, and Nova's metadata element if it has one (the live one
 * while it runs). Called when the domain is tracked, listed again, (re)defined or started, and on
 * a metadata-change event: never per tick. From the whole XML, not virDomainGetMetadata: that
 * answers the element stripped of its namespace, and its namespace is what makes it Nova's. A
 * failed read keeps the labels the domain had. */
static void read_info(struct domain *dm)
{
	virDomainPtr vdom = lv(dm)->vdom;
	struct domain_info *info = NULL;
	char uuid[VIR_UUID_STRING_BUFLEN];

	if (!vdom)
		return;
	_cleanup_free_ char *xml = virDomainGetXMLDesc(vdom, 0);
	if (!xml) {
		log_debug("domain %s: cannot read its XML: %s", dm->name, last_error());
		return;
	}
	if (domain_info_parse_xml(xml, &info) < 0) {
		log_warn("domain %s: its XML does not parse: its info labels are empty", dm->name);
		info = domain_info_new();
	}
	/* libvirt's own word for it */
	if (virDomainGetUUIDString(vdom, uuid) == 0)
		domain_info_set(info, DOMAIN_INFO_UUID, uuid);
	if (info->is_nova && !domain_info_equal(info, dm->info))
		log_info("domain %s: Nova instance %s (project %s, flavor %s)", dm->name,
			info->v[DOMAIN_INFO_INSTANCE_NAME], info->v[DOMAIN_INFO_PROJECT_NAME],
			info->v[DOMAIN_INFO_FLAVOR]);
	domain_info_free(dm->info);
	dm->info = info;
	/* What the operator calls it: the Nova instance's name, where it has one. */
	free(dm->title);
	dm->title = info->v[DOMAIN_INFO_INSTANCE_NAME][0]
			    ? xstrdup(info->v[DOMAIN_INFO_INSTANCE_NAME])
			    : NULL;
}

static void lv_domain_init(struct manager *m, struct domain *dm, void *ref)
{
	dm->priv = xcalloc(1, sizeof(struct lv_domain));
	domain_set_vdom(dm, ref);
	read_info(dm);
}

/* Listed again (a reconnect, a reload): events may have been missed meanwhile. */
static void lv_domain_update(struct manager *m, struct domain *dm, void *ref)
{
	domain_set_vdom(dm, ref);
	read_info(dm);
}

static void lv_domain_done(struct manager *m, struct domain *dm)
{
	domain_set_vdom(dm, NULL);
	free(dm->priv);
	dm->priv = NULL;
}

static struct domain *track(
	struct manager *m, virDomainPtr vdom, bool is_persistent, bool is_running)
{
	return domains_track(m->d, virDomainGetName(vdom), NULL, is_persistent, is_running, vdom);
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr vdom, int event, int detail, void *opaque)
{
	struct manager *m = opaque;
	struct domains *d = m->d;
	const char *name = virDomainGetName(vdom);
	struct domain *dm;

	if (!name)
		return 0;
	dm = domains_find(d, name);
	log_debug("domain %s: lifecycle event %d detail %d", name, event, detail);
	switch (event) {
	case VIR_DOMAIN_EVENT_DEFINED:
		/* virsh domrename: the definition keeps the old share path, which went with the
		 * old name; only the operator's attach can point it at the new one. */
		if (detail == VIR_DOMAIN_EVENT_DEFINED_RENAMED)
			log_warn("domain %s: renamed; its share is now %s/%s: run 'powerd-host "
				 "attach %s' before starting it",
				name, domains_config(d)->share_dir, name, name);
		if (dm) {
			dm->is_persistent = true;
			domain_set_vdom(dm, vdom);
			read_info(dm);
		} else {
			track(m, vdom, true, virDomainIsActive(vdom) == 1);
		}
		break;
	case VIR_DOMAIN_EVENT_STARTED:
	case VIR_DOMAIN_EVENT_RESUMED:
		if (!dm) {
			track(m, vdom, virDomainIsPersistent(vdom) == 1, true);
			break;
		}
		domain_set_vdom(dm, vdom);
		if (event == VIR_DOMAIN_EVENT_STARTED)
			read_info(dm);
		dm->is_paused = false;
		domains_set_running(d, dm, true);
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		if (dm)
			dm->is_paused = true;
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
	case VIR_DOMAIN_EVENT_CRASHED:
		if (!dm) {
			domains_untracked_stopped(d, name);
			break;
		}
		domains_set_running(d, dm, false);
		if (!dm->is_persistent)
			domains_drop(d, dm, true);
		break;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		if (!dm)
			break;
		dm->is_persistent = false;
		if (!dm->is_running)
			domains_drop(d, dm, true);
		break;
	default:
		break;
	}
	return 0;
}

/* virsh metadata, or Nova updating an instance: only Nova's namespace concerns the labels. */
static void metadata_cb(
	virConnectPtr conn, virDomainPtr vdom, int type, const char *nsuri, void *opaque)
{
	struct manager *m = opaque;
	const char *name = virDomainGetName(vdom);
	struct domain *dm = name ? domains_find(m->d, name) : NULL;

	if (!dm || type != VIR_DOMAIN_METADATA_ELEMENT || !nsuri ||
		!streq(nsuri, DOMAIN_INFO_NOVA_NS))
		return;
	log_debug("domain %s: metadata changed", name);
	read_info(dm);
}

/* Whether a domain of that name runs in libvirt now: its qemu may hold the export. Unknown
 * (an error) counts as running. */
static bool lv_may_run(struct manager *m, const char *name)
{
	virDomainPtr vdom = virDomainLookupByName(m->conn, name);

	if (!vdom) {
		virErrorPtr err = virGetLastError();
		return !(err && err->code == VIR_ERR_NO_DOMAIN);
	}
	bool is_active = virDomainIsActive(vdom) != 0;
	virDomainFree(vdom);
	return is_active;
}

static int lv_reconcile(struct manager *m)
{
	virDomainPtr *list = NULL;
	int n;

	if (!m->conn)
		return -ENOTCONN;
	n = virConnectListAllDomains(m->conn, &list, 0);
	if (n < 0) {
		log_warn("cannot list the domains of %s: %s", uri(m), last_error());
		return -EIO;
	}
	struct manager_entry *v = xcalloc((size_t)n + 1, sizeof(*v));
	for (int i = 0; i < n; i++)
		v[i] = (struct manager_entry){ .name = virDomainGetName(list[i]),
			.is_persistent = virDomainIsPersistent(list[i]) == 1,
			.is_running = virDomainIsActive(list[i]) == 1,
			.ref = list[i] };
	domains_apply(m->d, v, (size_t)n);
	free(v);
	for (int i = 0; i < n; i++)
		virDomainFree(list[i]);
	free(list);
	domains_sweep_orphans(m->d);
	return 0;
}

static void schedule_reconnect(struct manager *m, unsigned delay_ms)
{
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	evtimer_add(m->reconnect_ev, &tv);
}

static void close_cb(virConnectPtr conn, int reason, void *opaque);

static void disconnect(struct manager *m)
{
	size_t n;
	struct domain *const *v = domains_all(m->d, &n);

	if (!m->conn)
		return;
	if (m->event_id >= 0)
		virConnectDomainEventDeregisterAny(m->conn, m->event_id);
	m->event_id = -1;
	if (m->metadata_event_id >= 0)
		virConnectDomainEventDeregisterAny(m->conn, m->metadata_event_id);
	m->metadata_event_id = -1;
	if (m->has_close_cb)
		virConnectUnregisterCloseCallback(m->conn, close_cb);
	m->has_close_cb = false;
	for (size_t i = 0; i < n; i++)
		domain_set_vdom(v[i], NULL);
	virConnectClose(m->conn);
	m->conn = NULL;
	m->is_connected = false;
}

static void close_cb(virConnectPtr conn, int reason, void *opaque)
{
	struct manager *m = opaque;
	static const struct timeval zero = { 0, 0 };

	/* Inside libvirt's dispatch: only note it, clean up from the loop. */
	m->is_connected = false;
	evtimer_add(m->dropped_ev, &zero);
}

static void dropped_cb(evutil_socket_t fd, short what, void *arg)
{
	struct manager *m = arg;

	log_warn("connection to %s lost, reconnecting in %u ms", uri(m), m->backoff_ms);
	disconnect(m);
	schedule_reconnect(m, m->backoff_ms);
}

static void attempt_failed(struct manager *m, const char *what)
{
	if (!m->is_failing)
		log_warn("cannot %s %s: %s; retrying with backoff up to %u s", what, uri(m),
			last_error(), DOMAINS_BACKOFF_MAX_MS / 1000);
	m->is_failing = true;
	disconnect(m);
	schedule_reconnect(m, m->backoff_ms);
	m->backoff_ms = MIN(m->backoff_ms * 2, DOMAINS_BACKOFF_MAX_MS);
}

/* Hot-plugging the channel is a write API: channel: auto asks for a read-write connection, and
 * falls back to a read-only one (no hot-plug, channels already there are still served). */
static virConnectPtr open_connection(struct manager *m)
{
	virConnectPtr conn;

	if (domains_config(m->d)->channel != CHANNEL_MODE_AUTO)
		return virConnectOpenReadOnly(uri(m));
	conn = virConnectOpen(uri(m));
	if (conn)
		return conn;
	conn = virConnectOpenReadOnly(uri(m));
	if (conn && !m->is_read_only_logged)
		log_warn("no read-write connection to %s (%s): the energy channel cannot be "
			 "hot-plugged, only channels already defined are served",
			uri(m), last_error());
	m->is_read_only_logged = conn != NULL;
	return conn;
}

static void connect_attempt(struct manager *m)
{
	const char *type;

	m->conn = open_connection(m);
	if (!m->conn) {
		attempt_failed(m, "connect to");
		goto out;
	}
	/* Drivers without keepalive (test, local in-process) answer -1: fine. */
	virConnectSetKeepAlive(m->conn, 5, 3);
	m->has_close_cb = virConnectRegisterCloseCallback(m->conn, close_cb, m, NULL) == 0;
	m->event_id = virConnectDomainEventRegisterAny(m->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), m, NULL);
	if (m->event_id < 0) {
		attempt_failed(m, "register lifecycle events on");
		goto out;
	}
	m->metadata_event_id =
		virConnectDomainEventRegisterAny(m->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
			VIR_DOMAIN_EVENT_CALLBACK(metadata_cb), m, NULL);
	if (m->metadata_event_id < 0)
		log_info("%s has no metadata-change events (%s): domain info labels are read at "
			 "start and reconnect only",
			uri(m), last_error());
	type = virConnectGetType(m->conn);
	m->is_qemu = type && streq(type, "QEMU");
	m->is_connected = true;
	if (m->is_failing)
		log_notice("connected to %s again", uri(m));
	else
		log_info("connected to %s", uri(m));
	m->is_failing = false;
	m->backoff_ms = DOMAINS_BACKOFF_MIN_MS;
	lv_reconcile(m);
out:
	domains_attempt_done(m->d);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	connect_attempt(arg);
}

static void lv_destroy(struct manager *m)
{
	disconnect(m);
	if (m->reconnect_ev)
		event_free(m->reconnect_ev);
	if (m->dropped_ev)
		event_free(m->dropped_ev);
	free(m);
}

static int lv_create(struct domains *d, struct manager **ret)
{
	struct manager *m = xcalloc(1, sizeof(*m));

	m->d = d;
	m->event_id = -1;
	m->metadata_event_id = -1;
	m->backoff_ms = DOMAINS_BACKOFF_MIN_MS;
	m->reconnect_ev = evtimer_new(domains_base(d), reconnect_cb, m);
	m->dropped_ev = evtimer_new(domains_base(d), dropped_cb, m);
	if (!m->reconnect_ev || !m->dropped_ev) {
		lv_destroy(m);
		return -ENOMEM;
	}
	virSetErrorFunc(NULL, libvirt_error);
	*ret = m;
	return 0;
}

static void lv_start(struct manager *m)
{
	connect_attempt(m);
}

static void lv_reconnect(struct manager *m, unsigned delay_ms)
{
	disconnect(m);
	evtimer_del(m->reconnect_ev);
	schedule_reconnect(m, delay_ms);
}

static bool lv_is_connected(const struct manager *m)
{
	return m->is_connected;
}

static unsigned lv_backoff_ms(const struct manager *m)
{
	return m->backoff_ms;
}

const struct manager_ops manager_libvirt_ops = {
	.name = "libvirt",
	.create = lv_create,
	.destroy = lv_destroy,
	.start = lv_start,
	.reconcile = lv_reconcile,
	.reconnect = lv_reconnect,
	.is_connected = lv_is_connected,
	.backoff_ms = lv_backoff_ms,
	.domain_init = lv_domain_init,
	.domain_update = lv_domain_update,
	.domain_done = lv_domain_done,
	.set_cpu = lv_set_cpu,
	.channel_check = lv_channel_check,
	.may_run = lv_may_run,
};
