/* The domain manager: follows a hypervisor manager's domains and for every tracked one keeps its
 * share (mounts.h), its accounting (accounting.h) and, with channel: auto, its energy channel
 * (channel.h, checked from a deferred loop callback). Where the domains come from is one of two
 * managers behind one interface (manager.h), chosen by the config's manager key:
 * - libvirt (manager_libvirt.c): lifecycle events, and a full listing at start-up and after every
 *   reconnect, since events were missed meanwhile; the channel is hot-plugged live where a
 *   virtio-serial controller allows it. The connection is read-write with channel: auto (hot-plug
 *   is a write API), else read-only; it is kept alive with keepalive probes, and re-established
 *   with exponential backoff (1 s .. 30 s) when it drops; domains and their counters stay while it
 *   is down.
 * - proxmox (manager_proxmox.c): qemu-server's VMs, named by vmid (DESIGN.md §5). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/strbuf.h"
#include "hostd/channel.h"
#include "hostd/mounts.h"

struct event_base;
struct accounting;
struct acct_domain;
struct host_config;
struct domains;

#define DOMAINS_BACKOFF_MIN_MS 1000
#define DOMAINS_BACKOFF_MAX_MS 30000
/* Orphan shares (made by the hook for a start that failed, or left by a transient domain that
 * stopped while powerd-host was down): a share powerd made whose domain is not tracked, not
 * kept (excluded while running) and not running in libvirt, untouched for the grace period (the
 * hook may be preparing it for a domain that is starting), is removed by every reconcile and by
 * a sweep every DOMAINS_ORPHAN_SWEEP_S. */
#define DOMAINS_ORPHAN_GRACE_S 120
#define DOMAINS_ORPHAN_SWEEP_S 60
/* Channel checks in one turn of the loop, at most this long (plus the last check's own time). */
#define DOMAINS_CHANNEL_BATCH_MS 20

/* cfg and acct are borrowed and must outlive the object. Nothing connects before
 * domains_start(). With libvirt's manager, libvirt_loop_register() must have been called on
 * base. */
int domains_new(struct event_base *base, const struct host_config *cfg, struct accounting *acct,
	struct domains **ret);
/* Closes the connection and stops accounting the domains; leaves every share mounted for the next
 * start (and for the guests that still run). */
void domains_free(struct domains *d);
/* Called after every connection attempt: after its reconcile when it succeeded, right after the
 * failure otherwise (the daemon is ready without libvirtd and keeps retrying). */
void domains_set_attempt_cb(struct domains *d, void (*cb)(void *arg), void *arg);
/* First connection attempt, now. */
void domains_start(struct domains *d);
/* A reloaded config: include/exclude are applied at once (reconcile). share_dir and tmpfs_size
 * changes take a restart. */
void domains_set_config(struct domains *d, const struct host_config *cfg);
/* List every domain and bring the tracked set in line. -ENOTCONN while disconnected. */
int domains_reconcile(struct domains *d);
/* Drop the connection as if it had broken, and reconnect after delay_ms. */
void domains_reconnect(struct domains *d, unsigned delay_ms);

bool domains_is_connected(const struct domains *d);
const char *domains_manager_name(const struct domains *d); /* "libvirt", "proxmox" */
size_t domains_count(const struct domains *d);
unsigned domains_backoff_ms(const struct domains *d); /* delay of the next retry */

struct domain_view {
	bool is_persistent;
	bool is_running;
	bool is_paused;
	enum mount_state mount;
	enum channel_state channel; /* CHANNEL_OFF with channel: off */
	const char *channel_reason; /* why not served ("" if nothing); valid until the loop runs */
	const char *title;	    /* the manager's other name for it (Proxmox's name:); NULL */
};

/* -ENOENT if the domain is not tracked. */
int domains_lookup(const struct domains *d, const char *name, struct domain_view *ret);
/* Per-domain metrics (docs/metrics.md): powerd_domain_info{domain,uuid,instance_name,...} 1,
 * powerd_domain_channel_connected{domain}, powerd_domain_transport{domain,transport,state} (and
 * reason where the channel is not served), powerd_domain_channel_records_total. */
void domains_render(const struct domains *d, struct strbuf *out);

/* Every tracked domain, in no particular order (powerd-host status). acct may be NULL. */
void domains_foreach(const struct domains *d,
	void (*cb)(void *arg, const char *name, const struct domain_view *v,
		const struct acct_domain *acct),
	void *arg);
