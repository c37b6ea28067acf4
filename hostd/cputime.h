/* CPU time: a domain's (its cgroup, else its qemu process) and the host's busy time. Files are
 * opened once and pread every tick: a tick costs one read per domain, no scan of /proc. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

struct cpu_source;

/* Resolve pid's cgroup through proc_root/<pid>/cgroup: cgroup v2 cpu.stat (usage_usec) of the
 * domain's cgroup (libvirt's "…/emulator" or "…/libvirt/emulator" leaf is walked up to the
 * domain's scope, so vCPU, emulator and I/O threads all count), v1 cpuacct.usage likewise;
 * else proc_root/<pid>/stat (utime+stime of the process). */
int cpu_source_open(
	const char *proc_root, const char *cgroup_root, pid_t pid, struct cpu_source **ret);
int cpu_source_read(struct cpu_source *s, uint64_t *ret_ns);
const char *cpu_source_path(const struct cpu_source *s);
void cpu_source_free(struct cpu_source *s);

struct host_cpu;

int host_cpu_open(const char *proc_root, struct host_cpu **ret);
/* From the "cpu" line of /proc/stat: busy = all - idle - iowait; all excludes guest time (already
 * in user). Both in ns. */
int host_cpu_read(struct host_cpu *h, uint64_t *ret_busy_ns, uint64_t *ret_all_ns);
void host_cpu_free(struct host_cpu *h);
