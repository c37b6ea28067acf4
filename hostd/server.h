/* powerd-host's HTTP server process: the only part of powerd-host that reads from the network.
 * The privileged part (privsep.c) forks it with the listening sockets it opened and one end of a
 * socketpair; it confines itself (server_sandbox.h) and then serves what the privileged part
 * sends: the exposition on the metrics sockets, the status document on the status socket. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "hostd/server_sandbox.h"

#define SERVER_HEARTBEAT_MS 1000 /* a byte to the privileged part this often */
#define SERVER_STATUS_CONNS_MAX 16
#define SERVER_STATUS_TIMEOUT_S 5

struct server_params {
	int sock;	     /* the socketpair end */
	const int *http_fds; /* listening TCP sockets */
	size_t n_http;
	int status_fd; /* listening unix socket, -1 for none */
	pid_t parent;
	struct sandbox_user user;
};

/* In the child right after fork(): never returns. Every other fd is closed, the signal
 * dispositions the parent's loop installed are reset; exit status 0 when the parent closed the
 * socketpair, 1 on any error (the parent restarts it). */
_Noreturn void server_run(const struct server_params *p);
