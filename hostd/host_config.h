/* powerd-host's configuration (DESIGN.md §3 "Host config"): defaults, schema, loading. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"

#define HOST_CONFIG_DEFAULT_PATH "/etc/powerd/host.yaml"
/* In the unit's RuntimeDirectory=; `powerd-host status` reads it. */
#define HOST_CONFIG_STATUS_SOCKET "/run/powerd-host/status.sock"

enum idle_policy { IDLE_POLICY_SHARED, IDLE_POLICY_HOST };
enum channel_mode { CHANNEL_MODE_AUTO, CHANNEL_MODE_OFF };
/* Where domains come from (DESIGN.md §5): auto is proxmox where proxmox.config_dir is a
 * directory, else libvirt. */
enum manager_kind { MANAGER_AUTO, MANAGER_LIBVIRT, MANAGER_PROXMOX };

/* qemu-server's places (Proxmox VE): this node's VM configs, where it keeps each VM's pid
 * file and QMP socket, and its per-VM lock files (pve_lock.h). */
#define HOST_PVE_CONFIG_DIR "/etc/pve/local/qemu-server"
#define HOST_PVE_RUN_DIR "/run/qemu-server"
#define HOST_PVE_LOCK_DIR "/var/lock/qemu-server"

struct host_config {
	int manager;		    /* enum manager_kind */
	char *pve_config_dir;	    /* proxmox.config_dir, HOST_PVE_CONFIG_DIR */
	char *pve_run_dir;	    /* proxmox.run_dir, HOST_PVE_RUN_DIR */
	char *pve_lock_dir;	    /* proxmox.lock_dir, HOST_PVE_LOCK_DIR */
	char *libvirt_uri;	    /* qemu:///system */
	uint64_t interval_ms;	    /* 1000 */
	char *share_dir;	    /* /var/lib/libvirt/scaphandre */
	uint64_t tmpfs_size;	    /* bytes; 5m */
	struct config_strv include; /* domains.include, default ["*"] */
	struct config_strv exclude; /* domains.exclude, default [] */
	char *powercap_root;	    /* /sys/class/powercap */
	char *proc_root;	    /* /proc */
	char *cgroup_root;	    /* /sys/fs/cgroup */
	int idle_power;		    /* enum idle_policy */
	int channel;		    /* enum channel_mode: the energy channel (DESIGN.md §4) */
	double idle_watts;	    /* estimate.idle_watts */
	double max_watts;	    /* estimate.max_watts */
	char *metrics_listen;	    /* 127.0.0.1:9731; "" = off */
	char *status_socket;	    /* HOST_CONFIG_STATUS_SOCKET; "" = none */
	int log_level;		    /* LOG_ERR..LOG_DEBUG */
};

extern const struct config_key host_config_schema[];

void host_config_init(struct host_config *c);
/* Load path over defaults. A missing file is fine when is_default_path (built-in defaults);
 * otherwise it is an error. Returns 0 or -errno with err filled ("FILE:LINE:COL: key: ..."). */
int host_config_load(
	const char *path, bool is_default_path, struct host_config *c, char *err, size_t err_size);
void host_config_free(struct host_config *c);
/* Whether a domain name matches include and not exclude (fnmatch globs). */
bool host_config_tracks(const struct host_config *c, const char *domain);
/* The same for a domain with a second name (Proxmox: vmid and name; title NULL: none): either
 * may be included, neither excluded. */
bool host_config_tracks_titled(const struct host_config *c, const char *domain, const char *title);
/* The manager to run: manager, with auto resolved on this machine. */
enum manager_kind host_config_manager(const struct host_config *c);

/* libvirt's qemu driver configuration: the user (and group) qemu runs as. */
#define HOST_QEMU_CONF "/etc/libvirt/qemu.conf"
/* The qemu driver's default user where qemu.conf sets none (Debian's build). */
#define HOST_QEMU_USER_DEFAULT "libvirt-qemu"

/* What the file cannot show, checked on this machine at start-up and by --check-config:
 * - share_dir is not / or a system directory (after realpath): an error, naming key and value
 *   (mounts there would hide the system's files);
 * - libvirt's qemu user (qemu_conf's user, else HOST_QEMU_USER_DEFAULT) can traverse every
 *   directory down to share_dir: an error where is_strict (--check-config), else a warning
 *   naming the directory and its mode (every start would fail "cannot initialize fsdev");
 * - idle_power: host without estimate.idle_watts: a warning (the idle level is then learned).
 * Each problem is logged. -EINVAL when there was an error. */
int host_config_check(const struct host_config *c, const char *qemu_conf, bool is_strict);

/* Pure parts, for tests. Whether path (absolute, resolved) is / or a system directory. */
bool host_config_is_system_dir(const char *path);
/* The value of qemu.conf's `key = "value"` (user, group) into ret: -ENOENT when not set. */
int host_qemu_conf_value(const char *buf, size_t len, const char *key, char *ret, size_t size);
/* Whether uid with groups gids[0..n) can search every directory from / down to dir (those that
 * exist): 0, or -EACCES with the first one that bars it, its mode and owner in err. */
int host_check_traverse(
	const char *dir, uid_t uid, const gid_t *gids, size_t n, char *err, size_t err_size);
