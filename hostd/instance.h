/* The host instance id (DESIGN.md §4): where a domain's energy counters come from. Stable for
 * one host boot and one share_dir: a random id kept in <share_dir>/.powerd/instance next to the
 * boot_id it was made for, made anew when the boot differs (or the file is missing or damaged).
 * The guest rebases its served counters when the instance changes. */
#pragma once

#include "common/channel_record.h"

#define HOST_INSTANCE_FILE "instance"

/* The instance for share_dir (created as needed; share_dir/.powerd must exist) on the boot named
 * by <proc_root>/sys/kernel/random/boot_id, into ret (32 lowercase hex and a NUL). */
int host_instance_load(
	const char *share_dir, const char *proc_root, char ret[CHANNEL_INSTANCE_LEN + 1]);
/* A fresh random instance (getrandom), for when none can be kept. */
int host_instance_random(char ret[CHANNEL_INSTANCE_LEN + 1]);
