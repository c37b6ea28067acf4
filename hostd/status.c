/* powerd-host status (status.h): rendering in the privileged part, reading and printing in the
 * command. The command trusts nothing it reads: fields are length-bounded and printed as text. */
#include "hostd/status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "hostd/accounting.h"
#include "hostd/domains.h"

struct status_state {
	struct prev {
		char *name;
		uint64_t energy_uj;
	} * v;
	size_t n;
	uint64_t mono_ns;
};

#define PVE_TITLE_BUF 160

struct render_ctx {
	const struct accounting *acct;
	struct strbuf *out;
	const struct status_state *old;
	struct status_state *new;
	double dt_s;
	size_t hint;
};

void status_state_free(struct status_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].name);
	free(s->v);
	free(s);
}

/* The old entry for name: usually at the same index as before (domains keep their order). */
static const struct prev *find_prev(const struct status_state *s, const char *name, size_t hint)
{
	if (!s)
		return NULL;
	if (hint < s->n && streq(s->v[hint].name, name))
		return &s->v[hint];
	for (size_t i = 0; i < s->n; i++)
		if (streq(s->v[i].name, name))
			return &s->v[i];
	return NULL;
}

static const char *state_name(const struct domain_view *v)
{
	if (v->is_paused)
		return "paused";
	return v->is_running ? "running" : "shut-off";
}

static const char *share_name(enum mount_state m)
{
	switch (m) {
	case MOUNT_TMPFS:
		return "tmpfs";
	case MOUNT_IN_PLACE:
		return "in-place";
	default:
		return "none";
	}
}

static void render_domain(
	void *arg, const char *name, const struct domain_view *v, const struct acct_domain *ad)
{
	struct render_ctx *c = arg;
	uint64_t uj =
		ad && accounting_n_zones(c->acct) > 0 ? accounting_domain_energy_uj(ad, 0) : 0;
	const struct prev *p = find_prev(c->old, name, c->hint);
	const char *cpu = ad ? accounting_domain_cpu_source(ad) : NULL;
	char power[32] = "-";

	char error[256];

	if (p && c->dt_s > 0 && uj >= p->energy_uj)
		snprintf(power, sizeof(power), "%.2f", (double)(uj - p->energy_uj) / 1e6 / c->dt_s);
	/* The last error known per domain is the channel's refusal (libvirt's words): one line,
	 * no tabs, whatever it says. */
	snprintf(error, sizeof(error), "%s",
		v->channel_reason && v->channel_reason[0] ? v->channel_reason : "-");
	for (char *e = error; *e; e++)
		if ((unsigned char)*e < 0x20 || *e == 0x7f)
			*e = ' ';
	char title[PVE_TITLE_BUF];
	snprintf(title, sizeof(title), "%s", v->title && v->title[0] ? v->title : "-");
	for (char *e = title; *e; e++)
		if ((unsigned char)*e < 0x20 || *e == 0x7f)
			*e = ' ';
	strbuf_printf(c->out, "domain\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t%s\n", name, state_name(v),
		share_name(v->mount), channel_state_name(v->channel), cpu ? cpu : "-", power,
		(double)uj / 1e6, error, title);
	c->new->v[c->new->n].name = xstrdup(name);
	c->new->v[c->new->n].energy_uj = uj;
	c->new->n++;
	c->hint++;
}

void status_render(struct status_state **state, const struct status_info *info,
	const struct domains *domains, const struct accounting *acct, struct strbuf *out)
{
	uint64_t now = now_monotonic_ns();
	struct status_state *n = xcalloc(1, sizeof(*n));
	struct render_ctx c = { .acct = acct, .out = out, .old = *state, .new = n };
	double w = accounting_n_zones(acct) > 0 ? accounting_host_power_w(acct, 0) : 0;

	n->v = xcalloc(domains_count(domains) + 1, sizeof(*n->v));
	n->mono_ns = now;
	if (*state)
		c.dt_s = (double)(now - (*state)->mono_ns) / 1e9;
	strbuf_printf(out,
		"powerd-status\t%d\npid\t%d\nlibvirt\t%s\nmanager\t%s\ninterval_ms\t%llu\n"
		"ticks\t%llu\ntick_mono_ms\t%llu\nhost_power_w\t%.2f\nestimated\t%d\n"
		"server_restarts\t%u\n",
		STATUS_VERSION, (int)info->pid, info->is_connected ? "connected" : "disconnected",
		domains_manager_name(domains), (unsigned long long)info->interval_ms,
		(unsigned long long)info->ticks, (unsigned long long)(now / NSEC_PER_MSEC), w,
		accounting_is_estimated(acct), info->server_restarts);
	domains_foreach(domains, render_domain, &c);
	status_state_free(*state);
	*state = n;
}

bool status_is_healthy(bool is_connected, uint64_t tick_mono_ms, uint64_t now_mono_ms,
	uint64_t interval_ms, const char **ret_why)
{
	if (!is_connected) {
		*ret_why = "libvirt is not connected";
		return false;
	}
	if (now_mono_ms > tick_mono_ms && now_mono_ms - tick_mono_ms > 3 * interval_ms + 1000) {
		*ret_why = "ticks have stopped";
		return false;
	}
	*ret_why = "";
	return true;
}

/* --- the command --- */

static int read_document(const char *path, char **ret, size_t *ret_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return read_all_deadline(fd, STATUS_MAX_BYTES, STATUS_TIMEOUT_MS, ret, ret_len);
}

#define STATUS_FIELDS 9	     /* at least */
#define STATUS_FIELDS_MAX 10 /* the 10th: the domain's title (Proxmox's name), "-" if none */

/* Split line at tabs into at most max fields (in place); the count. */
static size_t split(char *line, char **f, size_t max)
{
	size_t n = 0;

	while (n < max) {
		f[n++] = line;
		line = strchr(line, '\t');
		if (!line)
			break;
		*line++ = '\0';
	}
	return n;
}

/* Printable, at most width bytes of it. */
static void print_field(const char *s, int width)
{
	char clean[256];
	size_t i = 0;

	for (; i < sizeof(clean) - 1 && s[i]; i++)
		clean[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	clean[i] = '\0';
	printf("%-*s ", width, clean);
}

struct summary {
	long pid;
	bool is_connected;
	unsigned long long interval_ms, ticks, tick_mono_ms, restarts;
	double host_w;
	int estimated;
	size_t n_domains;
	bool has_version;
	char manager[16];
};

static void parse_header(struct summary *s, char **f, size_t n)
{
	if (n < 2)
		return;
	if (streq(f[0], "powerd-status"))
		s->has_version = atoi(f[1]) == STATUS_VERSION;
	else if (streq(f[0], "pid"))
		s->pid = strtol(f[1], NULL, 10);
	else if (streq(f[0], "libvirt"))
		s->is_connected = streq(f[1], "connected");
	else if (streq(f[0], "manager") && (streq(f[1], "libvirt") || streq(f[1], "proxmox")))
		snprintf(s->manager, sizeof(s->manager), "%s", f[1]);
	else if (streq(f[0], "interval_ms"))
		s->interval_ms = strtoull(f[1], NULL, 10);
	else if (streq(f[0], "ticks"))
		s->ticks = strtoull(f[1], NULL, 10);
	else if (streq(f[0], "tick_mono_ms"))
		s->tick_mono_ms = strtoull(f[1], NULL, 10);
	else if (streq(f[0], "host_power_w"))
		s->host_w = strtod(f[1], NULL);
	else if (streq(f[0], "estimated"))
		s->estimated = atoi(f[1]);
	else if (streq(f[0], "server_restarts"))
		s->restarts = strtoull(f[1], NULL, 10);
}

int status_main(const char *socket_path)
{
	static const char *const heads[] = { "DOMAIN", "STATE", "SHARE", "CHANNEL", "CPU",
		"POWER(W)", "ENERGY(J)", "LAST ERROR" };
	static const int widths[] = { 24, 9, 9, 13, 8, 9, 12, 1 };
	_cleanup_free_ char *doc = NULL;
	struct summary s = { .manager = "libvirt" };
	size_t len = 0;
	const char *why;
	int r;

	if (!socket_path || !*socket_path) {
		fprintf(stderr, "powerd-host status: status_socket is \"\" in the configuration\n");
		return 3;
	}
	r = read_document(socket_path, &doc, &len);
	if (r < 0) {
		fprintf(stderr, "powerd-host status: %s: %s: powerd-host is not running\n",
			socket_path, strerror(-r));
		return 3;
	}
	if (len == 0) {
		fprintf(stderr, "powerd-host status: powerd-host is starting (no tick yet)\n");
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(heads); i++)
		print_field(heads[i], widths[i]);
	printf("\n");
	for (char *line = doc, *end; line && *line; line = end ? end + 1 : NULL) {
		char *f[STATUS_FIELDS_MAX];
		end = strchr(line, '\n');
		if (end)
			*end = '\0';
		size_t n = split(line, f, ARRAY_SIZE(f));
		if (!streq(f[0], "domain")) {
			parse_header(&s, f, n);
			continue;
		}
		if (n < STATUS_FIELDS)
			continue;
		if (n > STATUS_FIELDS && !streq(f[STATUS_FIELDS], "-")) {
			/* DOMAIN shows "<vmid> (<name>)" */
			char both[128];
			snprintf(both, sizeof(both), "%.40s (%.80s)", f[1], f[STATUS_FIELDS]);
			print_field(both, widths[0]);
		} else {
			print_field(f[1], widths[0]);
		}
		for (size_t i = 2; i < STATUS_FIELDS; i++)
			print_field(f[i], widths[i - 1]);
		printf("\n");
		s.n_domains++;
	}
	if (!s.has_version) {
		fprintf(stderr, "powerd-host status: %s: not a status document of version %d\n",
			socket_path, STATUS_VERSION);
		return 1;
	}
	uint64_t now_ms = now_monotonic_ns() / NSEC_PER_MSEC;
	bool ok = status_is_healthy(s.is_connected, s.tick_mono_ms, now_ms, s.interval_ms, &why);
	printf("\npowerd-host %ld: %s; %s %s; %zu domains; host %.1f W%s; tick %llu, %.1f s "
	       "ago; "
	       "http server restarts %llu\n",
		s.pid, ok ? "healthy" : why, s.manager,
		streq(s.manager, "proxmox") ? (s.is_connected ? "watched" : "not watched")
		: s.is_connected	    ? "connected"
					    : "disconnected",
		s.n_domains, s.host_w, s.estimated ? " (estimated)" : "", s.ticks,
		now_ms > s.tick_mono_ms ? (double)(now_ms - s.tick_mono_ms) / 1000 : 0.0,
		s.restarts);
	return ok ? 0 : 1;
}
