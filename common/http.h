/* The metrics HTTP server on evhttp. A daemon renders its exposition once per sample and hands
 * it over with http_server_set_metrics(); scrapes are served from that memory (and its gzip form,
 * compressed once per update), so a scrape never touches the disk or blocks the loop.
 *   GET/HEAD /metrics   the exposition, Content-Type PROM_CONTENT_TYPE, gzip if accepted
 *   GET/HEAD /          a small HTML page linking /metrics
 *   other paths 404, other methods 405 (with Allow), oversized headers/body 413/400 (evhttp). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_server;

struct http_limits {
	size_t max_header_bytes;  /* whole request head; default 8 KiB */
	size_t max_body_bytes;	  /* default 4 KiB (scrapes have no body) */
	unsigned max_connections; /* open connections at once; default 256; further ones wait in
				   * the kernel's backlog until one closes */
	unsigned idle_timeout_s;  /* close a connection idle this long; default 30 */
};
#define HTTP_LIMITS_DEFAULT                                                                        \
	{                                                                                          \
		8192, 4096, 256, 30                                                                \
	}

/* Listen on listen ("host:port", "[v6]:port", ":port"), or on the sockets systemd passed
 * (sd_listen_fds) when there are any; listen may then be NULL or "".
 * -EADDRINUSE etc. with err naming the address. title is shown on "/" ("powerd-guest"). */
int http_server_new(struct event_base *base, const char *listen, const struct http_limits *limits,
	const char *title, struct http_server **ret, char *err, size_t err_size);
/* Open a listening TCP socket (non-blocking, close-on-exec) for listen, with the syntax above;
 * -errno with err naming the address. */
int http_listen_open(const char *listen, int *ret_fd, char *err, size_t err_size);
/* Serve on sockets that already listen (a privileged process opened them): taken over, closed
 * by http_server_free() (on failure: all of them, now). */
int http_server_new_fds(struct event_base *base, const int *fds, size_t n_fds,
	const struct http_limits *limits, const char *title, struct http_server **ret, char *err,
	size_t err_size);
/* Replace the served exposition (copied). */
void http_server_set_metrics(struct http_server *s, const char *text, size_t len);
/* The port actually bound (for listen ":0" in tests); 0 if unknown. */
uint16_t http_server_port(const struct http_server *s);
unsigned http_server_connections(const struct http_server *s);
/* Serving on sockets systemd passed (socket activation): freeing the server closes them for
 * good. */
bool http_server_is_activated(const struct http_server *s);
void http_server_free(struct http_server *s);
