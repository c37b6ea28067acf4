/* powerd-guest's configuration: the schema of /etc/powerd/guest.yaml (DESIGN.md §3), its built-in
 * defaults, and loading with the "a missing default file means defaults" rule. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_CONFIG_DEFAULT_PATH "/etc/powerd/guest.yaml"
/* source: the energy channel's port when there is one, else the share's tree. */
#define GUEST_SOURCE_AUTO "auto"
#define GUEST_DEFAULT_SOURCE GUEST_SOURCE_AUTO
#define GUEST_DEFAULT_TREE "/var/scaphandre"
#define GUEST_DEFAULT_TREE_OUT "/run/powerd/powercap"
/* A sysfs root for readers of the prometheus/procfs library: SYSFS_OUT/class/powercap. */
#define GUEST_DEFAULT_SYSFS_OUT "/run/powerd/sysfs"
#define GUEST_DEFAULT_LISTEN "[::]:9732"
#define GUEST_INTERVAL_MIN_MS 100
#define GUEST_INTERVAL_MAX_MS (3600 * 1000)

enum guest_metric_names {
	GUEST_NAMES_NATIVE,
	GUEST_NAMES_SCAPHANDRE,
};

enum guest_attribution {
	GUEST_ATTR_UNITS,
	GUEST_ATTR_PROCESSES,
	GUEST_ATTR_NONE,
};

struct guest_config {
	char *source;	 /* "auto", a tree's path, or a port device's path */
	char *tree_out;	 /* where a channel-fed guest lays out its tree; "" for none */
	char *sysfs_out; /* a sysfs root whose class/powercap lists the zones flat; "" for none */
	uint64_t interval_ms;
	char *listen;
	int metric_names; /* enum guest_metric_names */
	int attribution;  /* enum guest_attribution */
	char *proc_root;
	char *cgroup_root;
	int log_level_index; /* index into "error".."debug" */
};

/* Fill c with the built-in defaults (strings on the heap). */
void guest_config_init(struct guest_config *c);
void guest_config_free(struct guest_config *c);
/* A deep copy. */
void guest_config_copy(struct guest_config *dst, const struct guest_config *src);
/* The syslog priority of c's log_level. */
int guest_config_log_level(const struct guest_config *c);

/* Load path (GUEST_CONFIG_DEFAULT_PATH when NULL) into *ret, which is initialised here.
 * Without an explicit path a missing file means the defaults; any other problem is -EINVAL or
 * -ENOENT with err saying "FILE:LINE:COLUMN: KEY: what is wrong". ret is untouched on failure. */
int guest_config_load(const char *path, struct guest_config *ret, char *err, size_t err_size);
