/* CPU time: a domain's (its cgroup, else its qemu process) and the host's busy time. Files are
 * opened once and pread every tick: a tick costs one read per domain, no scan of /proc. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct cpu_source;

enum cpu_source_kind { CPU_SOURCE_CGROUP2, CPU_SOURCE_CGROUP1, CPU_SOURCE_PROCESS };

/* Resolve pid's cgroups through proc_root/<pid>/cgroup and the cgroup mounts at or below
 * cgroup_root (from proc_root/self/mountinfo; without it, the usual places: cgroup_root itself,
 * cgroup_root/unified, cgroup_root/cpuacct, cgroup_root/cpu,cpuacct). In order: cgroup v2
 * cpu.stat (usage_usec) of the domain's cgroup, wherever the v2 hierarchy is mounted; v1
 * cpuacct.usage likewise; else proc_root/<pid>/stat (utime+stime of the process). libvirt's
 * "…/emulator" or "…/libvirt/emulator" leaf is walked up to the domain's own cgroup, so vCPU,
 * emulator and I/O threads and vhost workers all count. A cgroup that is not a domain's (the
 * root, one outside machine.slice or machine/, one not named as libvirt names a domain's) is
 * never read: see cpu_source_has_foreign_cgroup. */
int cpu_source_open(
	const char *proc_root, const char *cgroup_root, pid_t pid, struct cpu_source **ret);
/* The same, where the domain's own cgroup is known (Proxmox: "/qemu.slice/<vmid>.scope"): pid's
 * cgroup is read only if it is exactly own_cgroup (NULL: libvirt's rules above); any other is
 * foreign and the process is read. */
int cpu_source_open_in(const char *proc_root, const char *cgroup_root, pid_t pid,
	const char *own_cgroup, struct cpu_source **ret);
/* The cgroup mounts as cpu_source_open finds them (proc_root/self/mountinfo, else the usual
 * places), read once for many opens. mountinfo is long on a host whose domains each have a share
 * mounted, and reading it per domain made a listing of N domains cost O(N²); keep one only while
 * a hierarchy cannot have been mounted or moved since, within one listing (accounting.h), never
 * from one listing or event to the next. */
struct cpu_mounts;
struct cpu_mounts *cpu_mounts_read(const char *proc_root, const char *cgroup_root);
void cpu_mounts_free(struct cpu_mounts *m);
/* cpu_source_open_in with the mounts m found (and m's proc_root). */
int cpu_source_open_with(
	const struct cpu_mounts *m, pid_t pid, const char *own_cgroup, struct cpu_source **ret);
int cpu_source_read(struct cpu_source *s, uint64_t *ret_ns);
const char *cpu_source_path(const struct cpu_source *s);
enum cpu_source_kind cpu_source_kind(const struct cpu_source *s);
/* "cgroup2", "cgroup1", "process" (the values of powerd_domain_cpu_source's source label) */
const char *cpu_source_kind_name(enum cpu_source_kind kind);
/* The process was chosen because a mounted hierarchy with CPU accounting put pid in a cgroup
 * that is not a domain's own (qemu left in libvirtd's cgroup, or at the root). */
bool cpu_source_has_foreign_cgroup(const struct cpu_source *s);
/* Both were resolved to the same cgroup file (they may have been switched to their processes
 * since): two domains in one cgroup. */
bool cpu_source_is_same_cgroup(const struct cpu_source *a, const struct cpu_source *b);
/* Read the process instead of the cgroup from now on (its cgroup is shared); the cgroup's
 * identity is kept for cpu_source_is_same_cgroup. */
int cpu_source_use_process(struct cpu_source *s);
void cpu_source_free(struct cpu_source *s);

struct host_cpu;

int host_cpu_open(const char *proc_root, struct host_cpu **ret);
/* From the "cpu" line of /proc/stat: busy = all - idle - iowait; all excludes guest time (already
 * in user). Both in ns. */
int host_cpu_read(struct host_cpu *h, uint64_t *ret_busy_ns, uint64_t *ret_all_ns);
void host_cpu_free(struct host_cpu *h);
