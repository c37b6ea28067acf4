/* The seam between the domain tracking every manager shares (domains.c: shares, accounting, the
 * channel publisher, kept and orphan shares, include/exclude, lookup and rendering) and where the
 * domains come from: a manager (manager_libvirt.c: libvirt's connection, events and listing;
 * manager_proxmox.c: qemu-server's processes, run directory and QMP). A manager translates what it
 * sees into the calls below; domains.c calls the manager only through its ops. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "hostd/channel.h"
#include "hostd/mounts.h"

struct event_base;
struct accounting;
struct host_config;
struct domains;
struct domain_info;
struct manager; /* a manager's own state */

/* A tracked domain, as every manager sees it. */
struct domain {
	struct domains *owner;
	char *name;  /* the identity: libvirt's name, Proxmox's vmid (labels, share directory) */
	char *title; /* what the operator calls it where that differs (Proxmox's name:); NULL */
	bool is_persistent; /* defined (libvirt) or configured (Proxmox) beyond its run */
	bool is_running;
	bool is_paused;
	bool is_seen; /* reconcile mark */
	enum mount_state mount;
	pid_t pid;	     /* qemu's, 0 when unknown or not running */
	bool has_cpu_reader; /* CPU time from a reader callback (no host process known) */
	struct acct_domain *acct;
	struct channel *channel;  /* owned by acct (its channel publisher); NULL: channel off */
	bool needs_channel_check; /* the deferred channel check is due */
	bool is_unserved_logged;  /* why the channel is not served: said once per start */
	/* Its labels in powerd_domain_info (domain_info.h); never NULL while tracked. The manager
	 * fills them (libvirt: Nova's metadata, read at track, definition, start and metadata
	 * change; never per tick). */
	struct domain_info *info;
	void *priv; /* the manager's (domain_init .. domain_done) */
};

/* One domain a manager lists (manager_ops.reconcile hands a whole listing to domains_apply). ref
 * is the manager's handle on it, given to domain_init or domain_update. */
struct manager_entry {
	const char *name;
	const char *title; /* its other name (include/exclude match either); NULL */
	bool is_persistent;
	bool is_running;
	/* The manager saw nothing new of this tracked domain since its last listing (the same
	 * process runs on, or it is still shut off; the same definition): domains_apply leaves it
	 * as it is (no domain_update, no set_running, so no channel check). */
	bool is_unchanged;
	void *ref;
};

struct manager_ops {
	const char *name; /* "libvirt", "proxmox" */
	/* domains.include/exclude also match a domain's title (Proxmox: the VM's name) */
	bool is_title_filtered;
	int (*create)(struct domains *d, struct manager **ret);
	void (*destroy)(struct manager *m); /* after every domain was dropped */
	/* The first connection or scan, now; domains_attempt_done after each attempt. */
	void (*start)(struct manager *m);
	/* List every domain and hand the listing to domains_apply; -ENOTCONN while disconnected. */
	int (*reconcile)(struct manager *m);
	void (*reconnect)(struct manager *m, unsigned delay_ms);
	bool (*is_connected)(const struct manager *m);
	unsigned (*backoff_ms)(const struct manager *m);
	/* Per-domain state from the listing's or the event's ref; init before anything else, update
	 * for a domain listed again, done when it is dropped. */
	void (*domain_init)(struct manager *m, struct domain *dm, void *ref);
	void (*domain_update)(struct manager *m, struct domain *dm, void *ref);
	void (*domain_done)(struct manager *m, struct domain *dm);
	/* The domain runs (again, was_running: it ran already): give its accounting its CPU-time
	 * source (domains_set_pid, or accounting_domain_set_cpu_reader) and set pid and
	 * has_cpu_reader. A stop resets both (domains.c). */
	void (*set_cpu)(struct manager *m, struct domain *dm, bool was_running);
	/* From the loop (never inside the manager's own callbacks): find or hot-plug the domain's
	 * energy channel, then channel_connect_to, or channel_set_unserved with the reason. */
	void (*channel_check)(struct manager *m, struct domain *dm);
	/* Whether a domain of that name may run now, so that its share must stay (an orphan sweep,
	 * only while connected). Unknown counts as running. */
	bool (*may_run)(struct manager *m, const char *name);
};

extern const struct manager_ops manager_libvirt_ops;
extern const struct manager_ops manager_proxmox_ops;

/* What a manager may call on the shared part. */
struct event_base *domains_base(const struct domains *d);
const struct host_config *domains_config(const struct domains *d);
struct accounting *domains_accounting(const struct domains *d);
struct domain *domains_find(const struct domains *d, const char *name);
/* Every tracked domain (the array is the shared part's: no tracking calls while walking it). */
struct domain *const *domains_all(const struct domains *d, size_t *ret_n);
/* Start tracking name (title: its other name, NULL if none): share, tree, accounting, channel;
 * domain_init(ref) before it is set running. NULL when it is not tracked (include/exclude) or its
 * share cannot be made (logged). */
struct domain *domains_track(struct domains *d, const char *name, const char *title,
	bool is_persistent, bool is_running, void *ref);
/* Stop tracking; with teardown the share goes too (the domain is gone for good). */
void domains_drop(struct domains *d, struct domain *dm, bool teardown);
/* The domain started or stopped (or runs on: then set_cpu sees was_running). */
void domains_set_running(struct domains *d, struct domain *dm, bool is_running);
/* A domain that is not tracked stopped: a share kept for it (excluded while running) may go. */
void domains_untracked_stopped(struct domains *d, const char *name);
/* A share written in place: try for the read-only tmpfs again (see domains.c). */
void domains_reshare(struct domains *d, struct domain *dm, bool is_running);
/* accounting_domain_set_pid, or with own_cgroup (a cgroup v2 path, "/qemu.slice/100.scope")
 * only that cgroup is accepted as the domain's. */
int domains_set_pid(struct domains *d, struct domain *dm, pid_t pid, const char *own_cgroup);
/* Look at the domain's channel from the loop, soon. */
void domains_channel_check_later(struct domains *d, struct domain *dm);
/* A complete listing: track what is new and included, update what is known, drop what was not
 * listed, handle kept shares. */
void domains_apply(struct domains *d, const struct manager_entry *v, size_t n);
/* Remove the shares no known domain owns (see DOMAINS_ORPHAN_GRACE_S); after a reconcile, and
 * every DOMAINS_ORPHAN_SWEEP_S. */
void domains_sweep_orphans(struct domains *d);
/* After each connection attempt (domains_set_attempt_cb). */
void domains_attempt_done(struct domains *d);
