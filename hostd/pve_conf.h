/* What powerd needs of a Proxmox VE VM's config (qemu-server's <vmid>.conf, DESIGN.md §5): its
 * name, its hookscript, whether the guest agent's virtio-serial bus qga0 exists, its SMBIOS uuid,
 * and the lock qemu-server left in it while an operation runs (pve_lock.h).
 * The file is hostile input: read bounded, parsed strictly (only the main section, before the
 * first [snapshot] or [PENDING] header), every error naming the line and the key. Pure parsing
 * plus one bounded read. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PVE_VMID_MIN 100
#define PVE_VMID_MAX 999999999u
#define PVE_CONF_MAX (1u << 20)	    /* bytes read of a config */
#define PVE_NAME_MAX 128	    /* a VM's name: a DNS name, qemu-server's own limit is lower */
#define PVE_HOOKSCRIPT_MAX 256	    /* <storage>:snippets/<file> */
#define PVE_LOCK_NAME_MAX 31	    /* lock: migrate, backup, snapshot-delete, ... */
#define PVE_HOOK_FILE "powerd-hook" /* the file name operators give powerd's hook */
#define PVE_HOOK_STORAGE_DEFAULT "local"

struct pve_conf {
	char name[PVE_NAME_MAX + 1];		 /* "" if none */
	char hookscript[PVE_HOOKSCRIPT_MAX + 1]; /* "" if none */
	bool has_agent_bus;			 /* agent enabled with type virtio: bus qga0.0 */
	char uuid[37];				 /* smbios1's uuid=, lower case; "" if none */
	char lock[PVE_LOCK_NAME_MAX + 1];	 /* qemu-server's lock: line; "" if none */
};

/* A vmid as qemu-server writes it: decimal, no sign, no leading zero, PVE_VMID_MIN..MAX. */
bool pve_vmid_parse(const char *s, size_t len, uint32_t *ret);
/* Whether a hookscript value is powerd's: <storage>:snippets/powerd-hook. */
bool pve_hookscript_is_powerd(const char *value);
/* A storage id as Proxmox allows it ([a-z][a-z0-9._-]*, at most 64). */
bool pve_storage_is_valid(const char *storage);

/* Parse a config's text: 0 with *ret set, or -EINVAL with "line N: key: what" in err and *ret
 * untouched (err is written only then). */
int pve_conf_parse(const char *buf, size_t len, struct pve_conf *ret, char *err, size_t err_size);
/* Read <config_dir>/<vmid>.conf (a regular file, not followed through a symlink, at most
 * PVE_CONF_MAX bytes) and parse it: -ENOENT if there is none; other errors in err, prefixed with
 * the path. */
int pve_conf_read(
	const char *config_dir, uint32_t vmid, struct pve_conf *ret, char *err, size_t err_size);
