/* attach/detach on Proxmox VE (pve_attach.h). */
#include "hostd/pve_attach.h"

#include <getopt.h>
#include <stdio.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/util.h"
#include "hostd/host_config.h"
#include "hostd/pve_conf.h"
#include "hostd/pve_lock.h"
#include "hostd/pve_mark.h"
#include "hostd/pve_port.h"
#include "hostd/pve_proc.h"

struct pve_attach_args {
	bool is_attach;
	bool is_channel;
	const char *storage;
	uint32_t vmid;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: powerd-host [-c FILE] attach VMID --channel [--storage STORAGE]\n"
		   "       powerd-host [-c FILE] detach VMID [--channel]\n"
		   "(Proxmox VE: sets powerd's hookscript STORAGE:snippets/" PVE_HOOK_FILE
		   " with qm, default storage " PVE_HOOK_STORAGE_DEFAULT
		   ", and plugs the energy channel into the running VM)\n");
}

static int parse_args(int argc, char **argv, struct pve_attach_args *a)
{
	static const struct option opts[] = {
		{ "channel", no_argument, NULL, 'C' },
		{ "storage", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *vmid = NULL;
	int c;

	*a = (struct pve_attach_args){ .is_attach = streq(argv[0], "attach"),
		.storage = PVE_HOOK_STORAGE_DEFAULT };
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1 ||
		(optind < argc && !vmid)) {
		if (c == -1) {
			vmid = argv[optind++];
			continue;
		}
		switch (c) {
		case 'C':
			a->is_channel = true;
			break;
		case 's':
			a->storage = optarg;
			break;
		case 'c': /* loaded by main already */
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			log_err("%s: unknown option %s", argv[0], argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (!vmid || optind < argc) {
		log_err("%s: one VMID expected", argv[0]);
		return -EINVAL;
	}
	if (!pve_vmid_parse(vmid, strlen(vmid), &a->vmid)) {
		log_err("%s: %s is not a vmid (%u..%u)", argv[0], vmid, PVE_VMID_MIN, PVE_VMID_MAX);
		return -EINVAL;
	}
	if (a->is_attach && !a->is_channel) {
		log_err("attach: on Proxmox VE only --channel (a share needs args:, which blocks "
			"migration: see docs/proxmox.md)");
		return -EINVAL;
	}
	if (!pve_storage_is_valid(a->storage)) {
		log_err("%s: --storage %s is not a storage id", argv[0], a->storage);
		return -EINVAL;
	}
	return 0;
}

/* qm set VMID <args...>, from PATH; its output goes where ours goes. */
static int run_qm(uint32_t vmid, const char *opt, const char *value)
{
	char id[16];
	int status;
	pid_t pid;

	snprintf(id, sizeof(id), "%u", vmid);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char *argv[] = { "qm", "set", id, (char *)opt, (char *)value, NULL };
		execvp("qm", argv);
		fprintf(stderr, "powerd-host: cannot run qm: %s\n", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_err("VM %u: 'qm set %s %s %s' failed (status %d)", vmid, id, opt, value,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EIO;
	}
	return 0;
}

static bool is_running(const struct host_config *cfg, uint32_t vmid)
{
	pid_t pid;

	return pve_proc_vm_pid(cfg->pve_run_dir, cfg->proc_root, vmid, &pid) == 0;
}

/* qemu-server's lock on the VM (pve_lock.h), around a change of its ports and marks, waited for
 * as qemu-server's commands wait (the daemon, or a qm set, may hold it a moment): the fd, or < 0
 * with what was left undone (what) said and why. */
static int lock_ports(const struct host_config *cfg, uint32_t vmid, const char *what)
{
	struct pve_conf conf;
	char err[256];
	int fd = pve_lock_ports(cfg->pve_lock_dir, cfg->pve_config_dir, vmid, PVE_LOCK_WAIT_CMD_MS,
		&conf, err, sizeof(err));

	if (fd == -EWOULDBLOCK || fd == -EBUSY)
		log_err("VM %u: %s: %s; run this again once qemu-server is done", vmid, what, err);
	else if (fd < 0)
		log_err("VM %u: %s: %s", vmid, what, err);
	return fd;
}

static int attach(
	const struct host_config *cfg, const struct pve_attach_args *a, const struct pve_conf *conf)
{
	_cleanup_free_ char *value = xasprintf("%s:snippets/" PVE_HOOK_FILE, a->storage);
	enum pve_port_result res;
	char err[256];
	pid_t pid;
	int r;

	if (conf->lock[0]) { /* qm set refuses it too */
		log_err("VM %u: its config is locked by qemu-server (lock: %s): nothing changed; "
			"run this again once qemu-server is done",
			a->vmid, conf->lock);
		return 1;
	}
	if (conf->hookscript[0] && !pve_hookscript_is_powerd(conf->hookscript)) {
		log_err("VM %u already has the hookscript %s, and a VM has one: call powerd's from "
			"it instead, as its first line for every phase: powerd-host pve-hook "
			"\"$1\" "
			"\"$2\" || exit $? (see docs/proxmox.md)",
			a->vmid, conf->hookscript);
		return 1;
	}
	if (!pve_hookscript_is_powerd(conf->hookscript)) {
		if (run_qm(a->vmid, "--hookscript", value) < 0)
			return 1;
		printf("VM %u: hookscript %s set\n", a->vmid, value);
	} else {
		printf("VM %u: hookscript %s already set\n", a->vmid, conf->hookscript);
	}
	if (!conf->has_agent_bus) {
		printf("VM %u: no guest agent bus: the channel needs 'qm set %u --agent 1' and a "
		       "restart\n",
			a->vmid, a->vmid);
		return 0;
	}
	if (pve_proc_vm_pid(cfg->pve_run_dir, cfg->proc_root, a->vmid, &pid) < 0)
		return 0; /* not running: the hook plugs it at the next start */
	/* the plug and its mark under qemu-server's lock: never inside a migration */
	_cleanup_close_ int lock_fd =
		lock_ports(cfg, a->vmid, "energy channel not plugged (powerd-host plugs it later)");
	if (lock_fd < 0)
		return 1;
	r = pve_port_plug(
		cfg->pve_run_dir, a->vmid, PVE_PORT_HOOK_TIMEOUT_MS, false, &res, err, sizeof(err));
	if (r < 0) {
		log_err("VM %u: cannot plug the energy channel now: %s (powerd-host tries again)",
			a->vmid, err);
		return 1;
	}
	printf("VM %u: energy channel %s\n", a->vmid,
		res == PVE_PORT_PLUGGED ? "plugged" : "already plugged");
	r = pve_mark_set(cfg->pve_config_dir, a->vmid, pid);
	if (r < 0) /* the port out again, unless a mark is there */
		return pve_mark_failed(cfg->pve_config_dir, cfg->pve_run_dir, a->vmid, pid, r) != 0;
	return 0;
}

static int detach(
	const struct host_config *cfg, const struct pve_attach_args *a, const struct pve_conf *conf)
{
	char err[256];
	int r;

	/* The mark and the port first, under qemu-server's lock (changed inside a migration, they
	 * would make its target differ from its source), then the hookscript: in between, a
	 * migration target's hook finds no mark and plugs nothing, as the source has nothing. The
	 * mark goes before the port, a stopped VM's too (it is stale): left behind, it would have
	 * a migration target plug a port. */
	{
		_cleanup_close_ int lock_fd = lock_ports(
			cfg, a->vmid, "nothing changed: the energy channel's port and mark stay");
		if (lock_fd < 0)
			return 1;
		r = pve_mark_clear(cfg->pve_config_dir, a->vmid, 0);
		if (r < 0) {
			log_err("VM %u: cannot remove its port mark in %s, so the port and the "
				"hookscript stay: %s",
				a->vmid, cfg->pve_config_dir, strerror(-r));
			return 1;
		}
		if (is_running(cfg, a->vmid)) {
			if (pve_port_unplug(cfg->pve_run_dir, a->vmid, PVE_PORT_HOOK_TIMEOUT_MS,
				    err, sizeof(err)) < 0) {
				log_err("VM %u: cannot unplug the energy channel, so the "
					"hookscript "
					"stays: %s",
					a->vmid, err);
				return 1;
			}
			printf("VM %u: energy channel unplugged\n", a->vmid);
		}
	}
	if (pve_hookscript_is_powerd(conf->hookscript)) {
		if (run_qm(a->vmid, "--delete", "hookscript") < 0)
			return 1;
		printf("VM %u: hookscript %s removed\n", a->vmid, conf->hookscript);
	} else if (conf->hookscript[0]) {
		printf("VM %u: its hookscript %s is not powerd's: left as it is\n", a->vmid,
			conf->hookscript);
	}
	return 0;
}

int pve_attach_main(int argc, char **argv, const struct host_config *cfg)
{
	struct pve_attach_args a;
	struct pve_conf conf;
	char err[512];
	int r;

	r = parse_args(argc, argv, &a);
	if (r > 0)
		return 0;
	if (r < 0) {
		usage(stderr);
		return 2;
	}
	r = pve_conf_read(cfg->pve_config_dir, a.vmid, &conf, err, sizeof(err));
	if (r < 0) {
		log_err("VM %u: %s", a.vmid, err);
		return 1;
	}
	return a.is_attach ? attach(cfg, &a, &conf) : detach(cfg, &a, &conf);
}
