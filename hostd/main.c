/* powerd-host: parse the command line and hand over to the daemon, the hook's --prepare, or the
 * attach/detach subcommands. */
#include <getopt.h>
#include <stdio.h>

#include "common/log.h"
#include "hostd/attach.h"
#include "hostd/daemon.h"
#include "hostd/host_config.h"
#include "hostd/prepare.h"
#include "hostd/pve_attach.h"
#include "hostd/pve_hook.h"
#include "hostd/status.h"
#include "version.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: powerd-host [-c FILE] [--check-config] [--once]\n"
		"       powerd-host [-c FILE] --prepare DOMAIN\n"
		"       powerd-host [-c FILE] attach DOMAIN [--virtiofs | --channel]\n"
		"       powerd-host [-c FILE] detach DOMAIN\n"
		"       powerd-host [-c FILE] status\n"
		"       powerd-host [-c FILE] attach VMID --channel [--storage STORAGE]   (Proxmox "
		"VE)\n"
		"       powerd-host [-c FILE] detach VMID [--channel]                     (Proxmox "
		"VE)\n"
		"       powerd-host [-c FILE] pve-hook VMID PHASE\n"
		"       powerd-host --version | --help\n\n"
		"Shares each libvirt domain's (or Proxmox VE VM's) share of the host's RAPL\n"
		"energy with it as a powercap-like tree and an energy channel.\n\n"
		"  -c, --config FILE   configuration (default " HOST_CONFIG_DEFAULT_PATH ")\n"
		"      --check-config  load the configuration, report problems, exit\n"
		"      --once          two samples one interval apart, print the metrics, exit\n"
		"      --prepare DOM   make DOM's share and tree (the libvirt hook runs this)\n"
		"      --version       print the version\n"
		"  status              the running daemon's domains and health (exit 0 healthy,\n"
		"                      1 not healthy, 3 not running)\n"
		"  pve-hook VMID PHASE the Proxmox VE hookscript's body "
		"(/usr/share/powerd/powerd-hook)\n"
		"  attach VMID --channel  on Proxmox VE: qm set VMID --hookscript\n"
		"                      STORAGE:snippets/powerd-hook, and the channel plugged now\n"
		"  -h, --help          this text\n");
}

/* attach/detach: Proxmox's where the manager is proxmox, else libvirt's. */
static int attach_command(int argc, char **argv, const char *config)
{
	struct host_config cfg;
	int r;

	/* (a config that does not load is reported by libvirt's attach, as before) */
	host_config_init(&cfg);
	if (host_config_load(config ? config : HOST_CONFIG_DEFAULT_PATH, !config, &cfg, NULL, 0) <
			0 ||
		host_config_manager(&cfg) != MANAGER_PROXMOX) {
		host_config_free(&cfg);
		return attach_main(argc, argv, config);
	}
	r = pve_attach_main(argc, argv, &cfg);
	host_config_free(&cfg);
	return r;
}

static int status_command(const char *config)
{
	struct host_config cfg;
	int r;

	if (daemon_load_config(config ? config : HOST_CONFIG_DEFAULT_PATH, !config, &cfg) < 0)
		return 2;
	r = status_main(cfg.status_socket);
	host_config_free(&cfg);
	return r;
}

int main(int argc, char **argv)
{
	enum { OPT_CHECK = 256, OPT_ONCE, OPT_PREPARE, OPT_VERSION };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "prepare", required_argument, NULL, OPT_PREPARE },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *prepare = NULL;
	bool is_check = false, is_once = false;
	int c;

	log_setup("powerd-host");
	/* "+": stop at the first non-option, the subcommand, which parses its own. */
	while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case OPT_CHECK:
			is_check = true;
			break;
		case OPT_ONCE:
			is_once = true;
			break;
		case OPT_PREPARE:
			prepare = optarg;
			break;
		case OPT_VERSION:
			printf("powerd-host %s\n", POWERD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		if (streq(argv[optind], "attach") || streq(argv[optind], "detach"))
			return attach_command(argc - optind, argv + optind, config);
		if (streq(argv[optind], "pve-hook"))
			return pve_hook_main(argc - optind, argv + optind, config);
		if (streq(argv[optind], "status") && optind + 1 == argc)
			return status_command(config);
		fprintf(stderr, "powerd-host: unknown argument %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	const char *path = config ? config : HOST_CONFIG_DEFAULT_PATH;
	bool is_default = !config;
	if (is_check) {
		struct host_config cfg;
		if (daemon_load_config(path, is_default, &cfg) < 0)
			return 2;
		int r = host_config_check(&cfg, HOST_QEMU_CONF, true);
		host_config_free(&cfg);
		if (r < 0)
			return 2;
		printf("%s: ok\n", path);
		return 0;
	}
	if (prepare)
		return prepare_main(path, is_default, prepare);
	return daemon_run(path, is_default, is_once);
}
