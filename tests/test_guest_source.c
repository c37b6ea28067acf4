/* The guest's source on fixture trees with a synthetic clock: heartbeat freshness within three
 * intervals, a missing or garbage tree logged as down and picked up again, totals that never go
 * back across wraps, resets and re-openings; and the exposition rendered from it. */
#include "tests/testutil.h"

#include <stdio.h>
#include <sys/stat.h>

#include "common/powercap.h"
#include "guestd/exporter.h"
#include "guestd/guest_config.h"
#include "guestd/source.h"

#define MS (NSEC_PER_MSEC)

static char *dir;

static int setup(void **state)
{
	dir = tu_mkdtemp("test_guest_source");
	return 0;
}

static int teardown(void **state)
{
	tu_rm_rf(dir);
	free(dir);
	return 0;
}

static void write_heartbeat(const char *root, uint64_t seq, uint64_t interval_ms, bool estimated)
{
	struct heartbeat hb = {
		.seq = seq, .interval_ms = interval_ms, .time_ms = 1, .is_estimated = estimated
	};
	char buf[256];

	heartbeat_format(&hb, buf, sizeof(buf));
	tu_write(root, POWERCAP_HEARTBEAT_FILE, buf);
}

/* content into root/<path formatted from the rest>. */
#define PUT(root, content, ...)                                                                    \
	do {                                                                                       \
		char rel_[256];                                                                    \
		snprintf(rel_, sizeof(rel_), __VA_ARGS__);                                         \
		tu_write(root, rel_, content);                                                     \
	} while (0)

/* Two packages with a core subzone each: a 2-socket bare-metal layout. */
static char *make_tree(const char *name, bool with_heartbeat)
{
	char *root = xasprintf("%s/%s", dir, name);
	char buf[32];

	for (int p = 0; p < 2; p++) {
		snprintf(buf, sizeof(buf), "package-%d\n", p);
		PUT(root, buf, "intel-rapl:%d/name", p);
		snprintf(buf, sizeof(buf), "%d\n", 1000 * (p + 1));
		PUT(root, buf, "intel-rapl:%d/energy_uj", p);
		PUT(root, "1000000000\n", "intel-rapl:%d/max_energy_range_uj", p);
		PUT(root, "core\n", "intel-rapl:%d/intel-rapl:%d:0/name", p, p);
		PUT(root, "0\n", "intel-rapl:%d/intel-rapl:%d:0/energy_uj", p, p);
		PUT(root, "1000000000\n", "intel-rapl:%d/intel-rapl:%d:0/max_energy_range_uj", p,
			p);
	}
	if (with_heartbeat)
		write_heartbeat(root, 1, 1000, false);
	return root;
}

static void set_energy(const char *root, int package, const char *value)
{
	_cleanup_free_ char *rel = xasprintf("intel-rapl:%d/energy_uj", package);

	tu_write(root, rel, value);
}

static const struct source_zone *zone(const struct source *s, const char *id)
{
	for (size_t i = 0; i < s->n_zones; i++)
		if (streq(s->zones[i].id, id))
			return &s->zones[i];
	fail_msg("no zone %s", id);
	return NULL;
}

static void test_heartbeat_freshness(void **state)
{
	_cleanup_free_ char *root = make_tree("hb", true);
	struct source *s = source_new(root);
	uint64_t t = 1000 * MS, seq = 1;

	/* Guest 100 ms, host 1 s: a stopped host is judged on the host's interval. */
	assert_int_equal(source_stale_after_ms(100, 1000), 2000);
	assert_int_equal(source_stale_after_ms(2000, 1000), 4000);

	assert_int_equal(source_sample(s, t, 2000), 0);
	assert_true(s->is_up && s->has_heartbeat);
	assert_int_equal(s->host_interval_ms, 1000);
	/* The host ticks each second, the guest samples each 2 s. */
	for (int i = 0; i < 5; i++) {
		seq += 2;
		write_heartbeat(root, seq, 1000, false);
		t += 2000 * MS;
		assert_int_equal(source_sample(s, t, 2000), 0);
	}
	/* The host stops right after a guest sample: down by the third sample after. */
	int samples = 0;
	while (s->is_up && samples < 10) {
		t += 2000 * MS;
		source_sample(s, t, 2000);
		samples++;
	}
	assert_true(samples <= 3);
	assert_non_null(strstr(s->problem, "heartbeat"));
	/* Moving again: fresh at once. */
	write_heartbeat(root, seq + 1, 1000, true);
	t += 2000 * MS;
	assert_int_equal(source_sample(s, t, 2000), 0);
	assert_true(s->is_up);
	assert_true(s->is_estimated);
	source_free(s);
}

static void test_no_heartbeat_is_fresh(void **state)
{
	_cleanup_free_ char *root = make_tree("sysfs", false);
	struct source *s = source_new(root);

	for (uint64_t t = 1; t < 100; t++)
		assert_int_equal(source_sample(s, t * 10000 * MS, 100), 0);
	assert_false(s->has_heartbeat);
	source_free(s);
}

static void test_counters(void **state)
{
	_cleanup_free_ char *root = make_tree("counters", false);
	struct source *s = source_new(root);
	uint64_t t = MS;

	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(s->n_zones, 4);
	/* Served totals are the tree's own counters (1000 + 2000 µJ), not energy since start. */
	assert_int_equal(source_total_uj(s), 3000);

	set_energy(root, 0, "2001000\n"); /* +2 J in 1 s on package 0 */
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(zone(s, "intel-rapl:0")->counter.total_uj, 2001000);
	assert_int_equal(s->package_delta_uj, 2000000);
	assert_true(zone(s, "intel-rapl:0")->power_w > 1.999 &&
		    zone(s, "intel-rapl:0")->power_w < 2.001);

	/* Wrap: from the top of the range to the bottom. */
	set_energy(root, 0, "999000000\n");
	t += 1000 * MS;
	source_sample(s, t, 1000);
	uint64_t before = zone(s, "intel-rapl:0")->counter.total_uj;
	set_energy(root, 0, "1000000\n");
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	uint64_t d = zone(s, "intel-rapl:0")->counter.total_uj - before;
	assert_true(d >= 2000000 && d <= 2000001);

	/* Garbage: down, nothing counted, then up again from where it was. */
	before = zone(s, "intel-rapl:0")->counter.total_uj;
	set_energy(root, 0, "12abc\n");
	t += 1000 * MS;
	assert_true(source_sample(s, t, 1000) < 0);
	assert_false(s->is_up);
	assert_non_null(strstr(s->problem, "intel-rapl:0/energy_uj"));
	set_energy(root, 0, "1500000\n");
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(zone(s, "intel-rapl:0")->counter.total_uj, before + 500000);

	/* The tree disappears (unmounted) and comes back: totals go on. */
	_cleanup_free_ char *moved = xasprintf("%s/counters.gone", dir);
	assert_int_equal(rename(root, moved), 0);
	t += 1000 * MS;
	assert_true(source_sample(s, t, 1000) < 0);
	assert_non_null(strstr(s->problem, "missing"));
	assert_int_equal(zone(s, "intel-rapl:0")->counter.total_uj, before + 500000);
	assert_int_equal(rename(moved, root), 0);
	set_energy(root, 0, "1600000\n");
	t += 1000 * MS;
	assert_int_equal(source_sample(s, t, 1000), 0);
	assert_int_equal(zone(s, "intel-rapl:0")->counter.total_uj, before + 600000);

	/* An empty directory has no zones. */
	_cleanup_free_ char *empty = xasprintf("%s/empty", dir);
	assert_int_equal(mkdir(empty, 0755), 0);
	source_set_root(s, empty);
	t += 1000 * MS;
	assert_true(source_sample(s, t, 1000) < 0);
	assert_non_null(strstr(s->problem, "no powercap zones"));
	assert_int_equal(zone(s, "intel-rapl:0")->counter.total_uj, before + 600000);
	source_free(s);
}

static void test_render(void **state)
{
	_cleanup_free_ char *root = make_tree("render", false);
	struct source *s = source_new(root);
	struct strbuf b = { 0 };
	double v;

	source_sample(s, MS, 1000);
	set_energy(root, 0, "3001000\n");
	set_energy(root, 1, "1002000\n");
	tu_write(root, "intel-rapl:1/intel-rapl:1:0/energy_uj", "500000\n");
	source_sample(s, 1001 * MS, 1000);

	exporter_render(&b, &(struct exporter_view){ .source = s,
				    .attribution = GUEST_ATTR_NONE,
				    .metric_names = GUEST_NAMES_NATIVE,
				    .interval_ns = s->interval_ns,
				    .version = "1.2.3" });
	assert_int_equal(tu_metric(b.buf, "powerd_energy_joules_total{zone=\"package-0\"}", &v), 0);
	assert_true(v == 3.001);
	assert_int_equal(tu_metric(b.buf, "powerd_energy_joules_total{zone=\"package-1\"}", &v), 0);
	assert_true(v == 1.002);
	/* Both sockets' "core" subzones are one series (zone = the name file). */
	assert_int_equal(tu_metric(b.buf, "powerd_energy_joules_total{zone=\"core\"}", &v), 0);
	assert_true(v == 0.5);
	assert_non_null(strstr(b.buf, "# TYPE powerd_energy_joules_total counter\n"));
	assert_non_null(strstr(b.buf, "# TYPE powerd_power_watts gauge\n"));
	assert_int_equal(tu_metric(b.buf, "powerd_build_info{version=\"1.2.3\"}", &v), 0);
	assert_int_equal(tu_metric(b.buf, "powerd_source_up", &v), 0);
	assert_true(v == 1);
	assert_null(strstr(b.buf, "scaph_"));

	strbuf_reset(&b);
	exporter_render(&b, &(struct exporter_view){ .source = s,
				    .attribution = GUEST_ATTR_NONE,
				    .metric_names = GUEST_NAMES_SCAPHANDRE,
				    .interval_ns = s->interval_ns,
				    .version = "1.2.3" });
	assert_int_equal(tu_metric(b.buf, "scaph_host_energy_microjoules", &v), 0);
	assert_true(v == 4003000);
	assert_int_equal(tu_metric(b.buf, "scaph_host_power_microwatts", &v), 0);
	assert_true(v > 3999000 && v < 4001000);
	assert_int_equal(tu_metric(b.buf, "scaph_socket_power_microwatts{socket_id=\"1\"}", &v), 0);
	assert_int_equal(
		tu_metric(b.buf,
			"scaph_domain_power_microwatts{domain_name=\"core\",socket_id=\"1\","
			"domain_id=\"0\"}",
			&v),
		0);
	assert_true(v > 499000 && v < 501000);
	assert_null(strstr(b.buf, "powerd_energy_joules_total"));

	/* Another tree (here: one without zones): the old tree's zones are not served as gauges,
	 * where they could repeat the labels of the new tree's zones. */
	_cleanup_free_ char *empty = xasprintf("%s/render.empty", dir);
	assert_int_equal(mkdir(empty, 0755), 0);
	source_set_root(s, empty);
	assert_true(source_sample(s, 2001 * MS, 1000) < 0);
	strbuf_reset(&b);
	exporter_render(&b, &(struct exporter_view){ .source = s,
				    .attribution = GUEST_ATTR_NONE,
				    .metric_names = GUEST_NAMES_SCAPHANDRE,
				    .interval_ns = s->interval_ns,
				    .version = "1.2.3" });
	assert_null(strstr(b.buf, "scaph_socket_power_microwatts{"));
	assert_null(strstr(b.buf, "scaph_domain_power_microwatts{"));
	/* The counter goes on being served: it never goes back. */
	assert_int_equal(tu_metric(b.buf, "scaph_host_energy_microjoules", &v), 0);
	assert_true(v == 4003000);
	strbuf_done(&b);
	source_free(s);
}

/* 200 packages with a subzone each: the tree holds 400 zones, more than POWERCAP_ZONES_MAX per
 * list, and every one is read each tick (this overflowed a 256-entry stack array). */
static void test_many_zones(void **state)
{
	_cleanup_free_ char *root = xasprintf("%s/many", dir);
	char buf[32];

	for (int p = 0; p < 200; p++) {
		snprintf(buf, sizeof(buf), "package-%d\n", p);
		PUT(root, buf, "intel-rapl:%d/name", p);
		PUT(root, "1000\n", "intel-rapl:%d/energy_uj", p);
		PUT(root, "1000000000\n", "intel-rapl:%d/max_energy_range_uj", p);
		PUT(root, "core\n", "intel-rapl:%d/intel-rapl:%d:0/name", p, p);
		PUT(root, "500\n", "intel-rapl:%d/intel-rapl:%d:0/energy_uj", p, p);
		PUT(root, "1000000000\n", "intel-rapl:%d/intel-rapl:%d:0/max_energy_range_uj", p,
			p);
	}
	struct source *s = source_new(root);

	assert_int_equal(source_sample(s, 1000 * MS, 1000), 0);
	for (int p = 0; p < 200; p++) {
		snprintf(buf, sizeof(buf), "%d\n", 2000 + p);
		PUT(root, buf, "intel-rapl:%d/energy_uj", p);
	}
	assert_int_equal(source_sample(s, 2000 * MS, 1000), 0);
	assert_true(s->is_up);
	assert_int_equal(source_total_uj(s), 200 * 1000 + 200 * 1000 + 199 * 200 / 2);
	source_free(s);
}

/* Bare metal with a client CPU: psys is a top-level zone of its own that already includes the
 * package. It is served as a zone, but is not a package: the machine's energy (what is split over
 * services, and Scaphandre's host total) counts the package once. */
static void test_psys_is_not_a_package(void **state)
{
	_cleanup_free_ char *root = xasprintf("%s/psys", dir);

	PUT(root, "package-0\n", "intel-rapl:0/name");
	PUT(root, "1000\n", "intel-rapl:0/energy_uj");
	PUT(root, "1000000000\n", "intel-rapl:0/max_energy_range_uj");
	PUT(root, "psys\n", "intel-rapl:1/name");
	PUT(root, "5000\n", "intel-rapl:1/energy_uj");
	PUT(root, "1000000000\n", "intel-rapl:1/max_energy_range_uj");
	struct source *s = source_new(root);

	assert_int_equal(source_sample(s, 1000 * MS, 1000), 0);
	PUT(root, "3000\n", "intel-rapl:0/energy_uj");
	PUT(root, "9000\n", "intel-rapl:1/energy_uj");
	assert_int_equal(source_sample(s, 2000 * MS, 1000), 0);
	assert_int_equal(s->package_delta_uj, 2000);
	assert_int_equal(source_total_uj(s), 3000);
	assert_true(zone(s, "intel-rapl:1") != NULL);
	assert_int_equal(zone(s, "intel-rapl:1")->interval_uj, 4000);
	source_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heartbeat_freshness),
		cmocka_unit_test(test_no_heartbeat_is_fresh),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_many_zones),
		cmocka_unit_test(test_psys_is_not_a_package),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
