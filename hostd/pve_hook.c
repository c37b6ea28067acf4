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

static int post_start(const struct host_config *cfg, uint32_t vmid)
{
	const char *from = getenv("PVE_MIGRATED_FROM");
	bool is_migration = from && *from;
	enum pve_port_result res;
	char err[256];
	int r;

	r = pve_port_plug(cfg->pve_run_dir, vmid, PVE_PORT_HOOK_TIMEOUT_MS, &res, err, sizeof(err));
	if (r == 0) {
		log_info("VM %u: energy channel port %s%s", vmid,
			res == PVE_PORT_PLUGGED ? "plugged" : "already plugged",
			is_migration ? " (migration target)" : "");
		return 0;
	}
	if (r == -ENODEV) {
		/* The same config on the source: it has no agent bus, so no port either. */
		log_warn("VM %u: %s: no energy channel (agent: 1 gives it one)", vmid, err);
		return 0;
	}
	log_err("VM %u: cannot plug the energy channel port: %s", vmid, err);
	if (is_migration)
		stop_incoming(cfg, vmid);
	return 1;
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
	if (!streq(argv[2], "post-start"))
		return 0;
	if (daemon_load_config(
		    config_path ? config_path : HOST_CONFIG_DEFAULT_PATH, !config_path, &cfg) < 0) {
		/* no run_dir to trust: the default one is qemu-server's own */
		host_config_init(&cfg);
		log_err("VM %u: configuration unusable, using qemu-server's %s", vmid,
			cfg.pve_run_dir);
		r = post_start(&cfg, vmid);
		host_config_free(&cfg);
		return r;
	}
	r = post_start(&cfg, vmid);
	host_config_free(&cfg);
	return r;
}
