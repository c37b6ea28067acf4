/* powerd-guest: the VM's power sensor exporter. main() only wires: arguments, configuration,
 * logging, then the daemon or a one-shot sample. */
#include <getopt.h>
#include <stdio.h>

#include "common/log.h"
#include "guestd/daemon.h"
#include "guestd/guest_config.h"
#include "guestd/status.h"
#include "version.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: powerd-guest [-c FILE] [--check-config] [--once] [--version] [--help]\n"
		   "       powerd-guest [-c FILE] status\n"
		   "  -c, --config FILE  configuration (default " GUEST_CONFIG_DEFAULT_PATH ")\n"
		   "      --check-config check the configuration and exit\n"
		   "      --once         take two samples one interval apart, print the metrics\n"
		   "      --version      print the version\n"
		   "  status             the running daemon's zones and health (exit 0 healthy,\n"
		   "                     1 not healthy, 3 not running)\n");
}

int main(int argc, char *argv[])
{
	enum { OPT_CHECK = 256, OPT_ONCE, OPT_VERSION };
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL;
	bool is_check = false, is_once = false;
	struct guest_config cfg;
	struct daemon *d;
	char err[512] = "";
	int opt, r;

	log_setup("powerd-guest");
	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case OPT_CHECK:
			is_check = true;
			break;
		case OPT_ONCE:
			is_once = true;
			break;
		case OPT_VERSION:
			printf("powerd-guest %s\n", POWERD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	bool is_status = optind + 1 == argc && streq(argv[optind], "status");
	if (optind < argc && !is_status) {
		usage(stderr);
		return 2;
	}

	r = guest_config_load(config_path, &cfg, err, sizeof(err));
	if (r < 0) {
		log_err("%s", err[0] ? err : strerror(-r));
		return 2;
	}
	log_set_max_level(guest_config_log_level(&cfg));
	if (is_check) {
		guest_config_free(&cfg);
		return 0;
	}
	if (is_status) {
		r = guest_status_main(&cfg);
		guest_config_free(&cfg);
		return r;
	}
	if (is_once) {
		r = daemon_once(&cfg);
		guest_config_free(&cfg);
		return r;
	}
	r = daemon_new(&cfg, config_path, &d);
	guest_config_free(&cfg);
	if (r < 0)
		return 1;
	r = daemon_run(d);
	daemon_free(d);
	return r;
}
