/* qemu-server's VM processes (DESIGN.md §5): a VM is a qemu process whose command line has
 * -pidfile <run_dir>/<vmid>.pid and whose pid file names it. A pid file alone is not trusted: qemu
 * killed with SIGKILL leaves it behind, and its pid may be another process's by now. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define PVE_CMDLINE_MAX (256u << 10) /* bytes of a command line read */

/* The pid <run_dir>/<vmid>.pid names (not followed through a symlink, strictly parsed). */
int pve_proc_read_pid(const char *run_dir, uint32_t vmid, pid_t *ret);
/* Whether pid's command line (proc_root/<pid>/cmdline) carries -pidfile <dir>/<vmid>.pid with dir
 * the directory run_st describes (compared by identity: qemu-server writes /var/run/qemu-server,
 * /run through a link). */
bool pve_proc_is_vm(const char *proc_root, pid_t pid, const struct stat *run_st, uint32_t vmid);
/* Both: the pid of vmid's running qemu; -ESRCH if the pid file names no such process. */
int pve_proc_vm_pid(const char *run_dir, const char *proc_root, uint32_t vmid, pid_t *ret);
