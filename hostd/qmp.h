/* A QMP client for one short session (DESIGN.md §5: qemu's monitor serves one client at a time
 * and Proxmox's own tools give up after a few seconds): connect to qemu's monitor socket, read the
 * greeting, qmp_capabilities, a few commands, close. Every step is bounded by the session's
 * deadline; asynchronous events in between are skipped; replies are parsed with json-c. Nothing
 * here keeps the socket open beyond qmp_close. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define QMP_REPLY_MAX (64u << 10) /* one reply line */
#define QMP_ERROR_MAX 256

struct qmp;
struct json_object;

/* Connect to path and negotiate, all within timeout_ms from now (the whole session's budget:
 * later commands share it). -ETIMEDOUT when qemu does not answer in time (another client holds
 * the monitor), -EPROTO when what it says is not QMP. */
int qmp_open(const char *path, unsigned timeout_ms, struct qmp **ret);
/* Run command with args (a JSON object, borrowed; NULL for none). 0 and, if ret is not NULL, the
 * reply's "return" value (a new reference for the caller to put); or -EREMOTEIO with qemu's error
 * text in the session (qmp_error); or -errno of the transport. */
int qmp_execute(
	struct qmp *q, const char *command, struct json_object *args, struct json_object **ret);
/* qemu's "desc" of the last -EREMOTEIO ("" if none). */
const char *qmp_error(const struct qmp *q);
void qmp_close(struct qmp *q);
