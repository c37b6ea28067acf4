/* qemu-server's lock on a VM (DESIGN.md §5), taken by powerd-host around every change of a VM's
 * ports (plug, unplug, and their marks), so that no such change falls inside a migration.
 *
 * qemu-server does everything to a VM under an exclusive flock(2) on
 * /var/lock/qemu-server/lock-<vmid>.conf (PVE::QemuConfig::config_file_lock, taken by
 * PVE::AbstractConfig::lock_config through PVE::Tools::lock_file_full, which opens the file for
 * appending and creates it): `qm migrate` holds it on the source from before its target starts
 * until the config has moved (PVE::AbstractMigrate::migrate's lock_vm), `qm start` holds it
 * around the start and its hookscript (vm_start), `qm set` around its write. Operations that run
 * longer without it leave a `lock:` line in the config meanwhile (migrate, backup, suspending,
 * snapshot, ...). A port plugged on the source after a migration target's hook read the
 * source's mark would make the target fail the incoming state after the source finished, and
 * Proxmox stops the source anyway: the guest would be lost.
 *
 * The daemon takes the lock without waiting: a VM that is busy is served at a later check.
 * attach and detach wait for it as long as qemu-server's own commands do (lock_config, 10 s):
 * the daemon or a qm set may hold it a moment. The hook (pve_hook.c) never takes it: it runs
 * inside qm start, which holds it already. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "hostd/pve_conf.h"

#define PVE_LOCK_WAIT_CMD_MS 10000 /* attach, detach: lock_config's timeout */

/* Take vmid's lock, <lock_dir>/lock-<vmid>.conf (proxmox.lock_dir), as qemu-server does
 * (lock_dir made if missing), waiting up to wait_ms for it (0: not at all): the fd that holds it
 * (close() lets it go); -EWOULDBLOCK if another process holds it; another -errno if it could not
 * be opened or locked. err says why on an error. */
int pve_lock_try(const char *lock_dir, uint32_t vmid, unsigned wait_ms, char *err, size_t err_size);

/* pve_lock_try, then vmid's config read again under the lock (qemu-server may have changed it
 * since it was last read): the fd, with *conf; -EWOULDBLOCK: the lock is held; -EBUSY: the
 * config has a lock: line (conf->lock says which); another -errno: the lock could not be taken
 * or the config not read. err says why on an error; the lock is held only on success. */
int pve_lock_ports(const char *lock_dir, const char *config_dir, uint32_t vmid, unsigned wait_ms,
	struct pve_conf *conf, char *err, size_t err_size);
