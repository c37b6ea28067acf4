/* powerd-guest's configuration schema and loading (DESIGN.md §3, guest config). */
#include "guestd/guest_config.h"

#include <syslog.h>

#include "common/config.h"
#include "common/util.h"

static const char *const metric_names_names[] = { "native", "scaphandre", NULL };
static const char *const attribution_names[] = { "units", "processes", "none", NULL };
/* In syslog order from LOG_ERR, so that the index maps to a priority by addition. */
static const char *const log_level_names[] = { "error", "warning", "notice", "info", "debug",
	NULL };

#define OFF(f) offsetof(struct guest_config, f)

static int check_source(const void *value, char *msg, size_t msg_size)
{
	const char *s = value;

	if (s && streq(s, GUEST_SOURCE_AUTO))
		return 0;
	return config_check_abs_path(value, msg, msg_size);
}

static int check_tree_out(const void *value, char *msg, size_t msg_size)
{
	const char *s = value;

	if (s && !s[0])
		return 0;
	if (s && streq(s, "/")) {
		snprintf(msg, msg_size, "'/' cannot hold the tree: give a directory of its own");
		return -EINVAL;
	}
	return config_check_abs_path(value, msg, msg_size);
}

static int check_sysfs_out(const void *value, char *msg, size_t msg_size)
{
	const char *s = value;

	if (s && (streq(s, "/sys") || streq(s, "/sys/"))) {
		snprintf(msg, msg_size, "'/sys' is the kernel's: give a directory of its own");
		return -EINVAL;
	}
	return check_tree_out(value, msg, msg_size);
}

static const struct config_key guest_schema[] = {
	{ .name = "source", .type = CONFIG_STRING, .offset = OFF(source), .check = check_source },
	{ .name = "tree_out",
		.type = CONFIG_STRING,
		.offset = OFF(tree_out),
		.check = check_tree_out },
	{ .name = "sysfs_out",
		.type = CONFIG_STRING,
		.offset = OFF(sysfs_out),
		.check = check_sysfs_out },
	{ .name = "interval",
		.type = CONFIG_DURATION_MS,
		.offset = OFF(interval_ms),
		.min = GUEST_INTERVAL_MIN_MS,
		.max = GUEST_INTERVAL_MAX_MS },
	{ .name = "listen",
		.type = CONFIG_STRING,
		.offset = OFF(listen),
		.check = config_check_listen },
	{ .name = "metric_names",
		.type = CONFIG_ENUM,
		.offset = OFF(metric_names),
		.enum_names = metric_names_names },
	{ .name = "attribution",
		.type = CONFIG_ENUM,
		.offset = OFF(attribution),
		.enum_names = attribution_names },
	{ .name = "proc_root",
		.type = CONFIG_STRING,
		.offset = OFF(proc_root),
		.check = config_check_abs_path },
	{ .name = "cgroup_root",
		.type = CONFIG_STRING,
		.offset = OFF(cgroup_root),
		.check = config_check_abs_path },
	{ .name = "log_level",
		.type = CONFIG_ENUM,
		.offset = OFF(log_level_index),
		.enum_names = log_level_names },
	{ .name = NULL },
};

void guest_config_init(struct guest_config *c)
{
	*c = (struct guest_config){
		.source = xstrdup(GUEST_DEFAULT_SOURCE),
		.tree_out = xstrdup(GUEST_DEFAULT_TREE_OUT),
		.sysfs_out = xstrdup(GUEST_DEFAULT_SYSFS_OUT),
		.interval_ms = 2000,
		.listen = xstrdup(GUEST_DEFAULT_LISTEN),
		.metric_names = GUEST_NAMES_NATIVE,
		.attribution = GUEST_ATTR_UNITS,
		.proc_root = xstrdup("/proc"),
		.cgroup_root = xstrdup("/sys/fs/cgroup"),
		.log_level_index = LOG_INFO - LOG_ERR,
	};
}

void guest_config_free(struct guest_config *c)
{
	if (!c)
		return;
	config_free(guest_schema, c);
	*c = (struct guest_config){ 0 };
}

void guest_config_copy(struct guest_config *dst, const struct guest_config *src)
{
	*dst = *src;
	config_copy(guest_schema, dst, src);
}

int guest_config_log_level(const struct guest_config *c)
{
	return LOG_ERR + c->log_level_index;
}

int guest_config_load(const char *path, struct guest_config *ret, char *err, size_t err_size)
{
	struct guest_config c;
	int r;

	guest_config_init(&c);
	r = config_load_file(
		path ? path : GUEST_CONFIG_DEFAULT_PATH, guest_schema, &c, err, err_size);
	if (r == -ENOENT && !path)
		r = 0;
	if (r < 0) {
		guest_config_free(&c);
		return r;
	}
	*ret = c;
	return 0;
}
