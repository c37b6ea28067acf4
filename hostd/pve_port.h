/* The energy channel's port in a Proxmox VE VM (DESIGN.md §5): plugged over QMP into the guest
 * agent's virtio-serial bus, always with the same ids, bus and port number, so that a migration
 * target that got it from powerd's hookscript matches the source ("Ports active on source and
 * destination" are compared by number). qemu listens on the port's unix socket; powerd-host
 * connects to it as to libvirt's. Used by the daemon (manager_proxmox.c), pve-hook and attach. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PVE_PORT_CHARDEV_ID "powerd-energy"
#define PVE_PORT_DEVICE_ID "powerd-energy0"
#define PVE_PORT_BUS "qga0.0" /* qemu-server's agent: -device virtio-serial,id=qga0 */
#define PVE_PORT_NR 2	      /* the agent's port takes 1 (0 is kept for a console) */
/* The daemon's budget: a QMP that is busy (qemu-server, a backup) is tried again later. */
#define PVE_PORT_TIMEOUT_MS 500
/* The hook's: it runs once, while qemu-server waits for it. */
#define PVE_PORT_HOOK_TIMEOUT_MS 4000

enum pve_port_result {
	PVE_PORT_PLUGGED,     /* plugged now */
	PVE_PORT_WAS_PLUGGED, /* it was there already */
};

/* <run_dir>/<vmid>.qmp, qemu-server's monitor socket. */
char *pve_port_qmp_path(const char *run_dir, uint32_t vmid);
/* <run_dir>/<vmid>.powerd, the port's socket (qemu listens on it). */
char *pve_port_socket_path(const char *run_dir, uint32_t vmid);

/* Plug the port into vmid's qemu (idempotent). -ENODEV: no bus qga0.0 (no agent: 1); -EREMOTEIO:
 * qemu refused (its words in err); -ETIMEDOUT, -ENOENT, -ECONNREFUSED: no answer (err says);
 * -EAGAIN: qemu waits for an incoming migration and !is_incoming_ok (only the hook, which knows
 * whether the source has the port, may plug one then). */
int pve_port_plug(const char *run_dir, uint32_t vmid, unsigned timeout_ms, bool is_incoming_ok,
	enum pve_port_result *ret, char *err, size_t err_size);
/* Whether vmid's qemu has the guest agent's virtio-serial bus qga0. */
int pve_port_has_bus(const char *run_dir, uint32_t vmid, unsigned timeout_ms, bool *ret, char *err,
	size_t err_size);
/* Remove it (device, then chardev); 0 if it was not there. */
int pve_port_unplug(
	const char *run_dir, uint32_t vmid, unsigned timeout_ms, char *err, size_t err_size);
/* Stop vmid's qemu (QMP quit). */
int pve_port_quit(const char *run_dir, uint32_t vmid, unsigned timeout_ms);
