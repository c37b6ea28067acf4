/* The powerd-host daemon: one libevent loop carrying the libvirt bridge, the domain manager, the
 * accounting tick on a CLOCK_MONOTONIC interval timer, the metrics HTTP server, systemd
 * notification and watchdog, and signals (SIGTERM/SIGINT stop, SIGHUP reloads). */
#pragma once

#include <stdbool.h>

#include "hostd/host_config.h"

/* Load the config (built-in defaults when is_default_path and the file is missing) and apply its
 * log level. On error the message naming file, line and key is logged; returns -errno. */
int daemon_load_config(const char *path, bool is_default_path, struct host_config *cfg);

/* Run until stopped. is_once: connect, reconcile, two ticks one interval apart, print the host
 * metrics on stdout, return. Returns the process exit status (2: bad config). */
int daemon_run(const char *config_path, bool is_default_path, bool is_once);
