/* Privilege separation of powerd-host: the privileged part (this process: root, CAP_SYS_ADMIN,
 * libvirt, the shares) opens the listening sockets and runs the HTTP server process (server.h)
 * that serves them, hands it the exposition and the status document once per tick, and restarts
 * it when it dies or stops sending its heartbeat. Nothing it sends back is acted upon. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "hostd/privsep_msg.h"

#define PRIVSEP_LISTEN_MAX 16
#define PRIVSEP_HANG_MS 5000	     /* no heartbeat this long: the server is killed */
#define PRIVSEP_BACKOFF_MIN_MS 100   /* restart delay after a crash, doubling ... */
#define PRIVSEP_BACKOFF_MAX_MS 30000 /* ... up to this */
#define PRIVSEP_STABLE_MS 10000	     /* a server that lived this long restarts at the minimum */

struct event_base;
struct privsep;

/* Open the metrics sockets (systemd's, when it passed any; else listen, "" for none) and the
 * status socket at status_path ("" for none; its directory is made if missing), then start the
 * server process. -errno with the cause logged. */
int privsep_new(
	struct event_base *base, const char *listen, const char *status_path, struct privsep **ret);
/* SIGKILL the server, reap it, close the sockets, remove the status socket. */
void privsep_free(struct privsep *p);
/* The latest message of a type: queued, replacing an unsent older one of that type, and written
 * without ever blocking; a server that reads slowly gets the latest only. */
void privsep_send(struct privsep *p, enum privsep_msg_type type, const char *payload, size_t len);
/* A reloaded metrics_listen: open it, then restart the server on it; on failure the server stays
 * on the old sockets (-errno, logged). With systemd's sockets, listen is ignored. */
int privsep_set_listen(struct privsep *p, const char *listen);
/* The server's pid, 0 while it is down. */
pid_t privsep_server_pid(const struct privsep *p);
unsigned privsep_restarts(const struct privsep *p);
bool privsep_is_activated(const struct privsep *p);
