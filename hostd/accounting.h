/* One powerd-host tick, and the per-domain energy state it keeps: read the host's energy
 * (sensor.c), host busy CPU time and each domain's CPU time (cputime.c), split the interval's
 * energy (attribution.c), hand it to each domain's publishers (publish.h: its tree, its channel),
 * render host metrics.
 * Knows nothing of libvirt or mounts: the domain manager adds and removes domains. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/strbuf.h"
#include "hostd/host_config.h"
#include "hostd/publish.h"

struct accounting;
struct acct_domain;

/* Opens the sensor (powercap under cfg->powercap_root, else the estimate) and /proc/stat.
 * cfg is borrowed and must outlive the object (a reload calls accounting_set_config). */
int accounting_new(const struct host_config *cfg, struct accounting **ret);
void accounting_free(struct accounting *a);
void accounting_set_config(struct accounting *a, const struct host_config *cfg);

/* The host instance id (instance.h) written in every heartbeat and channel record; a random one
 * until this is called. */
void accounting_set_instance(struct accounting *a, const char *instance);
const char *accounting_instance(const struct accounting *a);
/* Track a domain whose tree lives in the directory tree_dirfd (duplicated; the caller keeps its
 * own). Creates or adopts the tree: existing energy_uj values are continued, never reset.
 * tree_dirfd -1: no tree (counters start at 0). */
int accounting_add_domain(
	struct accounting *a, const char *name, int tree_dirfd, struct acct_domain **ret);
void accounting_remove_domain(struct accounting *a, struct acct_domain *d);
/* The domain's tree moves to tree_dirfd (duplicated): its counters go on from their current
 * values, whatever the new directory held. */
int accounting_domain_set_tree(struct accounting *a, struct acct_domain *d, int tree_dirfd);
/* Give the domain a publisher in slot (owned from now on; NULL removes it), freeing the one it
 * replaces. The tree's slot is managed by the calls above. */
void accounting_domain_set_publisher(
	struct acct_domain *d, enum publish_slot slot, struct publisher *p);
struct publisher *accounting_domain_publisher(const struct acct_domain *d, enum publish_slot slot);
/* A manager's listing is being applied (domains_apply): from begin to end (they nest) the cgroup
 * mounts are read once, at the first pid resolved, for every pid resolved (cputime.h's
 * cpu_mounts); outside a listing each pid reads them anew. */
void accounting_listing_begin(struct accounting *a);
void accounting_listing_end(struct accounting *a);
/* The domain runs as pid (its qemu process): resolve its cgroup and keep its CPU-time file open.
 * pid 0: not running (no CPU time, energy stays). */
int accounting_domain_set_pid(struct accounting *a, struct acct_domain *d, pid_t pid);
/* The same, accepting only own_cgroup as the domain's cgroup (cpu_source_open_in). */
int accounting_domain_set_pid_in(
	struct accounting *a, struct acct_domain *d, pid_t pid, const char *own_cgroup);
/* For drivers without a host process (the test driver): CPU time comes from this callback. */
void accounting_domain_set_cpu_reader(
	struct acct_domain *d, int (*read_cpu_ns)(void *arg, uint64_t *ret_ns), void *arg);
const char *accounting_domain_name(const struct acct_domain *d);
/* Where the domain's CPU time comes from: "cgroup2", "cgroup1", "process" (its qemu process:
 * misses vhost workers and I/O threads outside it), "libvirt" (a cpu reader callback); NULL
 * while it does not run. The string is static. */
const char *accounting_domain_cpu_source(const struct acct_domain *d);
/* Cumulative energy attributed to the domain per zone (index as accounting_zone_name). */
uint64_t accounting_domain_energy_uj(const struct acct_domain *d, size_t zone);

/* The clock of intervals (tests inject one): CLOCK_BOOTTIME for the elapsed time energy counters
 * saw, CLOCK_MONOTONIC for the time the host ran. NULL: the real clocks. */
void accounting_set_clock(struct accounting *a,
	void (*clock)(void *arg, uint64_t *ret_boot_ns, uint64_t *ret_mono_ns), void *arg);

/* One interval. Errors of single domains are logged (once per streak) and do not fail the tick;
 * a failed host sensor read fails it (-errno) and nothing is attributed. */
int accounting_tick(struct accounting *a);

size_t accounting_n_zones(const struct accounting *a);
const char *accounting_zone_name(
	const struct accounting *a, size_t zone); /* "package-0", "core"… */
uint64_t accounting_host_energy_uj(const struct accounting *a, size_t zone);
double accounting_host_power_w(const struct accounting *a, size_t zone);
bool accounting_is_estimated(const struct accounting *a);
size_t accounting_n_domains(const struct accounting *a);
uint64_t accounting_last_tick_ns(const struct accounting *a); /* CPU cost of the last tick */

/* Host metrics (DESIGN.md §3), appended to out. libvirt_connected comes from the caller. */
void accounting_render(const struct accounting *a, bool libvirt_connected, struct strbuf *out);
