/* Latency from a domain's definition to its complete tree, with libvirt's test driver
 * (test:///default, in-process) and powerd's own libvirt-on-libevent bridge; t0 is taken before
 * virDomainDefineXML.
 *   bench_define [COUNT] --domains   the real domain manager (hostd/domains.h) on its own
 *       read-only connection: the DEFINED event through the loop, its private tmpfs and
 *       read-only export (mounts.h), the tree laid out (accounting_add_domain); done when
 *       domains_lookup() finds it
 *   bench_define [COUNT] [--no-mount]   the pieces alone, timed apart: the event, then mkdir,
 *       a tmpfs mount (--no-mount skips it), tree_open and the first tree_write
 * Prints median and p99 of the whole (and of the pieces' two halves). */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/harness.h"
#include "common/powercap.h"
#include "common/util.h"
#include "common/log.h"
#include "hostd/accounting.h"
#include "hostd/domains.h"
#include "hostd/host_config.h"
#include "hostd/libvirt_loop.h"
#include "hostd/mounts.h"
#include "common/tree.h"

#define COUNT_MAX 5000

struct define_bench {
	struct fixture *f;
	bool has_mount;
	const char *want; /* the name being defined */
	bool is_done;
	int err;
	uint64_t event_ns; /* when the DEFINED event reached the callback */
	uint64_t done_ns;  /* when its tree was complete */
	struct tree **trees;
	size_t n_trees;
};

static int prepare_tree(struct define_bench *b, const char *name)
{
	static const struct heartbeat hb = { .seq = 1, .interval_ms = 1000 };
	static const uint64_t zero[FIXTURE_ZONES];

	if (mkdirat(b->f->trees_fd, name, 0755) < 0)
		return -errno;
	if (b->has_mount) {
		char path[512];

		snprintf(path, sizeof(path), "%s/trees/%s", b->f->root, name);
		if (mount("powerd-bench", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			    "size=5m,mode=0755") < 0)
			return -errno;
	}
	_cleanup_close_ int fd = openat(b->f->trees_fd, name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct tree *t;
	int r = tree_open(fd, fixture_zone_names, FIXTURE_ZONES, &t);
	if (r < 0)
		return r;
	b->trees[b->n_trees++] = t;
	return tree_write(t, zero, &hb);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *arg)
{
	struct define_bench *b = arg;
	const char *name = virDomainGetName(dom);

	if (event != VIR_DOMAIN_EVENT_DEFINED || !name || !b->want || !streq(name, b->want))
		return 0;
	b->event_ns = bench_wall_ns();
	b->err = prepare_tree(b, name);
	b->done_ns = bench_wall_ns();
	b->is_done = true;
	return 0;
}

static void quiet_errors(void *arg, virErrorPtr err)
{
}

static void report(const char *what, double *v, size_t n)
{
	double p99;

	bench_median(v, n); /* sorts */
	p99 = v[(size_t)((double)(n - 1) * 0.99 + 0.5)];
	printf(" %s_median_us=%.1f %s_p99_us=%.1f", what, bench_median(v, n), what, p99);
}

static void define_xml(char *xml, size_t size, const char *name)
{
	snprintf(xml, size,
		"<domain type='test'><name>%s</name><memory>65536</memory>"
		"<os><type>hvm</type></os></domain>",
		name);
}

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = xstrdup(value);
}

/* The real thing: the domain manager follows test:///default; time until it tracks each new
 * domain (share mounted, tree laid out). */
static int run_domains(struct event_base *base, size_t count)
{
	struct host_config cfg;
	struct accounting *a;
	struct domains *dm;
	struct fixture *f;
	struct mounts *m;
	struct domain_view view;
	int r;

	fixture_new(0, &f);
	host_config_init(&cfg);
	_cleanup_free_ char *share = xasprintf("%s/share", f->root);
	set_str(&cfg.libvirt_uri, "test:///default");
	set_str(&cfg.share_dir, share);
	set_str(&cfg.powercap_root, f->powercap_root);
	set_str(&cfg.proc_root, f->proc_root);
	set_str(&cfg.cgroup_root, f->cgroup_root);
	if ((r = accounting_new(&cfg, &a)) < 0)
		bench_die("accounting_new", -r);
	if ((r = domains_new(base, &cfg, a, &dm)) < 0)
		bench_die("domains_new", -r);
	/* the writer's connection; test:///default is one state per process, shared with dm's */
	virConnectPtr conn = virConnectOpen("test:///default");
	if (!conn)
		bench_die("virConnectOpen test:///default", EIO);
	domains_start(dm);
	while (!domains_is_connected(dm))
		event_base_loop(base, EVLOOP_ONCE);

	double *total = xcalloc(count, sizeof(double));
	for (size_t i = 0; i < count; i++) {
		char name[32], xml[512];

		snprintf(name, sizeof(name), "bench%zu", i);
		define_xml(xml, sizeof(xml), name);
		uint64_t t0 = bench_wall_ns();
		virDomainPtr dom = virDomainDefineXML(conn, xml);
		if (!dom)
			bench_die("virDomainDefineXML", EIO);
		while (domains_lookup(dm, name, &view) < 0)
			if (event_base_loop(base, EVLOOP_ONCE) < 0)
				bench_die("event_base_loop", EIO);
		total[i] = (double)(bench_wall_ns() - t0) / 1e3;
		if (view.mount != MOUNT_TMPFS)
			fprintf(stderr, "bench_define: %s: share not mounted (%d)\n", name,
				(int)view.mount);
		virDomainFree(dom);
	}
	printf("bench=define n=%zu mode=domains", count);
	report("total", total, count);
	printf("\n");

	domains_free(dm);
	virConnectClose(conn);
	accounting_free(a);
	/* domains_free leaves the shares for running guests: take them down */
	if (mounts_new(share, cfg.tmpfs_size, &m) == 0) {
		char name[32];

		for (size_t i = 0; i < count; i++) {
			snprintf(name, sizeof(name), "bench%zu", i);
			mounts_teardown(m, name);
		}
		mounts_teardown(m, "test");
		mounts_free(m);
	}
	host_config_free(&cfg);
	fixture_free(f);
	free(total);
	return 0;
}

int main(int argc, char **argv)
{
	struct define_bench b = { .has_mount = true };
	bool use_domains = false;
	size_t count = 200;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--no-mount"))
			b.has_mount = false;
		else if (streq(argv[i], "--domains"))
			use_domains = true;
		else
			count = strtoul(argv[i], NULL, 10);
	}
	if (count == 0 || count > COUNT_MAX)
		count = 200;
	bench_raise_nofile();
	log_set_max_level(LOG_WARNING);
	virSetErrorFunc(NULL, quiet_errors);
	struct event_base *base = event_base_new();
	if (!base || libvirt_loop_register(base) < 0)
		bench_die("libvirt loop", EINVAL);
	if (use_domains)
		return run_domains(base, count);
	virConnectPtr conn = virConnectOpen("test:///default");
	if (!conn)
		bench_die("virConnectOpen test:///default", EIO);
	int cb = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &b, NULL);
	if (cb < 0)
		bench_die("virConnectDomainEventRegisterAny", EIO);
	fixture_new(0, &b.f);
	b.trees = xcalloc(count, sizeof(*b.trees));

	double *total = xcalloc(count, sizeof(double));
	double *to_event = xcalloc(count, sizeof(double));
	double *to_tree = xcalloc(count, sizeof(double));
	for (size_t i = 0; i < count; i++) {
		char name[32], xml[512];

		snprintf(name, sizeof(name), "bench%zu", i);
		define_xml(xml, sizeof(xml), name);
		b.want = name;
		b.is_done = false;
		uint64_t t0 = bench_wall_ns();
		virDomainPtr dom = virDomainDefineXML(conn, xml);
		if (!dom)
			bench_die("virDomainDefineXML", EIO);
		while (!b.is_done)
			if (event_base_loop(base, EVLOOP_ONCE) < 0)
				bench_die("event_base_loop", EIO);
		if (b.err < 0)
			bench_die(name, -b.err);
		total[i] = (double)(b.done_ns - t0) / 1e3;
		to_event[i] = (double)(b.event_ns - t0) / 1e3;
		to_tree[i] = (double)(b.done_ns - b.event_ns) / 1e3;
		virDomainFree(dom);
	}
	printf("bench=define n=%zu mode=%s", count, b.has_mount ? "pieces" : "pieces_nomount");
	report("total", total, count);
	report("event", to_event, count);
	report("tree", to_tree, count);
	printf("\n");

	virConnectDomainEventDeregisterAny(conn, cb);
	virConnectClose(conn);
	for (size_t i = 0; i < b.n_trees; i++)
		tree_free(b.trees[i]);
	if (b.has_mount)
		for (size_t i = 0; i < b.n_trees; i++) {
			char path[512];

			snprintf(path, sizeof(path), "%s/trees/bench%zu", b.f->root, i);
			umount2(path, MNT_DETACH);
		}
	fixture_free(b.f);
	free(b.trees);
	free(total);
	free(to_event);
	free(to_tree);
	return 0;
}
