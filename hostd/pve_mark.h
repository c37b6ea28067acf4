/* Port marks in Proxmox VE's cluster file system (DESIGN.md §5): a node says which of its running
 * qemus have powerd's energy channel port, so that a migration target's hookscript plugs the
 * port exactly when the source has it. qemu fails a migration whose ports differ only after the
 * source has finished, and Proxmox stops the source anyway: a target that guessed wrong loses the
 * guest. A VM given the hookscript by hand while its port could not be plugged (powerd-host
 * stopped, channel: off, QMP failing) runs without the port; its target must not plug one.
 *
 * The marks of a node live in nodes/<node>/powerd/<vmid>.port of /etc/pve (pmxcfs replicates
 * them to every node before a write returns), found from proxmox.config_dir by its text:
 * <config_dir>/../powerd is this node's (/etc/pve/local/powerd), <config_dir>/../../nodes/<node>/
 * powerd another's. A mark holds the pid of the qemu that has the port. It is written after a
 * plug and removed before an unplug, when that qemu stops and when a new one starts (the hook's
 * pre-start), so that a mark present never claims a port that is not there while powerd runs.
 * The directory itself says the node keeps marks: without it a target cannot know, and refuses
 * the migration before the source is touched. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PVE_MARK_DIR "powerd"
#define PVE_NODE_NAME_MAX 63

enum pve_mark_peer {
	PVE_MARK_PEER_PORT,    /* the source's qemu has the port */
	PVE_MARK_PEER_NO_PORT, /* the source keeps marks and has none for the VM */
	PVE_MARK_PEER_UNKNOWN, /* the source keeps no marks (older powerd, or none ever ran) */
};

/* A node name as Proxmox VE has them (a host name label: letters, digits, '-', '.'). */
bool pve_mark_node_is_valid(const char *node);
/* This node's marks directory, made if missing (0 if it exists). */
int pve_mark_dir_make(const char *config_dir);
/* Mark vmid's qemu pid as having the port. */
int pve_mark_set(const char *config_dir, uint32_t vmid, pid_t pid);
/* Remove vmid's mark; with pid > 0 only a mark of that pid (a newer qemu's stays). 0 if there
 * was none. */
int pve_mark_clear(const char *config_dir, uint32_t vmid, pid_t pid);
/* Whether a mark can be written on this node now (/etc/pve is read-only without quorum): a file
 * written in this node's marks directory and removed again; 0 or -errno. */
int pve_mark_probe(const char *config_dir);
/* The pid in vmid's mark on this node; -ENOENT without one, -EBADMSG if it is not a mark. */
int pve_mark_get(const char *config_dir, uint32_t vmid, pid_t *ret);
/* What node's marks say of vmid (err: why, for a log line). < 0: the marks could not be read
 * (err says what), which a migration target must treat as unknown. */
int pve_mark_peer(const char *config_dir, const char *node, uint32_t vmid, enum pve_mark_peer *ret,
	char *err, size_t err_size);
/* Call fn for every vmid marked on this node (the daemon's sweep at start; pve_mark_get reads
 * the mark where fn needs it). */
int pve_mark_each(const char *config_dir, void (*fn)(uint32_t vmid, void *arg), void *arg);
/* vmid's port is plugged (into qemu pid; 0: not known) and its mark could not be written (mr),
 * under qemu-server's lock still: without a mark, a migration started once the lock goes (as
 * quorum returns) would plug no port on its target while the source has one, and qemu fails it
 * after the source finished. So the port comes out again over QMP (run_dir), unless a mark is
 * there already (this qemu's, or one a target plugs on or refuses), with which it matches. What
 * was done is logged: 0, the port left in; 1, taken out again; < 0, it could not be (the log line
 * names the fix). */
int pve_mark_failed(const char *config_dir, const char *run_dir, uint32_t vmid, pid_t pid, int mr);
