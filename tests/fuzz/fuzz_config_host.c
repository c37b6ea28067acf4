/* libFuzzer target: powerd-host's YAML config (hostd/host_config.c over common/config.c), loaded
 * by path as the daemon does, from a memfd. A loaded config holds every bound of the schema, and
 * copies and frees cleanly. */
#include <syslog.h>

#include "common/util.h"
#include "hostd/host_config.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static bool is_abs(const char *s)
{
	return s && s[0] == '/';
}

static bool strv_ok(const struct config_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		if (!sv->v[i])
			return false;
	return true;
}

/* What the daemon relies on once a file loaded: every bound of the schema held. */
static void check_loaded(const struct host_config *c)
{
	if (!c->libvirt_uri || !c->metrics_listen || !c->status_socket || !is_abs(c->share_dir) ||
		!is_abs(c->powercap_root) || !is_abs(c->proc_root) || !is_abs(c->cgroup_root))
		abort();
	if (c->interval_ms < 100 || c->interval_ms > 3600 * 1000 || c->tmpfs_size < (64 << 10) ||
		c->tmpfs_size > (1 << 30))
		abort();
	if (!(c->idle_watts >= 0 && c->idle_watts <= c->max_watts && c->max_watts <= 100000))
		abort();
	if (c->log_level < LOG_ERR || c->log_level > LOG_DEBUG ||
		(c->idle_power != IDLE_POLICY_SHARED && c->idle_power != IDLE_POLICY_HOST) ||
		(c->channel != CHANNEL_MODE_AUTO && c->channel != CHANNEL_MODE_OFF))
		abort();
	if (!strv_ok(&c->include) || !strv_ok(&c->exclude))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct host_config c;
	char path[64], err[512];
	int fd = fuzz_memfd(data, size, path, sizeof(path));

	err[0] = '\0';
	host_config_init(&c);
	if (host_config_load(path, false, &c, err, sizeof(err)) == 0) {
		struct host_config copy;

		check_loaded(&c);
		config_copy(host_config_schema, &copy, &c);
		(void)host_config_tracks(&copy, "vm-1");
		host_config_free(&copy);
	} else if (!err[0]) {
		abort(); /* a refused config always says why */
	}
	host_config_free(&c);
	close(fd);
	return 0;
}
