/* powerd's Proxmox VE hookscript (pve_hook.h). */
#include "hostd/pve_hook.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/util.h"
#include "hostd/daemon.h"
#include "hostd/host_config.h"
#include "hostd/pve_conf.h"
#include "hostd/pve_mark.h"
#include "hostd/pve_port.h"
#include "hostd/pve_proc.h"

#define PVE_HOOK_QUIT_MS 2000

/* The incoming qemu must not take the state: quit over QMP, else kill it. */
static void stop_incoming(const struct host_config *cfg, uint32_t vmid)
{
	const char *run_dir = cfg->pve_run_dir;
	pid_t pid;

	if (pve_port_quit(run_dir, vmid, PVE_HOOK_QUIT_MS) == 0) {
		log_notice("VM %u: incoming qemu stopped (QMP quit): the migration fails before "
			   "the source is touched",
			vmid);
		return;
	}
	/* only a process that is this VM's qemu: a pid file may outlive it */
	if (pve_proc_vm_pid(run_dir, cfg->proc_root, vmid, &pid) == 0 && kill(pid, SIGKILL) == 0) {
		log_notice("VM %u: incoming qemu (pid %d) killed: the migration fails before the "
			   "source is touched",
			vmid, (int)pid);
		return;
	}
	log_err("VM %u: cannot stop the incoming qemu either", vmid);
}

/* A migration target that cannot know whether its source has the port: refused before the
 * source is touched, unless it has no agent bus (then neither can have a port). */
static int refuse_unknown(const struct host_config *cfg, uint32_t vmid, const char *why)
{
	bool has_bus = false;
	char err[256];

	if (pve_port_has_bus(cfg->pve_run_dir, vmid, PVE_PORT_HOOK_TIMEOUT_MS, &has_bus, err,
		    sizeof(err)) == 0 &&
		!has_bus) {
		log_info("VM %u: no guest agent bus qga0, so no energy channel on either node",
			vmid);
		return 0;
	}
	log_err("VM %u: %s: refusing the migration rather than risking the guest", vmid, why);
	stop_incoming(cfg, vmid);
	return 1;
}

/* The port is plugged and its mark could not be written (mr; pmxcfs read-only without quorum),
 * inside qm start, which holds qemu-server's lock. Without a mark, a migration of this qemu
 * started once the lock goes would plug no port on its target while this one has it, and qemu
 * fails that migration after its source finished.
 * - A start: the port comes out again before the hook returns (still under the lock), and the
 *   running powerd-host plugs and marks it once it can (it too unplugs while no mark can be
 *   written). A mark there already (pre-start could not remove a stale one) has a target plug
 *   the port: the port stays then, as it matches.
 * - A migration target: the port stays. The incoming state has it (the source's mark said so),
 *   and qemu would fail that state, now, without it: the source is already being sent.
 *   Refusing here would be safe too, but leave the VM unmigratable while this node cannot
 *   write, which a read-only pmxcfs already enforces: a migration out needs quorum to write
 *   lock: migrate into the config. Meanwhile powerd-host's check of the VM (plug: already
 *   there, mark) writes the mark, or takes the port out while it cannot. */
static void mark_failed(
	const struct host_config *cfg, uint32_t vmid, pid_t pid, const char *from, int mr)
{
	if (from)
		log_warn(
			"VM %u: cannot mark the port in %s (powerd-host writes it once it can): %s",
			vmid, cfg->pve_config_dir, strerror(-mr));
	else
		pve_mark_failed(cfg->pve_config_dir, cfg->pve_run_dir, vmid, pid, mr);
}

/* Plug the port (the source has it, or this is a start) and mark it. */
static int plug(const struct host_config *cfg, uint32_t vmid, const char *from)
{
	enum pve_port_result res;
	char err[256];
	pid_t pid;
	int r;

	/* an incoming qemu only where the source is known (PVE_MIGRATED_FROM) */
	r = pve_port_plug(cfg->pve_run_dir, vmid, PVE_PORT_HOOK_TIMEOUT_MS, from != NULL, &res, err,
		sizeof(err));
	if (r == -EAGAIN && !from)
		/* qemu-server leaves PVE_MIGRATED_FROM out on a remote migration (from another
		 * cluster, whose marks this node cannot read) */
		return refuse_unknown(cfg, vmid,
			"its qemu waits for an incoming migration without PVE_MIGRATED_FROM (a "
			"remote migration from another cluster), so whether the source has "
			"powerd's port cannot be told; take the channel off there first "
			"(powerd-host detach VMID --channel on the source)");
	if (r == -ENODEV && !from) {
		log_warn("VM %u: %s: no energy channel (agent: 1 gives it one)", vmid, err);
		return 0;
	}
	if (r < 0) {
		log_err("VM %u: cannot plug the energy channel port: %s", vmid, err);
		if (from)
			stop_incoming(cfg, vmid);
		return 1;
	}
	log_info("VM %u: energy channel port %s%s", vmid,
		res == PVE_PORT_PLUGGED ? "plugged" : "already plugged",
		from ? " (migration target)" : "");
	r = pve_proc_vm_pid(cfg->pve_run_dir, cfg->proc_root, vmid, &pid);
	if (r == 0)
		r = pve_mark_set(cfg->pve_config_dir, vmid, pid);
	else
		pid = 0;
	if (r < 0)
		mark_failed(cfg, vmid, pid, from, r);
	return 0;
}

/* On a migration target the port must match the source's: the source's node says (pve_mark.h). */
static int post_start_target(const struct host_config *cfg, uint32_t vmid, const char *from)
{
	enum pve_mark_peer peer;
	char err[512];
	int r;

	r = pve_mark_peer(cfg->pve_config_dir, from, vmid, &peer, err, sizeof(err));
	if (r == 0 && peer == PVE_MARK_PEER_PORT)
		return plug(cfg, vmid, from);
	if (r == 0 && peer == PVE_MARK_PEER_NO_PORT) {
		log_notice("VM %u: it runs on %s without powerd's port (%s): it migrates without "
			   "one, and powerd-host plugs it once the VM runs here",
			vmid, from, err);
		return 0;
	}
	_cleanup_free_ char *why = xasprintf(
		"cannot tell whether its qemu on %s has powerd's port (%s); start powerd-host on "
		"%s (it marks its VMs' ports), then migrate again",
		from, err, from);
	return refuse_unknown(cfg, vmid, why);
}

static int post_start(const struct host_config *cfg, uint32_t vmid)
{
	const char *from = getenv("PVE_MIGRATED_FROM");

	if (from && *from)
		return post_start_target(cfg, vmid, from);
	return plug(cfg, vmid, NULL);
}

/* No qemu of the VM runs yet (pre-start) or any more (post-stop): its mark goes. */
static int clear_mark(const struct host_config *cfg, uint32_t vmid, const char *phase)
{
	int r = pve_mark_clear(cfg->pve_config_dir, vmid, 0);

	if (r < 0)
		log_warn("VM %u (%s): cannot remove its port mark in %s: %s", vmid, phase,
			cfg->pve_config_dir, strerror(-r));
	return 0;
}

static int run_phase(const struct host_config *cfg, uint32_t vmid, const char *phase)
{
	pid_t pid;

	if (streq(phase, "post-start"))
		return post_start(cfg, vmid);
	if (streq(phase, "pre-start"))
		return clear_mark(cfg, vmid, phase);
	/* post-stop: unless a new qemu runs already (a reboot's cleanup came late) */
	if (streq(phase, "post-stop") &&
		pve_proc_vm_pid(cfg->pve_run_dir, cfg->proc_root, vmid, &pid) < 0)
		return clear_mark(cfg, vmid, phase);
	return 0;
}

int pve_hook_main(int argc, char **argv, const char *config_path)
{
	struct host_config cfg;
	uint32_t vmid;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: powerd-host [-c FILE] pve-hook VMID PHASE\n");
		return 2;
	}
	if (!pve_vmid_parse(argv[1], strlen(argv[1]), &vmid)) {
		log_err("pve-hook: %s is not a vmid (%u..%u)", argv[1], PVE_VMID_MIN, PVE_VMID_MAX);
		return 2;
	}
	if (!streq(argv[2], "post-start") && !streq(argv[2], "pre-start") &&
		!streq(argv[2], "post-stop"))
		return 0;
	if (daemon_load_config(
		    config_path ? config_path : HOST_CONFIG_DEFAULT_PATH, !config_path, &cfg) < 0) {
		/* no run_dir to trust: the default one is qemu-server's own */
		host_config_init(&cfg);
		log_err("VM %u: configuration unusable, using qemu-server's %s", vmid,
			cfg.pve_run_dir);
		r = run_phase(&cfg, vmid, argv[2]);
		host_config_free(&cfg);
		return r;
	}
	r = run_phase(&cfg, vmid, argv[2]);
	host_config_free(&cfg);
	return r;
}
