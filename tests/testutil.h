/* Helpers shared by the tests: temporary directories, fixture files, child processes, loopback
 * HTTP. cmocka's headers want these includes first. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/types.h>

#include "common/util.h"

/* mkdtemp under $TMPDIR (or /tmp); returns a heap path. */
char *tu_mkdtemp(const char *prefix);
/* rm -rf, without crossing mount points (unmounts nothing: tests unmount what they mounted). */
void tu_rm_rf(const char *path);
/* Write content to dir/relpath, creating parent directories. */
void tu_write(const char *dir, const char *relpath, const char *content);
void tu_writef(const char *dir, const char *relpath, const char *fmt, ...) _printf_(3, 4);
/* Read a whole small file into a heap string; NULL if it cannot be read. */
char *tu_read(const char *dir, const char *relpath);

/* Start argv[0] with argv, stdout and stderr to log_path (if not NULL), extra environment
 * "K=V" strings in env (NULL-terminated, may be NULL). Returns the pid. */
pid_t tu_spawn(char *const argv[], char *const env[], const char *log_path);
/* SIGTERM then wait up to timeout_ms (then SIGKILL); returns the exit status as from waitpid. */
int tu_stop(pid_t pid, int timeout_ms);
/* Wait for the child to exit on its own; returns the wait status, or -1 on timeout. */
int tu_wait(pid_t pid, int timeout_ms);

/* A free TCP port on 127.0.0.1 at the time of the call. */
uint16_t tu_free_port(void);
/* Poll-connect to 127.0.0.1:port until it accepts or timeout_ms passes; 0 or -ETIMEDOUT. */
int tu_wait_port(uint16_t port, int timeout_ms);
/* One HTTP/1.1 request over a plain socket to 127.0.0.1:port; raw is the complete request text.
 * Returns the HTTP status (or negative errno); the whole response, head and body, into *ret. */
int tu_http_raw(uint16_t port, const char *raw, size_t raw_len, char **ret_response);
/* GET path; the body into *ret_body (heap), the status as return value. */
int tu_http_get(uint16_t port, const char *path, char **ret_body);

/* The value of the first sample line "name{labels} value" whose name-and-labels part equals
 * series exactly (e.g. "powerd_power_watts{zone=\"package-0\"}"); -ENOENT if absent. */
int tu_metric(const char *exposition, const char *series, double *ret);

/* promtool check metrics on text: its exit status (0 clean, 3 lint warnings only, 1 invalid),
 * and what it printed into *ret_output (heap); -ENOENT where promtool is not installed. */
int tu_promtool_check(const char *text, char **ret_output);

/* Mounts whose mount point lies under prefix, from /proc/self/mountinfo (octal escapes of
 * spaces and the like decoded). */
int tu_mount_count_under(const char *prefix);
/* Unmount (MNT_DETACH) every mount under prefix, the last mounted first. */
void tu_umount_under(const char *prefix);

/* systemd's side of NOTIFY_SOCKET: a datagram socket bound at path, read by a thread of its own
 * that keeps every notification, one per line (a daemon whose notifications nobody read would
 * fill the queue and block in sendmsg). */
/* Run base's loop until pred(arg) holds or timeout_ms passes; a 10 ms timer bounds each turn,
 * so a state reached without an event of its own is still seen. */
struct event_base;
bool tu_loop_until(struct event_base *base, bool (*pred)(void *arg), void *arg, int timeout_ms);

struct tu_notify;
struct tu_notify *tu_notify_start(const char *path);
/* How much has been received: an offset for tu_notify_wait's from. */
size_t tu_notify_len(struct tu_notify *n);
/* True once needle is among the notifications after offset from, within timeout_ms. */
bool tu_notify_wait(struct tu_notify *n, const char *needle, size_t from, int timeout_ms);
void tu_notify_stop(struct tu_notify *n);
