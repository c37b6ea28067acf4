/* The channel publisher (DESIGN.md §4): one record per tick (common/channel_record.h) into the
 * unix socket qemu listens on for a domain's org.powerd.energy.0 virtio-serial port. It never
 * blocks: the socket is non-blocking with a small send buffer; a record is written only when qemu
 * has taken the previous one (else it is dropped, and the next one supersedes it: the guest never
 * reads a backlog of stale records), and a record the kernel took only in part is completed
 * before any other, so the stream never carries a broken line. When qemu closes the socket
 * (save, migration, shutdown) it reconnects with backoff (1 s .. 30 s); a new path (a restore or
 * a restart gives the domain a new id) is connected at once. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "hostd/publish.h"

struct event_base;
struct channel;

/* The name of the port, in the guest and in libvirt's <target type='virtio' name=.../>. */
#define CHANNEL_PORT_NAME "org.powerd.energy.0"

#define CHANNEL_REASON_MAX 256 /* bytes of a reason, with its NUL */
#define CHANNEL_BACKOFF_MIN_MS 1000
#define CHANNEL_BACKOFF_MAX_MS 30000

enum channel_state {
	CHANNEL_OFF,		 /* channel: off, or the domain is not running */
	CHANNEL_NO_CONTROLLER,	 /* no virtio-serial controller: nothing can be hot-plugged */
	CHANNEL_HOTPLUG_REFUSED, /* libvirt refused the hot-plug (the reason is kept) */
	CHANNEL_NO_HOOKSCRIPT,	 /* Proxmox: not powerd's hookscript, left alone (DESIGN.md §5) */
	CHANNEL_CONNECTING,	 /* the channel exists; not connected (yet, or again) */
	CHANNEL_CONNECTED,
	CHANNEL_STATES,
};

int channel_new(struct event_base *base, const char *domain, struct channel **ret);
/* The channel as a publisher (accounting_domain_set_publisher): freeing that frees the channel. */
struct publisher *channel_publisher(struct channel *c);
/* Connect to qemu's socket at path, now (and from then on with backoff while it fails). A path
 * equal to the current one keeps a live connection. */
void channel_connect_to(struct channel *c, const char *path);
/* The domain is not served: close, and say why (reason may be NULL). */
void channel_set_unserved(struct channel *c, enum channel_state state, const char *reason);

enum channel_state channel_get_state(const struct channel *c);
/* "connected", "connecting", "no_controller", "hotplug_refused", "no_hookscript", "off". */
const char *channel_state_name(enum channel_state s);
/* What the last refusal said ("" if nothing). */
const char *channel_reason(const struct channel *c);
const char *channel_path(const struct channel *c); /* NULL until known */
uint64_t channel_records_sent(const struct channel *c);
uint64_t channel_records_dropped(const struct channel *c);
