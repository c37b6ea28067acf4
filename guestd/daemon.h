/* powerd-guest as a service: the libevent loop with the sampling timer, the HTTP server, systemd
 * notification, and signals (SIGTERM/SIGINT stop, SIGHUP reloads the configuration). */
#pragma once

#include <stddef.h>

#include "guestd/guest_config.h"

struct daemon;

/* Takes over cfg (emptied on success). config_path is re-read on SIGHUP (NULL: the default). */
int daemon_new(struct guest_config *cfg, const char *config_path, struct daemon **ret);
/* Runs until SIGTERM or SIGINT. 0 on a clean stop. */
int daemon_run(struct daemon *d);
void daemon_free(struct daemon *d);

/* --once: two samples one interval apart, the exposition on stdout. 0, or 1 if the source could
 * not be read. */
int daemon_once(const struct guest_config *cfg);
