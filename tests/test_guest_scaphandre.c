/* Scaphandre compatibility of powerd-guest: the tree Scaphandre's own `qemu` exporter writes
 * (a fixture shaped exactly like it: <vm>/intel-rapl:0/energy_uj without a newline, an empty
 * intel-rapl:0:0/, nothing else) read and flagged; and the exposition under Scaphandre's names,
 * checked line by line. */
#include "tests/testutil.h"

#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/powercap.h"
#include "guestd/exporter.h"
#include "guestd/guest_config.h"
#include "guestd/source.h"

#define MS (NSEC_PER_MSEC)

static char *dir;

static int setup(void **state)
{
	dir = tu_mkdtemp("test_guest_scaphandre");
	return 0;
}

static int teardown(void **state)
{
	tu_rm_rf(dir);
	free(dir);
	return 0;
}

/* What `scaphandre qemu` leaves under /var/lib/libvirt/scaphandre/<vm>: it creates
 * <vm>/intel-rapl:0:0 (empty) and <vm>/intel-rapl:0/energy_uj, written in place with the
 * decimal total and no newline. */
static char *make_scaphandre_tree(const char *vm, uint64_t energy_uj)
{
	char *root = xasprintf("%s/%s", dir, vm);
	_cleanup_free_ char *sub = xasprintf("%s/intel-rapl:0:0", root);

	tu_writef(root, "intel-rapl:0/energy_uj", "%llu", (unsigned long long)energy_uj);
	assert_int_equal(mkdir(sub, 0755), 0);
	return root;
}

static void set_energy(const char *root, uint64_t energy_uj)
{
	tu_writef(root, "intel-rapl:0/energy_uj", "%llu", (unsigned long long)energy_uj);
}

static void render(struct strbuf *b, const struct source *s, int names)
{
	strbuf_reset(b);
	exporter_render(b, &(struct exporter_view){ .source = s,
				   .attribution = GUEST_ATTR_NONE,
				   .metric_names = names,
				   .interval_ns = s->interval_ns,
				   .version = "1.2.3" });
}

static void assert_line(const struct strbuf *b, const char *line)
{
	_cleanup_free_ char *needle = xasprintf("\n%s\n", line);

	if (!strstr(b->buf, needle) && strncmp(b->buf, line, strlen(line)) != 0)
		fail_msg("no line '%s' in:\n%s", line, b->buf);
}

/* powercap_tree_open stays strict (the host's sensor uses it): the name file is required and the
 * error names it. The lenient open reads the same tree as one package. */
static void test_tree_open_strict_and_lenient(void **state)
{
	_cleanup_free_ char *root = make_scaphandre_tree("strict", 5000);
	struct powercap_tree *t = NULL;
	char err[256] = "";

	assert_int_equal(powercap_tree_open(root, &t, err, sizeof(err)), -ENOENT);
	assert_null(t);
	assert_non_null(strstr(err, "intel-rapl:0/name"));

	assert_int_equal(
		powercap_tree_open_flags(root, POWERCAP_OPEN_SCAPHANDRE_QEMU, &t, err, sizeof(err)),
		0);
	assert_int_equal(t->layout, POWERCAP_LAYOUT_SCAPHANDRE_QEMU);
	assert_string_equal(powercap_layout_name(t->layout), "scaphandre-qemu");
	/* The empty intel-rapl:0:0 is skipped, as Scaphandre's own reader skips it. */
	assert_int_equal(t->n_zones, 1);
	assert_string_equal(t->zones[0].id, "intel-rapl:0");
	assert_string_equal(t->zones[0].name, "package-0");
	assert_int_equal(t->zones[0].parent, -1);
	assert_false(t->zones[0].has_max_energy_range);
	uint64_t v = 0;
	assert_int_equal(powercap_zone_read(t, &t->zones[0], &v), 0);
	assert_int_equal(v, 5000);
	powercap_tree_free(t);
	t = NULL;

	/* A powerd tree opened leniently is still a powerd tree. */
	_cleanup_free_ char *pd = xasprintf("%s/powerd", dir);
	tu_write(pd, "intel-rapl:0/name", "package-0\n");
	tu_write(pd, "intel-rapl:0/energy_uj", "1\n");
	tu_write(pd, "intel-rapl:0/max_energy_range_uj", "1125899906842624\n");
	assert_int_equal(
		powercap_tree_open_flags(pd, POWERCAP_OPEN_SCAPHANDRE_QEMU, &t, err, sizeof(err)),
		0);
	assert_int_equal(t->layout, POWERCAP_LAYOUT_POWERD);
	assert_string_equal(powercap_layout_name(t->layout), "powerd");
	powercap_tree_free(t);
}

/* A tree that really cannot be used: what is missing is named, whatever the layout. */
static void test_unusable_tree_names_the_file(void **state)
{
	_cleanup_free_ char *root = xasprintf("%s/noenergy", dir);
	_cleanup_free_ char *pkg = xasprintf("%s/intel-rapl:0", root);
	_cleanup_free_ char *sub = xasprintf("%s/intel-rapl:0:0", root);

	assert_int_equal(mkdir(root, 0755), 0);
	assert_int_equal(mkdir(pkg, 0755), 0);
	assert_int_equal(mkdir(sub, 0755), 0);
	struct source *s = source_new(root);

	assert_int_equal(source_sample(s, 1000 * MS, 1000), -ENOENT);
	assert_false(s->is_up);
	/* The directory is there: not "missing", but which file is. */
	assert_null(strstr(s->problem, ": missing"));
	assert_non_null(strstr(s->problem, "intel-rapl:0/energy_uj"));
	assert_non_null(strstr(s->problem, "No such file"));

	/* Only the zones' directory is missing: that one is "missing". */
	_cleanup_free_ char *gone = xasprintf("%s/gone", dir);
	source_set_root(s, gone);
	assert_true(source_sample(s, 2000 * MS, 1000) < 0);
	assert_non_null(strstr(s->problem, "gone: missing"));

	/* A subzone with a name but no energy is skipped in the lenient layout, not fatal. */
	tu_write(root, "intel-rapl:0/energy_uj", "7");
	tu_write(root, "intel-rapl:0/intel-rapl:0:1/name", "dram\n");
	source_set_root(s, root);
	assert_int_equal(source_sample(s, 3000 * MS, 1000), 0);
	assert_true(s->is_up);
	assert_int_equal(s->n_zones, 1);
	source_free(s);
}

/* The whole path: sampled, up, counted, a decrease absorbed as a reset (no range: no wrap), and
 * flagged in the exposition in both naming modes. */
static void test_source_reads_scaphandre_tree(void **state)
{
	_cleanup_free_ char *root = make_scaphandre_tree("vm1", 1000000);
	struct source *s = source_new(root);
	struct strbuf b = { 0 };
	double v;

	assert_int_equal(source_sample(s, 1000 * MS, 1000), 0);
	assert_true(s->is_up);
	assert_false(s->has_heartbeat); /* fresh while readable, as bare metal */
	set_energy(root, 3000000);
	assert_int_equal(source_sample(s, 2000 * MS, 1000), 0);
	assert_int_equal(s->package_delta_uj, 2000000);
	assert_int_equal(source_total_uj(s), 3000000);
	assert_true(source_power_w(s) > 1.999 && source_power_w(s) < 2.001);

	render(&b, s, GUEST_NAMES_NATIVE);
	assert_line(&b, "powerd_source_up 1");
	assert_line(&b, "powerd_source_info{layout=\"scaphandre-qemu\"} 1");
	assert_line(&b, "powerd_energy_joules_total{zone=\"package-0\"} 3");
	assert_line(&b, "powerd_power_watts{zone=\"package-0\"} 2");
	assert_int_equal(tu_metric(b.buf, "powerd_source_info{layout=\"powerd\"}", &v), -ENOENT);

	/* Scaphandre's host restarted (its counter starts again from 0): without a range no wrap
	 * can be told, so a decrease is a reset: the interval counts 0, the total holds. */
	set_energy(root, 400000);
	assert_int_equal(source_sample(s, 3000 * MS, 1000), 0);
	assert_int_equal(s->package_delta_uj, 0);
	assert_int_equal(source_total_uj(s), 3000000);
	set_energy(root, 900000);
	assert_int_equal(source_sample(s, 4000 * MS, 1000), 0);
	assert_int_equal(s->package_delta_uj, 500000);
	assert_int_equal(source_total_uj(s), 3500000);

	/* Scaphandre truncates and rewrites in place: an empty read is no sample, never a 0. */
	tu_write(root, "intel-rapl:0/energy_uj", "");
	assert_true(source_sample(s, 5000 * MS, 1000) < 0);
	assert_false(s->is_up);
	assert_non_null(strstr(s->problem, "intel-rapl:0/energy_uj"));
	set_energy(root, 1000000);
	assert_int_equal(source_sample(s, 6000 * MS, 1000), 0);
	assert_int_equal(s->package_delta_uj, 100000);
	assert_int_equal(source_total_uj(s), 3600000);

	render(&b, s, GUEST_NAMES_SCAPHANDRE);
	assert_line(&b, "powerd_source_info{layout=\"scaphandre-qemu\"} 1");
	assert_line(&b, "scaph_host_energy_microjoules 3600000");
	assert_line(&b, "scaph_socket_energy_microjoules{socket_id=\"0\"} 3600000");
	assert_null(strstr(b.buf, "scaph_domain_energy_microjoules{"));
	strbuf_done(&b);
	source_free(s);
}

/* Two sockets, core and dram on socket 0, dram on socket 1, as powercap names them. */
static char *make_two_sockets(const char *name)
{
	char *root = xasprintf("%s/%s", dir, name);

	tu_write(root, "intel-rapl:0/name", "package-0\n");
	tu_write(root, "intel-rapl:0/energy_uj", "1000000\n");
	tu_write(root, "intel-rapl:0/max_energy_range_uj", "1125899906842624\n");
	tu_write(root, "intel-rapl:0/intel-rapl:0:0/name", "core\n");
	tu_write(root, "intel-rapl:0/intel-rapl:0:0/energy_uj", "500000\n");
	tu_write(root, "intel-rapl:0/intel-rapl:0:1/name", "dram\n");
	tu_write(root, "intel-rapl:0/intel-rapl:0:1/energy_uj", "2000000\n");
	tu_write(root, "intel-rapl:1/name", "package-1\n");
	tu_write(root, "intel-rapl:1/energy_uj", "3000000\n");
	tu_write(root, "intel-rapl:1/intel-rapl:1:0/name", "dram\n");
	tu_write(root, "intel-rapl:1/intel-rapl:1:0/energy_uj", "0\n");
	return root;
}

/* promtool check metrics on text: nothing but the two lint rules Scaphandre's own names break
 * (µ units, counters without _total). Skipped where promtool is not installed. */
static void assert_promtool_clean(const char *text)
{
	if (access("/usr/bin/promtool", X_OK) < 0)
		return;
	_cleanup_free_ char *path = xasprintf("%s/exposition.prom", dir);
	tu_write(dir, "exposition.prom", text);
	_cleanup_free_ char *cmd = xasprintf("/usr/bin/promtool check metrics < %s 2>&1", path);
	FILE *p = popen(cmd, "r");
	char line[512];

	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		if (!strstr(line, "should have \"_total\" suffix") && !strstr(line, "base unit"))
			fail_msg("promtool: %s", line);
	int status = pclose(p);
	assert_true(WIFEXITED(status));
	assert_true(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 3);
}

/* Scaphandre's host is packages + dram (no psys here): 58 W, not the packages' 50 W. Every
 * family with its type, and each series exactly. */
static void test_scaphandre_exposition(void **state)
{
	_cleanup_free_ char *root = make_two_sockets("two");
	struct source *s = source_new(root);
	struct strbuf b = { 0 };

	assert_int_equal(source_sample(s, 1000 * MS, 1000), 0);
	tu_write(root, "intel-rapl:0/energy_uj", "41000000\n");		       /* +40 J */
	tu_write(root, "intel-rapl:0/intel-rapl:0:0/energy_uj", "30500000\n"); /* +30 J */
	tu_write(root, "intel-rapl:0/intel-rapl:0:1/energy_uj", "8000000\n");  /* +6 J */
	tu_write(root, "intel-rapl:1/energy_uj", "13000000\n");		       /* +10 J */
	tu_write(root, "intel-rapl:1/intel-rapl:1:0/energy_uj", "2000000\n");  /* +2 J */
	assert_int_equal(source_sample(s, 2000 * MS, 1000), 0);

	/* One process had half the packages' energy: 25 of 50 J; Scaphandre gives it half the
	 * host's 58 W. */
	struct ledger_entry e = { .s = { .key = (char *)"42",
					  .pid = (char *)"42",
					  .comm = (char *)"worker",
					  .exe = (char *)"/usr/bin/worker",
					  .cmdline = (char *)"/usr/bin/worker --fast \"x\"" },
		.total_uj = 25000000,
		.interval_uj = 25000000 };
	struct ledger l = { .v = &e, .n = 1 };
	exporter_render(&b, &(struct exporter_view){ .source = s,
				    .ledger = &l,
				    .attribution = GUEST_ATTR_PROCESSES,
				    .metric_names = GUEST_NAMES_SCAPHANDRE,
				    .interval_ns = s->interval_ns,
				    .version = "1.2.3" });

	assert_line(&b, "# TYPE scaph_host_energy_microjoules counter");
	assert_line(&b, "scaph_host_energy_microjoules 64000000");
	assert_line(&b, "# TYPE scaph_host_power_microwatts gauge");
	assert_line(&b, "scaph_host_power_microwatts 58000000");
	assert_line(&b, "# TYPE scaph_socket_energy_microjoules counter");
	assert_line(&b, "scaph_socket_energy_microjoules{socket_id=\"0\"} 41000000");
	assert_line(&b, "scaph_socket_energy_microjoules{socket_id=\"1\"} 13000000");
	assert_line(&b, "# TYPE scaph_socket_power_microwatts gauge");
	assert_line(&b, "scaph_socket_power_microwatts{socket_id=\"0\"} 40000000");
	assert_line(&b, "scaph_socket_power_microwatts{socket_id=\"1\"} 10000000");
	assert_line(&b, "# TYPE scaph_domain_energy_microjoules counter");
	assert_line(&b, "scaph_domain_energy_microjoules{domain_name=\"core\",socket_id=\"0\","
			"domain_id=\"0\"} 30500000");
	assert_line(&b, "scaph_domain_energy_microjoules{domain_name=\"dram\",socket_id=\"0\","
			"domain_id=\"1\"} 8000000");
	assert_line(&b, "scaph_domain_energy_microjoules{domain_name=\"dram\",socket_id=\"1\","
			"domain_id=\"0\"} 2000000");
	assert_line(&b, "# TYPE scaph_domain_power_microwatts gauge");
	assert_line(&b, "scaph_domain_power_microwatts{domain_name=\"core\",socket_id=\"0\","
			"domain_id=\"0\"} 30000000");
	assert_line(&b, "scaph_domain_power_microwatts{domain_name=\"dram\",socket_id=\"0\","
			"domain_id=\"1\"} 6000000");
	assert_line(&b, "scaph_domain_power_microwatts{domain_name=\"dram\",socket_id=\"1\","
			"domain_id=\"0\"} 2000000");
	assert_line(&b, "# TYPE scaph_process_power_consumption_microwatts gauge");
	double v;
	assert_int_equal(
		tu_metric(b.buf,
			"scaph_process_power_consumption_microwatts{pid=\"42\","
			"exe=\"/usr/bin/worker\",cmdline=\"/usr/bin/worker --fast \\\"x\\\"\"}",
			&v),
		0);
	assert_true(v > 28999999 && v < 29000001);
	assert_line(&b, "powerd_source_info{layout=\"powerd\"} 1");
	/* Scaphandre mode has no native energy family, and no package-only host figure. */
	assert_null(strstr(b.buf, "powerd_energy_joules_total"));
	assert_null(strstr(b.buf, "scaph_host_energy_microjoules 54000000"));
	assert_promtool_clean(b.buf);
	strbuf_done(&b);
	source_free(s);
}

/* Where the tree has psys (a client CPU on bare metal), Scaphandre's host is psys alone: it
 * already holds the package and dram. psys is neither a socket nor a domain. */
static void test_scaphandre_host_is_psys(void **state)
{
	_cleanup_free_ char *root = xasprintf("%s/psys", dir);
	struct strbuf b = { 0 };

	tu_write(root, "intel-rapl:0/name", "package-0\n");
	tu_write(root, "intel-rapl:0/energy_uj", "1000\n");
	tu_write(root, "intel-rapl:0/intel-rapl:0:0/name", "dram\n");
	tu_write(root, "intel-rapl:0/intel-rapl:0:0/energy_uj", "100\n");
	tu_write(root, "intel-rapl:1/name", "psys\n");
	tu_write(root, "intel-rapl:1/energy_uj", "5000\n");
	struct source *s = source_new(root);

	assert_int_equal(source_sample(s, 1000 * MS, 1000), 0);
	tu_write(root, "intel-rapl:0/energy_uj", "3001000\n");
	tu_write(root, "intel-rapl:0/intel-rapl:0:0/energy_uj", "1000100\n");
	tu_write(root, "intel-rapl:1/energy_uj", "5005000\n");
	assert_int_equal(source_sample(s, 2000 * MS, 1000), 0);
	render(&b, s, GUEST_NAMES_SCAPHANDRE);
	assert_line(&b, "scaph_host_energy_microjoules 5005000");
	assert_line(&b, "scaph_host_power_microwatts 5000000");
	assert_line(&b, "scaph_socket_energy_microjoules{socket_id=\"0\"} 3001000");
	assert_null(strstr(b.buf, "socket_id=\"1\""));
	assert_line(&b, "scaph_domain_power_microwatts{domain_name=\"dram\",socket_id=\"0\","
			"domain_id=\"0\"} 1000000");
	assert_null(strstr(b.buf, "domain_name=\"psys\""));
	assert_promtool_clean(b.buf);
	strbuf_done(&b);
	source_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_open_strict_and_lenient),
		cmocka_unit_test(test_unusable_tree_names_the_file),
		cmocka_unit_test(test_source_reads_scaphandre_tree),
		cmocka_unit_test(test_scaphandre_exposition),
		cmocka_unit_test(test_scaphandre_host_is_psys),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
