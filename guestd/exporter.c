/* The exposition of powerd-guest.
 *
 * Native names follow DESIGN.md §3. With metric_names: scaphandre the energy and power families
 * carry the names, types, units (µW, µJ) and labels of Scaphandre's Prometheus exporter instead,
 * the series its dashboards and recording rules query:
 *   scaph_host_energy_microjoules (counter), scaph_host_power_microwatts: packages + dram, or
 *     psys where the tree has it (Scaphandre's definition of the host);
 *   scaph_socket_energy_microjoules{socket_id} (counter), scaph_socket_power_microwatts{socket_id};
 *   scaph_domain_energy_microjoules{domain_name,socket_id,domain_id} (counter),
 *     scaph_domain_power_microwatts{domain_name,socket_id,domain_id};
 *   scaph_process_power_consumption_microwatts{pid,exe,cmdline}, exe the executable's path.
 * Scaphandre has no per-service family, so powerd_unit_* keep their native names there, as do
 * powerd_source_up, powerd_source_estimated, powerd_source_info and powerd_build_info (health
 * of this daemon, not a Scaphandre series).
 */
#include "guestd/exporter.h"

#include <stdio.h>

#include "common/prom.h"
#include "guestd/guest_config.h"

#define UJ_PER_J 1e6

/* Zones that share a name (the "core" subzone of each package on 2-socket bare metal) are summed
 * into one series, as powerd-host sums them into the domain tree: zone = the name file. */
struct zone_sum {
	const char *name;
	uint64_t total_uj;
	double power_w;
};

static size_t zone_sums(const struct source *s, struct zone_sum *out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_zones; i++) {
		const struct source_zone *z = &s->zones[i];
		size_t k;

		for (k = 0; k < n; k++)
			if (streq(out[k].name, z->name))
				break;
		if (k == n)
			out[n++] = (struct zone_sum){ .name = z->name };
		out[k].total_uj += z->counter.total_uj;
		out[k].power_w += z->power_w;
	}
	return n;
}

static double entry_power_w(const struct ledger_entry *e, uint64_t interval_ns)
{
	return interval_ns ? (double)e->interval_uj * 1e3 / (double)interval_ns : 0;
}

static void render_native_zones(struct strbuf *b, const struct source *s)
{
	struct zone_sum *sums = xcalloc(s->n_zones ? s->n_zones : 1, sizeof(*sums));
	size_t n = zone_sums(s, sums);

	prom_family(b, "powerd_energy_joules_total", PROM_COUNTER,
		"Energy of this machine per powercap zone, in joules");
	for (size_t i = 0; i < n; i++) {
		const char *labels[] = { "zone", sums[i].name, NULL };
		prom_sample(b, "powerd_energy_joules_total", labels,
			(double)sums[i].total_uj / UJ_PER_J);
	}
	prom_family(b, "powerd_power_watts", PROM_GAUGE,
		"Average power of this machine per powercap zone over the last interval, in watts");
	for (size_t i = 0; i < n; i++) {
		const char *labels[] = { "zone", sums[i].name, NULL };
		prom_sample(b, "powerd_power_watts", labels, sums[i].power_w);
	}
	free(sums);
}

/* Scaphandre's host figure: Σ packages + Σ dram where the tree has no psys zone, else psys (the
 * platform, which already holds packages and dram). Over every zone ever seen, so the counter
 * never goes back when a tree loses a zone. */
struct scaph_host {
	uint64_t energy_uj;
	double power_w;
	double package_power_w;
};

static bool is_psys(const struct source_zone *z)
{
	return !z->is_package && streq(z->name, "psys");
}

static struct scaph_host scaph_host_of(const struct source *s)
{
	struct scaph_host h = { 0 };
	bool has_psys = false;

	for (size_t i = 0; i < s->n_zones; i++)
		has_psys = has_psys || is_psys(&s->zones[i]);
	for (size_t i = 0; i < s->n_zones; i++) {
		const struct source_zone *z = &s->zones[i];
		bool counts = has_psys ? is_psys(z) : z->is_package || streq(z->name, "dram");

		if (z->is_package)
			h.package_power_w += z->power_w;
		if (!counts)
			continue;
		h.energy_uj += z->counter.total_uj;
		h.power_w += z->power_w;
	}
	return h;
}

/* "intel-rapl:0:2", not "intel-rapl:0". */
static bool is_subzone(const struct source_zone *z)
{
	const char *colon = strchr(z->id, ':');

	return colon && strchr(colon + 1, ':');
}

/* "intel-rapl:0:2" -> "2": Scaphandre's domain_id is the subzone's own number. */
static const char *domain_id_of(const struct source_zone *z)
{
	const char *colon = strrchr(z->id, ':');

	return colon ? colon + 1 : z->id;
}

static void render_scaph_sockets(struct strbuf *b, const struct source *s, bool is_energy)
{
	const char *name =
		is_energy ? "scaph_socket_energy_microjoules" : "scaph_socket_power_microwatts";
	char socket[16];

	prom_family(b, name, is_energy ? PROM_COUNTER : PROM_GAUGE,
		is_energy ? "Energy of each CPU package (socket), in microjoules"
			  : "Average power of each CPU package (socket) over the last interval, "
			    "in microwatts");
	for (size_t i = 0; i < s->n_zones; i++) {
		const struct source_zone *z = &s->zones[i];
		/* Zones of a tree no longer open may share labels with the current tree's. */
		if (!z->is_package || !z->is_present)
			continue;
		snprintf(socket, sizeof(socket), "%u", z->package);
		const char *labels[] = { "socket_id", socket, NULL };
		prom_sample(b, name, labels,
			is_energy ? (double)z->counter.total_uj : z->power_w * 1e6);
	}
}

/* RAPL domains are the packages' subzones (core, uncore, dram); psys and packages are not. */
static void render_scaph_domains(struct strbuf *b, const struct source *s, bool is_energy)
{
	const char *name =
		is_energy ? "scaph_domain_energy_microjoules" : "scaph_domain_power_microwatts";
	char socket[16];

	prom_family(b, name, is_energy ? PROM_COUNTER : PROM_GAUGE,
		is_energy ? "Energy of each RAPL domain of a socket, in microjoules"
			  : "Average power of each RAPL domain of a socket over the last interval, "
			    "in microwatts");
	for (size_t i = 0; i < s->n_zones; i++) {
		const struct source_zone *z = &s->zones[i];
		if (!is_subzone(z) || !z->is_present)
			continue;
		snprintf(socket, sizeof(socket), "%u", z->package);
		const char *labels[] = { "domain_name", z->name, "socket_id", socket, "domain_id",
			domain_id_of(z), NULL };
		prom_sample(b, name, labels,
			is_energy ? (double)z->counter.total_uj : z->power_w * 1e6);
	}
}

static void render_scaph_zones(struct strbuf *b, const struct source *s)
{
	struct scaph_host h = scaph_host_of(s);

	prom_family(b, "scaph_host_energy_microjoules", PROM_COUNTER,
		"Energy of this machine (packages and dram, or psys where there is one), in "
		"microjoules");
	prom_sample(b, "scaph_host_energy_microjoules", NULL, (double)h.energy_uj);
	prom_family(b, "scaph_host_power_microwatts", PROM_GAUGE,
		"Average power of this machine (packages and dram, or psys where there is one) "
		"over "
		"the last interval, in microwatts");
	prom_sample(b, "scaph_host_power_microwatts", NULL, h.power_w * 1e6);
	render_scaph_sockets(b, s, true);
	render_scaph_sockets(b, s, false);
	render_scaph_domains(b, s, true);
	render_scaph_domains(b, s, false);
}

static void render_units(struct strbuf *b, const struct ledger *l, uint64_t interval_ns)
{
	prom_family(b, "powerd_unit_energy_joules_total", PROM_COUNTER,
		"Energy of this machine attributed to each systemd service by CPU time, in joules");
	for (size_t i = 0; i < l->n; i++) {
		const char *labels[] = { "unit", l->v[i].s.unit, NULL };
		prom_sample(b, "powerd_unit_energy_joules_total", labels,
			(double)l->v[i].total_uj / UJ_PER_J);
	}
	prom_family(b, "powerd_unit_power_watts", PROM_GAUGE,
		"Power attributed to each systemd service over the last interval, in watts");
	for (size_t i = 0; i < l->n; i++) {
		const char *labels[] = { "unit", l->v[i].s.unit, NULL };
		prom_sample(
			b, "powerd_unit_power_watts", labels, entry_power_w(&l->v[i], interval_ns));
	}
}

static int by_energy_desc(const void *a, const void *b)
{
	const struct ledger_entry *x = *(const struct ledger_entry *const *)a;
	const struct ledger_entry *y = *(const struct ledger_entry *const *)b;

	if (x->total_uj != y->total_uj)
		return x->total_uj < y->total_uj ? 1 : -1;
	return strcmp(x->s.key, y->s.key);
}

static int by_key(const void *a, const void *b)
{
	const struct ledger_entry *x = *(const struct ledger_entry *const *)a;
	const struct ledger_entry *y = *(const struct ledger_entry *const *)b;

	return strcmp(x->s.key, y->s.key);
}

/* Live processes that were given energy, the EXPORTER_MAX_PROCESSES with most, in pid order. */
static size_t pick_processes(const struct ledger *l, const struct ledger_entry ***ret)
{
	const struct ledger_entry **v = xcalloc(l->n ? l->n : 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].total_uj > 0)
			v[n++] = &l->v[i];
	if (n > EXPORTER_MAX_PROCESSES) {
		qsort(v, n, sizeof(*v), by_energy_desc);
		n = EXPORTER_MAX_PROCESSES;
		qsort(v, n, sizeof(*v), by_key);
	}
	*ret = v;
	return n;
}

static void render_processes(struct strbuf *b, const struct ledger *l, uint64_t interval_ns)
{
	const struct ledger_entry **v;
	size_t n = pick_processes(l, &v);

	prom_family(b, "powerd_process_energy_joules_total", PROM_COUNTER,
		"Energy of this machine attributed to each process by CPU time, in joules");
	for (size_t i = 0; i < n; i++) {
		const char *labels[] = { "pid", v[i]->s.pid, "comm", v[i]->s.comm, NULL };
		prom_sample(b, "powerd_process_energy_joules_total", labels,
			(double)v[i]->total_uj / UJ_PER_J);
	}
	prom_family(b, "powerd_process_power_watts", PROM_GAUGE,
		"Power attributed to each process over the last interval, in watts");
	for (size_t i = 0; i < n; i++) {
		const char *labels[] = { "pid", v[i]->s.pid, "comm", v[i]->s.comm, NULL };
		prom_sample(
			b, "powerd_process_power_watts", labels, entry_power_w(v[i], interval_ns));
	}
	free(v);
}

/* The ledger splits the packages' energy; Scaphandre splits its host figure (with dram): each
 * process keeps its share, scaled to that figure. */
static void render_scaph_processes(
	struct strbuf *b, const struct source *s, const struct ledger *l, uint64_t interval_ns)
{
	const struct ledger_entry **v;
	size_t n = pick_processes(l, &v);
	struct scaph_host h = scaph_host_of(s);
	double scale = h.package_power_w > 0 ? h.power_w / h.package_power_w : 1;

	prom_family(b, "scaph_process_power_consumption_microwatts", PROM_GAUGE,
		"Power consumption due to the process, in microwatts");
	for (size_t i = 0; i < n; i++) {
		const char *exe = v[i]->s.exe && *v[i]->s.exe ? v[i]->s.exe : v[i]->s.comm;
		const char *labels[] = { "pid", v[i]->s.pid, "exe", exe, "cmdline",
			v[i]->s.cmdline ? v[i]->s.cmdline : "", NULL };
		prom_sample(b, "scaph_process_power_consumption_microwatts", labels,
			entry_power_w(v[i], interval_ns) * scale * 1e6);
	}
	free(v);
}

/* Which writer the open tree looks like: a Scaphandre host (its `qemu` exporter, energy known to
 * be about 5x low, Scaphandre issue #428) is not powerd, and an operator should see that. */
static void render_source_info(struct strbuf *b, const struct source *s)
{
	prom_family(b, "powerd_source_info", PROM_GAUGE,
		"Layout of the powercap tree read (powerd, sysfs or scaphandre-qemu), value 1");
	if (!s->is_open)
		return;
	const char *labels[] = { "layout", powercap_layout_name(s->layout), NULL };
	prom_sample(b, "powerd_source_info", labels, 1);
}

void exporter_render(struct strbuf *b, const struct exporter_view *v)
{
	bool is_scaph = v->metric_names == GUEST_NAMES_SCAPHANDRE;

	if (is_scaph)
		render_scaph_zones(b, v->source);
	else
		render_native_zones(b, v->source);
	if (v->ledger && v->attribution == GUEST_ATTR_UNITS)
		render_units(b, v->ledger, v->interval_ns);
	if (v->ledger && v->attribution == GUEST_ATTR_PROCESSES) {
		if (is_scaph)
			render_scaph_processes(b, v->source, v->ledger, v->interval_ns);
		else
			render_processes(b, v->ledger, v->interval_ns);
	}
	prom_family(b, "powerd_source_up", PROM_GAUGE,
		"1 while the powercap tree is readable and its heartbeat fresh");
	prom_sample(b, "powerd_source_up", NULL, v->source->is_up ? 1 : 0);
	prom_family(b, "powerd_source_estimated", PROM_GAUGE,
		"1 when the host estimates energy from CPU use instead of measuring it");
	prom_sample(b, "powerd_source_estimated", NULL, v->source->is_estimated ? 1 : 0);
	render_source_info(b, v->source);
	prom_family(b, "powerd_build_info", PROM_GAUGE, "Version of powerd-guest, value 1");
	const char *labels[] = { "version", v->version, NULL };
	prom_sample(b, "powerd_build_info", labels, 1);
}
