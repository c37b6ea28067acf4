/* The CPU cost of powerd-host's real tick (accounting_tick: sensor read, host and domain CPU
 * time, attribution, every domain's tree written) against a fixture of N domains on tmpfs.
 *   bench_tick N [RUNS] */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "bench/harness.h"
#include "common/log.h"
#include "common/util.h"
#include "hostd/accounting.h"
#include "hostd/host_config.h"

static int tick(void *arg)
{
	return accounting_tick(arg);
}

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = xstrdup(value);
}

int main(int argc, char **argv)
{
	struct host_config cfg;
	struct accounting *a;
	struct fixture *f;
	struct bench_result res;
	unsigned runs = 5;
	size_t n;
	char path[64];
	int r;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_tick N [RUNS]\n");
		return 2;
	}
	n = strtoul(argv[1], NULL, 10);
	if (argc > 2)
		runs = (unsigned)strtoul(argv[2], NULL, 10);
	bench_raise_nofile();
	log_set_max_level(LOG_WARNING);
	fixture_new(n, &f);

	host_config_init(&cfg);
	set_str(&cfg.powercap_root, f->powercap_root);
	set_str(&cfg.proc_root, f->proc_root);
	set_str(&cfg.cgroup_root, f->cgroup_root);
	r = accounting_new(&cfg, &a);
	if (r < 0)
		bench_die("accounting_new", -r);
	struct acct_domain *last = NULL;
	for (size_t i = 0; i < n; i++) {
		struct acct_domain *d;

		snprintf(path, sizeof(path), "vm%zu", i);
		_cleanup_close_ int fd =
			openat(f->trees_fd, path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			bench_die(path, errno);
		r = accounting_add_domain(a, path, fd, &d);
		if (r < 0)
			bench_die(path, -r);
		r = accounting_domain_set_pid(a, d, (pid_t)(FIXTURE_PID_BASE + i));
		if (r < 0)
			bench_die(path, -r);
		last = d;
	}

	bench_measure(f, tick, a, runs, 0, &res);

	/* a tick that attributed nothing would be cheap for the wrong reason */
	if (last && accounting_domain_energy_uj(last, 0) == 0)
		fprintf(stderr, "bench_tick: domain %s got no energy: check the fixture\n",
			accounting_domain_name(last));
	bench_print("tick", n, &res);

	accounting_free(a);
	host_config_free(&cfg);
	fixture_free(f);
	return 0;
}
