/* What powerd_domain_info costs a scrape of an OpenStack compute node: the real domain manager
 * (hostd/domains.h with the libvirt manager) follows libvirt's test driver loaded from a file of
 * COUNT running domains shaped as Nova writes them (instance-XXXXXXXX, the instance's UUID,
 * Nova's metadata element, no virtio-serial controller), each with its share mounted and its tree
 * laid out; after two accounting ticks, the exposition powerd-host serves is rendered as the
 * daemon does each tick (accounting_render, then domains_render), and apart from it the info
 * series alone (the part "without" leaves out).
 *   bench_scrape_nova [COUNT]        (default 1000)
 * Prints: bytes of the exposition with and without the info series (plain, and gzip as the HTTP
 * server sends it to a scraper that accepts it), CPU µs of one render of each
 * (median of the runs), what reading one domain's info costs (virDomainGetXMLDesc + parse, done
 * at start and on metadata events, never per tick), and the heap the parsed infos hold. Needs
 * root (mounts, in a private mount namespace of its own). */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>
#include <zlib.h>

#include "bench/harness.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "hostd/accounting.h"
#include "hostd/domain_info.h"
#include "hostd/domains.h"
#include "hostd/host_config.h"
#include "hostd/libvirt_loop.h"
#include "hostd/manager.h"
#include "hostd/mounts.h"

#define COUNT_MAX 5000
#define RUNS 15
#define RENDERS 20 /* a run */

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = xstrdup(value);
}

/* Nova's element as its libvirt driver writes it (nova/virt/libvirt/config.py), with typical
 * values: 32-hex Keystone ids, UUIDs for the instance and the image. */
static void write_node(const char *path, size_t count)
{
	FILE *f = fopen(path, "we");

	if (!f)
		bench_die(path, errno);
	fputs("<node>\n", f);
	for (size_t i = 0; i < count; i++)
		fprintf(f,
			"<domain type='test'><name>instance-%08zx</name>"
			"<uuid>6f0c3a8e-2b1d-4f5e-9a7c-%012zx</uuid><metadata>"
			"<nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\">"
			"<nova:package version=\"27.1.0\"/><nova:name>web-%zu.prod</nova:name>"
			"<nova:creationTime>2026-12-06 08:12:31</nova:creationTime>"
			"<nova:flavor name=\"m1.%s\" id=\"2\"><nova:memory>2048</nova:memory>"
			"<nova:disk>20</nova:disk><nova:swap>0</nova:swap>"
			"<nova:ephemeral>0</nova:ephemeral><nova:vcpus>1</nova:vcpus>"
			"<nova:extraSpecs/></nova:flavor>"
			"<nova:image uuid=\"fe55c69a-8b2e-4bbc-811a-9ad2023a0426\">"
			"<nova:containerFormat>bare</nova:containerFormat>"
			"<nova:diskFormat>qcow2</nova:diskFormat><nova:properties/></nova:image>"
			"<nova:owner><nova:user uuid=\"3472c2a6de914fb5b61842bc781e%04zx\">user-%zu"
			"</nova:user><nova:project uuid=\"f241e906010e4917ae8153f4fb8a%04zx\">"
			"project-%zu</nova:project></nova:owner>"
			"<nova:root type=\"image\" uuid=\"fe55c69a-8b2e-4bbc-811a-9ad2023a0426\"/>"
			"<nova:ports><nova:port uuid=\"567a4527-b0e4-4d0a-bcc2-71fda37897f7\">"
			"<nova:ip type=\"fixed\" address=\"10.0.0.12\" "
			"ipVersion=\"4\"/></nova:port>"
			"</nova:ports></nova:instance></metadata>"
			"<memory>2097152</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
			"<devices/></domain>\n",
			i + 1, i + 1, i,
			i % 3 == 0   ? "small"
			: i % 3 == 1 ? "medium"
				     : "large",
			i % 50, i % 50, i % 20, i % 20);
	fputs("</node>\n", f);
	fclose(f);
}

static void render_full(struct accounting *a, struct domains *d, struct strbuf *out)
{
	strbuf_reset(out);
	accounting_render(a, true, out);
	domains_render(d, out);
}

static void render_info(struct domains *d, struct strbuf *out)
{
	size_t n;
	struct domain *const *v = domains_all(d, &n);

	strbuf_reset(out);
	domain_info_render_family(out);
	for (size_t i = 0; i < n; i++)
		domain_info_render(out, v[i]->name, v[i]->info);
}

/* Bytes of text gzipped as common/http.c does for an exposition over 32 KiB (default level, a
 * 32 KiB window, memLevel 6). */
static size_t gzip_len(const char *text, size_t len)
{
	z_stream zs = { 0 };

	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 6, Z_DEFAULT_STRATEGY) !=
		Z_OK)
		bench_die("deflateInit2", ENOMEM);
	uLong bound = deflateBound(&zs, (uLong)len);
	_cleanup_free_ unsigned char *out = xmalloc(bound);
	zs.next_in = (Bytef *)text;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)bound;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		bench_die("deflate", EIO);
	size_t n = zs.total_out;
	deflateEnd(&zs);
	return n;
}

/* The exposition without the info family: its lines dropped. */
static void strip_info(const char *full, struct strbuf *out)
{
	strbuf_reset(out);
	for (const char *line = full; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
		if (!startswith(line, "powerd_domain_info{") &&
			!startswith(line, "# HELP powerd_domain_info ") &&
			!startswith(line, "# TYPE powerd_domain_info "))
			strbuf_add(out, line, len);
		line += len;
	}
}

/* CPU µs of one render: median over RUNS runs of RENDERS renders. */
static double time_render(struct accounting *a, struct domains *d, bool is_info, size_t *ret_len)
{
	struct strbuf out = { 0 };
	double us[RUNS];

	for (size_t r = 0; r < RUNS; r++) {
		uint64_t t0 = bench_cpu_ns();
		for (int k = 0; k < RENDERS; k++) {
			if (is_info)
				render_info(d, &out);
			else
				render_full(a, d, &out);
		}
		us[r] = (double)(bench_cpu_ns() - t0) / 1e3 / RENDERS;
	}
	*ret_len = out.len;
	strbuf_done(&out);
	return bench_median(us, RUNS);
}

int main(int argc, char **argv)
{
	size_t count = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
	struct host_config cfg;
	struct accounting *a;
	struct domains *d;
	struct fixture *f;
	int r;

	if (count == 0 || count > COUNT_MAX)
		bench_die("COUNT: 1 to 5000", EINVAL);
	if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		bench_die("private mount namespace", errno);
	bench_raise_nofile();
	log_set_max_level(LOG_ERR);
	struct event_base *base = event_base_new();
	if (!base || libvirt_loop_register(base) < 0)
		bench_die("event loop", EIO);

	fixture_new(0, &f);
	_cleanup_free_ char *node = xasprintf("%s/nova.xml", f->root);
	_cleanup_free_ char *uri = xasprintf("test://%s", node);
	_cleanup_free_ char *share = xasprintf("%s/share", f->root);
	write_node(node, count);
	host_config_init(&cfg);
	set_str(&cfg.libvirt_uri, uri);
	set_str(&cfg.share_dir, share);
	set_str(&cfg.powercap_root, f->powercap_root);
	set_str(&cfg.proc_root, f->proc_root);
	set_str(&cfg.cgroup_root, f->cgroup_root);
	if ((r = accounting_new(&cfg, &a)) < 0)
		bench_die("accounting_new", -r);
	if ((r = domains_new(base, &cfg, a, &d)) < 0)
		bench_die("domains_new", -r);
	uint64_t t0 = bench_wall_ns();
	domains_start(d);
	if (!domains_is_connected(d) || domains_count(d) != count)
		bench_die("the test driver's domains are not all tracked", EIO);
	double track_s = (double)(bench_wall_ns() - t0) / 1e9;
	/* the channel checks (no controller: one XML read each) run from the loop */
	event_base_loop(base, EVLOOP_NONBLOCK);
	for (int i = 0; i < 2; i++) {
		fixture_advance(f);
		usleep(20000);
		if ((r = accounting_tick(a)) < 0)
			bench_die("accounting_tick", -r);
	}

	size_t n_full, n_info;
	double us_full = time_render(a, d, false, &n_full);
	double us_info = time_render(a, d, true, &n_info);
	struct strbuf full = { 0 }, without = { 0 };
	render_full(a, d, &full);
	strip_info(full.buf, &without);
	if (without.len != full.len - n_info)
		bench_die("the info family is not where it was rendered", EINVAL);
	size_t gz_with = 0, gz_without = 0;
	double gz_us_with[RUNS], gz_us_without[RUNS];
	for (size_t k = 0; k < RUNS; k++) {
		uint64_t c0 = bench_cpu_ns();
		gz_with = gzip_len(full.buf, full.len);
		uint64_t c1 = bench_cpu_ns();
		gz_without = gzip_len(without.buf, without.len);
		gz_us_with[k] = (double)(c1 - c0) / 1e3;
		gz_us_without[k] = (double)(bench_cpu_ns() - c1) / 1e3;
	}
	strbuf_done(&full);
	strbuf_done(&without);

	/* One domain's info as the manager reads it: its live XML from libvirt, parsed. */
	size_t n;
	struct domain *const *v = domains_all(d, &n);
	virConnectPtr conn = virConnectOpenReadOnly(uri);
	double read_us[RUNS];
	size_t xml_bytes = 0;
	for (size_t k = 0; k < RUNS; k++) {
		virDomainPtr dom = virDomainLookupByName(conn, v[k % n]->name);
		uint64_t c0 = bench_cpu_ns();
		char *xml = virDomainGetXMLDesc(dom, 0);
		struct domain_info *info = NULL;
		if (!xml || domain_info_parse_xml(xml, &info) < 0 || !info->is_nova)
			bench_die("read a domain's info", EIO);
		read_us[k] = (double)(bench_cpu_ns() - c0) / 1e3;
		xml_bytes = strlen(xml);
		free(xml);
		domain_info_free(info);
		virDomainFree(dom);
	}
	virConnectClose(conn);
	/* The heap the tracked domains' infos hold. */
	struct mallinfo2 m0 = mallinfo2();
	struct domain_info **copies = xcalloc(n, sizeof(*copies));
	for (size_t i = 0; i < n; i++) {
		copies[i] = domain_info_new();
		for (int l = 0; l < DOMAIN_INFO_N_LABELS; l++)
			domain_info_set(copies[i], l, domain_info_get(v[i]->info, l));
	}
	struct mallinfo2 m1 = mallinfo2();
	for (size_t i = 0; i < n; i++)
		domain_info_free(copies[i]);
	free(copies);

	printf("bench=scrape_nova n=%zu bytes_with=%zu bytes_without=%zu info_bytes=%zu "
	       "gzip_with=%zu gzip_without=%zu us_gzip_with=%.0f us_gzip_without=%.0f "
	       "us_render_with=%.0f us_render_without=%.0f us_render_info=%.0f "
	       "us_read_info=%.0f xml_bytes=%zu info_heap_bytes_per_domain=%.0f track_s=%.2f\n",
		count, n_full, n_full - n_info, n_info, gz_with, gz_without,
		bench_median(gz_us_with, RUNS), bench_median(gz_us_without, RUNS), us_full,
		us_full - us_info, us_info, bench_median(read_us, RUNS), xml_bytes,
		(double)(m1.uordblks - m0.uordblks) / (double)n, track_s);

	domains_free(d);
	accounting_free(a);
	struct mounts *mm;
	if (mounts_new(share, cfg.tmpfs_size, &mm) == 0) {
		for (size_t i = 0; i < count; i++) {
			char name[32];
			snprintf(name, sizeof(name), "instance-%08zx", i + 1);
			mounts_teardown(mm, name);
		}
		mounts_free(mm);
	}
	host_config_free(&cfg);
	fixture_free(f);
	libvirt_loop_flush();
	libvirt_loop_shutdown();
	event_base_free(base);
	return 0;
}
