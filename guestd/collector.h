/* One sampling tick of powerd-guest, without the event loop: read the source, attribute the VM's
 * energy inside the guest, render the exposition. Used by the daemon's timer and by --once. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "guestd/guest_config.h"
#include "guestd/ledger.h"
#include "guestd/source.h"

struct event_base;

struct tree_out;

struct collector {
	struct source *source;
	struct tree_out *tree_out;    /* NULL: tree_out "" */
	struct tree_out *sysfs_out;   /* its class/powercap; NULL: sysfs_out "" */
	void (*on_update)(void *arg); /* after a tick's exposition is rendered (loop only) */
	void *on_update_arg;
	struct ledger ledger;
	int attribution;
	int metric_names;
	uint64_t interval_ms;
	char *proc_root;
	char *cgroup_root;
	struct strbuf exposition; /* rendered by the last tick */
	bool was_up;		  /* for logging transitions only */
	bool has_logged_state;
	bool attribution_failed; /* logged once until it works again */
};

struct collector *collector_new(const struct guest_config *cfg);
void collector_free(struct collector *c);
/* Take the settings of a new configuration: another source re-opens (totals continue), another
 * attribution mode starts a new ledger. */
void collector_reconfigure(struct collector *c, const struct guest_config *cfg);
/* Readings arrive on base's loop from now on; on_update(arg) follows each rendered tick. */
void collector_set_loop(
	struct collector *c, struct event_base *base, void (*on_update)(void *), void *arg);
/* The loop's tick at now_ns: asks for a reading and renders when it is in (at once if it is
 * ready, or if the source hangs: then the last totals are served with the source down). */
void collector_begin(struct collector *c, uint64_t now_ns);
/* Sample at now_ns, waiting for the reading (bounded), and render into c->exposition. Returns 0
 * when the source is up. */
int collector_tick(struct collector *c, uint64_t now_ns);
/* "reading /var/scaphandre: 12.3 W" or what is wrong, for STATUS=. */
void collector_status(const struct collector *c, char *buf, size_t size);
