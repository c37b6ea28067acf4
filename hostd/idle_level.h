/* The idle level of idle_power: host when estimate.idle_watts does not give it: per zone, the
 * lowest average power of a clean interval (not a first sample, a reset, a failed read, a gap or
 * a suspend), kept across restarts in <share_dir>/.powerd/idle-level so that a daemon restarted
 * under load does not take the loaded power for idle. A zone is still "learning" until an
 * interval with the host's CPUs at most IDLE_LEVEL_IDLE_UTIL busy has been seen: until then its
 * level may be a loaded power, and domains get too little.
 *
 * File (text, replaced atomically): "version 1", then one line per zone "<name> <µW> <idled>",
 * idled 1 once a quiet interval was seen. Unknown zones and malformed lines are ignored. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDLE_LEVEL_FILE "idle-level"
#define IDLE_LEVEL_IDLE_UTIL 0.10
/* A lower level is written at most this often (and when the daemon stops). */
#define IDLE_LEVEL_SAVE_NS (UINT64_C(60) * 1000000000)

struct idle_level;

/* names[0..n) are the zone names (borrowed: they must outlive the object); share_dir NULL keeps
 * nothing on disk. The file is read at the first idle_level_sync. */
struct idle_level *idle_level_new(const char *share_dir, const char *const *names, size_t n);
/* Writes a level not yet written, then frees. */
void idle_level_free(struct idle_level *l);

/* A clean interval of zone z had power_w; util its host CPU utilisation (busy / all). */
void idle_level_observe(struct idle_level *l, size_t z, double power_w, double util);
/* The learned level of zone z: false when none yet. */
bool idle_level_get(const struct idle_level *l, size_t z, double *ret_w);
bool idle_level_is_learning(const struct idle_level *l, size_t z);
/* Once per tick: read the file the first time share_dir/.powerd exists, write a lower level
 * at most every IDLE_LEVEL_SAVE_NS of now_ns. */
void idle_level_sync(struct idle_level *l, uint64_t now_ns);

/* The file's content, pure: parse into l (matching names), format from it. */
int idle_level_parse(struct idle_level *l, const char *buf, size_t len);
char *idle_level_format(const struct idle_level *l);
