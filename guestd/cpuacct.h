/* Reading CPU time inside the guest: busy time from <proc_root>/stat, per systemd unit from the
 * cgroup tree (v2 cpu.stat or v1 cpuacct.usage), per process from <proc_root>/<pid>/stat. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One consumer's cumulative CPU time. key identifies it across samples (a unit name, or a
 * process's "pid:starttime" so a reused pid is a new process); labels are for the exposition. */
struct cpu_sample {
	char *key;
	char *unit; /* units: "sshd.service" */
	char *pid;  /* processes: "1234" */
	char *comm;
	char *exe;     /* the executable's full path, "" when unreadable (scaphandre mode only) */
	char *cmdline; /* arguments joined by spaces (scaphandre mode only) */
	uint64_t cpu_ns;
};

struct cpu_samples {
	struct cpu_sample *v; /* sorted by key */
	size_t n;
};

void cpu_samples_free(struct cpu_samples *s);

/* The guest's busy CPU time: all − idle − iowait (steal excluded: the vCPU was not running). */
int cpuacct_busy_ns(const char *proc_root, uint64_t *ret_ns);
/* Parse the aggregate "cpu" line of a /proc/stat content. */
int cpuacct_parse_stat(const char *buf, uint64_t *ret_ns);

enum cgroup_layout {
	CGROUP_LAYOUT_NONE,
	CGROUP_LAYOUT_V2,	/* <root>/[S.slice/...]X.service/cpu.stat usage_usec */
	CGROUP_LAYOUT_V1,	/* <root>/cpu,cpuacct/[S.slice/...]X.service/cpuacct.usage */
	CGROUP_LAYOUT_V1_SPLIT, /* <root>/cpuacct/[S.slice/...]X.service/cpuacct.usage */
};

enum cgroup_layout cpuacct_cgroup_layout(const char *cgroup_root);
/* Every unit with a cgroup (service, scope, socket, mount, swap) in any slice, nested slices
 * included, with its CPU time, named as systemd names it (the leaf unit name, systemd's '_'
 * escape undone). Slices are walked, not counted; a unit's sub-cgroups are part of it. -ENOENT
 * when no layout was found. */
int cpuacct_units(const char *cgroup_root, struct cpu_samples *ret);
/* Every process under proc_root; exe and cmdline only when with_details. */
int cpuacct_processes(const char *proc_root, bool with_details, struct cpu_samples *ret);
