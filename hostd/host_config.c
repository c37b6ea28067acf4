/* powerd-host's configuration: defaults, the schema of DESIGN.md §3, loading, domain filter. */
#include "hostd/host_config.h"

#include <fnmatch.h>
#include <stddef.h>
#include <syslog.h>

#include "common/log.h"
#include "common/util.h"

/* clang-format off */
static const char *const idle_policy_names[] = { "shared", "host", NULL };
static const char *const channel_mode_names[] = { "auto", "off", NULL };
/* Indexed from LOG_ERR: the loader stores an index, host_config_load turns it into a level. */
static const char *const log_level_names[] = { "error", "warning", "notice", "info", "debug", NULL };

static const struct config_key domains_keys[] = {
	{ .name = "include", .type = CONFIG_STRV, .offset = offsetof(struct host_config, include) },
	{ .name = "exclude", .type = CONFIG_STRV, .offset = offsetof(struct host_config, exclude) },
	{ 0 },
};

static const struct config_key estimate_keys[] = {
	{ .name = "idle_watts", .type = CONFIG_DOUBLE,
	  .offset = offsetof(struct host_config, idle_watts), .dmin = 0, .dmax = 100000 },
	{ .name = "max_watts", .type = CONFIG_DOUBLE,
	  .offset = offsetof(struct host_config, max_watts), .dmin = 0, .dmax = 100000 },
	{ 0 },
};

const struct config_key host_config_schema[] = {
	{ .name = "libvirt_uri", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, libvirt_uri) },
	{ .name = "interval", .type = CONFIG_DURATION_MS,
	  .offset = offsetof(struct host_config, interval_ms), .min = 100, .max = 3600 * 1000 },
	{ .name = "share_dir", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, share_dir), .check = config_check_abs_path },
	{ .name = "tmpfs_size", .type = CONFIG_SIZE,
	  .offset = offsetof(struct host_config, tmpfs_size), .min = 64 << 10, .max = 1 << 30 },
	{ .name = "domains", .type = CONFIG_MAP, .children = domains_keys },
	{ .name = "powercap_root", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, powercap_root), .check = config_check_abs_path },
	{ .name = "proc_root", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, proc_root), .check = config_check_abs_path },
	{ .name = "cgroup_root", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, cgroup_root), .check = config_check_abs_path },
	{ .name = "idle_power", .type = CONFIG_ENUM,
	  .offset = offsetof(struct host_config, idle_power), .enum_names = idle_policy_names },
	{ .name = "estimate", .type = CONFIG_MAP, .children = estimate_keys },
	{ .name = "channel", .type = CONFIG_ENUM,
	  .offset = offsetof(struct host_config, channel), .enum_names = channel_mode_names },
	{ .name = "metrics_listen", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, metrics_listen), .check = config_check_listen },
	{ .name = "status_socket", .type = CONFIG_STRING,
	  .offset = offsetof(struct host_config, status_socket) },
	{ .name = "log_level", .type = CONFIG_ENUM,
	  .offset = offsetof(struct host_config, log_level), .enum_names = log_level_names },
	{ 0 },
};
/* clang-format on */

void host_config_init(struct host_config *c)
{
	*c = (struct host_config){
		.libvirt_uri = xstrdup("qemu:///system"),
		.interval_ms = 1000,
		.share_dir = xstrdup("/var/lib/libvirt/scaphandre"),
		.tmpfs_size = 5 << 20,
		.powercap_root = xstrdup("/sys/class/powercap"),
		.proc_root = xstrdup("/proc"),
		.cgroup_root = xstrdup("/sys/fs/cgroup"),
		.idle_power = IDLE_POLICY_SHARED,
		.channel = CHANNEL_MODE_AUTO,
		.metrics_listen = xstrdup("127.0.0.1:9731"),
		.status_socket = xstrdup(HOST_CONFIG_STATUS_SOCKET),
		.log_level = LOG_INFO,
	};
	c->include.v = xcalloc(2, sizeof(char *));
	c->include.v[0] = xstrdup("*");
	c->include.n = 1;
	c->exclude.v = xcalloc(1, sizeof(char *));
}

void host_config_free(struct host_config *c)
{
	if (!c)
		return;
	config_free(host_config_schema, c);
	/* config_free owns every string and list; leave nothing dangling for a second call */
	memset(c, 0, sizeof(*c));
}

int host_config_load(
	const char *path, bool is_default_path, struct host_config *c, char *err, size_t err_size)
{
	struct host_config scratch = *c;
	int r;

	config_copy(host_config_schema, &scratch, c);
	scratch.log_level -= LOG_ERR;
	r = config_load_file(path, host_config_schema, &scratch, err, err_size);
	scratch.log_level += LOG_ERR;
	if (r == -ENOENT && is_default_path) {
		config_free(host_config_schema, &scratch);
		if (err_size)
			err[0] = '\0';
		return 0;
	}
	if (r >= 0 && scratch.idle_watts > scratch.max_watts) {
		snprintf(err, err_size,
			"%s: estimate.idle_watts (%g) must not exceed estimate.max_watts (%g)",
			path, scratch.idle_watts, scratch.max_watts);
		r = -EINVAL;
	}
	if (r < 0) {
		config_free(host_config_schema, &scratch);
		return r;
	}
	host_config_free(c);
	*c = scratch;
	return 0;
}

static bool matches_any(const struct config_strv *globs, const char *name)
{
	for (size_t i = 0; i < globs->n; i++)
		if (globs->v[i] && fnmatch(globs->v[i], name, 0) == 0)
			return true;
	return false;
}

bool host_config_tracks(const struct host_config *c, const char *domain)
{
	return matches_any(&c->include, domain) && !matches_any(&c->exclude, domain);
}
