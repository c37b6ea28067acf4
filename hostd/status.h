/* `powerd-host status`: the status document the privileged part renders once per tick (the HTTP
 * server process serves it on the status socket), and the command that reads it and prints one
 * line per domain.
 *
 * The document is text, one record per line, fields separated by tabs (domain names hold no
 * control characters, every other field is sanitised):
 *   powerd-status	1
 *   pid	<pid>       libvirt	connected|disconnected      manager	libvirt|proxmox
 *   interval_ms	<ms>
 *   ticks	<n>       tick_mono_ms	<CLOCK_MONOTONIC of the tick, ms>
 *   host_power_w	<W>       estimated	0|1       server_restarts	<n>
 *   domain	<name>	<state>	<share>	<channel>	<cpu source>	<power W> <energy J>
 * <last error>	<title: the manager's other name for it, Proxmox's VM name; "-" if none>
 * Unknown records are skipped by the reader; a later version may add fields at the
 * end. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/strbuf.h"

#define STATUS_VERSION 1
#define STATUS_MAX_BYTES (16u << 20)
#define STATUS_TIMEOUT_MS 5000

struct accounting;
struct domains;
struct status_state; /* per-domain energy at the last render, for power */

struct status_info {
	pid_t pid;
	bool is_connected;
	uint64_t interval_ms;
	uint64_t ticks;
	unsigned server_restarts;
};

void status_render(struct status_state **state, const struct status_info *info,
	const struct domains *domains, const struct accounting *acct, struct strbuf *out);
void status_state_free(struct status_state *s);

/* Healthy: libvirt connected and the last tick no older than three intervals plus a second. */
bool status_is_healthy(bool is_connected, uint64_t tick_mono_ms, uint64_t now_mono_ms,
	uint64_t interval_ms, const char **ret_why);

/* The command: 0 healthy, 1 running but not healthy, 3 not running (nothing listens on path). */
int status_main(const char *socket_path);
