/* libvirt's event loop bridged onto libevent (virEventRegisterImpl): libvirt's fd watches and
 * timers become libevent events on one event_base, so the daemon runs a single loop and no
 * thread. libvirt's registry is process-wide and can be set once, before any virConnectOpen. */
#pragma once

#include <stdbool.h>

struct event_base;

struct libvirt_loop_counts {
	unsigned handles;	  /* live fd watches */
	unsigned timeouts;	  /* live timers */
	unsigned frees_pending;	  /* removed, free callback not run yet */
	unsigned long frees_done; /* free callbacks run since registration */
};

/* Register the bridge on base. Once per process: a second call with the same base is a no-op,
 * with another base -EBUSY. base must outlive every libvirt connection. */
int libvirt_loop_register(struct event_base *base);
bool libvirt_loop_is_registered(void);
void libvirt_loop_get_counts(struct libvirt_loop_counts *ret);
/* Run the loop without blocking until every pending free callback ran (bounded). Callers that
 * step the loop themselves use EVLOOP_ONCE | EVLOOP_NONBLOCK: with EVLOOP_NONBLOCK alone a 0 ms
 * libvirt timer (re-armed every iteration) keeps event_base_loop from returning. */
void libvirt_loop_flush(void);
/* At process exit, after the last connection is closed: run pending free callbacks and drop the
 * bookkeeping of anything libvirt still holds. Later registrations by libvirt fail. */
void libvirt_loop_shutdown(void);
