/* The parts of systemd's service protocol the daemons use, spoken directly (sd_notify(3),
 * sd_listen_fds(3), sd_watchdog_enabled(3) describe it): so that neither daemon links libsystemd,
 * which alone brought six more libraries (libgcrypt, liblzma, libzstd, liblz4, libcap,
 * libgpg-error) and about 1 MiB of resident pages into a guest daemon of 4 MiB. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The first descriptor systemd passes (socket activation), under sd-daemon.h's name. */
#define SD_LISTEN_FDS_START 3

/* How many descriptors systemd passed to this process (LISTEN_FDS, when LISTEN_PID is ours),
 * each then marked close-on-exec; 0 when none; -EINVAL on a malformed variable. The variables
 * are unset, so that children do not take them for theirs. */
int sd_daemon_listen_fds(void);
/* 1 when fd is a stream socket in the listening state, 0 when it is something else. */
int sd_daemon_is_listening_stream(int fd);
/* The watchdog interval systemd asked for (WATCHDOG_USEC, when WATCHDOG_PID is unset or ours):
 * 1 with *ret_usec set, 0 when there is none, -EINVAL on a malformed variable. */
int sd_daemon_watchdog_usec(uint64_t *ret_usec);
/* Send state ("READY=1", "STATUS=…") to NOTIFY_SOCKET, a path or an abstract name ('@…').
 * may_block: wait while the socket's queue is full (state changes must arrive) or drop the
 * message (-EAGAIN: a STATUS= or WATCHDOG=1 superseded by the next one). 0 when there is no
 * NOTIFY_SOCKET, 1 when sent, else a negative errno (-EAFNOSUPPORT: another kind of address). */
int sd_daemon_notify(const char *state, bool may_block);
