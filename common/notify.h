/* systemd service notification glue over sd_notify(3): READY/STATUS/RELOADING/STOPPING, and the
 * watchdog kept from the event loop at half of WATCHDOG_USEC, so a stuck loop gets restarted.
 * Without NOTIFY_SOCKET every call is a cheap no-op. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"

struct event_base;
struct notify;

/* Arms the watchdog timer on base when systemd asked for one (sd_watchdog_enabled). */
int notify_new(struct event_base *base, struct notify **ret);
void notify_free(struct notify *n);
uint64_t notify_watchdog_usec(const struct notify *n); /* 0: no watchdog */

void notify_ready(const char *status_fmt, ...) _printf_(1, 2);
void notify_status(const char *fmt, ...) _printf_(1, 2);
void notify_reloading(void);   /* RELOADING=1 with MONOTONIC_USEC (systemd ≥ 253 wants it) */
void notify_reload_done(void); /* READY=1 after a reload */
void notify_stopping(void);
