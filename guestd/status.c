/* powerd-guest status (status.h): one plain HTTP/1.0 GET of /metrics to the daemon's own listen
 * address (loopback when it listens on every address), then a small reading of the exposition.
 * The answer could come from anything listening there: every field is bounded and printed as
 * text. */
#include "guestd/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/config.h"
#include "common/util.h"

#define LABEL_MAX 256
#define ZONES_MAX 32

static int connect_to(const char *host, uint16_t port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char service[8];
	int fd = -ECONNREFUSED;

	snprintf(service, sizeof(service), "%u", port);
	if (getaddrinfo(host, service, &hints, &ai) != 0)
		return -EADDRNOTAVAIL;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		int s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);

		if (s < 0)
			continue;
		if (connect(s, a->ai_addr, a->ai_addrlen) == 0) {
			fd = s;
			break;
		}
		fd = -errno;
		close(s);
	}
	freeaddrinfo(ai);
	return fd;
}

/* The daemon's address as a client reaches it: every address means loopback. */
static int connect_daemon(const char *listen)
{
	char host[256];
	uint16_t port;

	if (config_split_listen(listen, host, sizeof(host), &port) < 0)
		return -EINVAL;
	if (host[0] && !streq(host, "::") && !streq(host, "0.0.0.0"))
		return connect_to(host, port);
	int fd = connect_to("::1", port);
	return fd >= 0 ? fd : connect_to("127.0.0.1", port);
}

static int fetch(const char *listen, int *ret_code, char **ret_body)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
	_cleanup_close_ int fd = connect_daemon(listen);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	if (fd < 0)
		return fd;
	if (write_all(fd, req, sizeof(req) - 1) < 0)
		return -EIO;
	int r = read_all_deadline(fd, GUEST_STATUS_MAX_BYTES, GUEST_STATUS_TIMEOUT_MS, &buf, &len);
	if (r < 0)
		return r;
	char *body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strlen(buf) < 12 || !body)
		return -EPROTO;
	*ret_code = atoi(buf + 9);
	*ret_body = xstrdup(body + 4);
	return 0;
}

/* The value of label key in a label set "{k="v",...}" (s after '{'), unescaped into out;
 * false if absent or malformed. */
static bool label_value(const char *s, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);

	while (*s && *s != '}') {
		const char *eq = strchr(s, '=');
		if (!eq || eq[1] != '"')
			return false;
		bool is_key = (size_t)(eq - s) == klen && strncmp(s, key, klen) == 0;
		size_t n = 0;
		const char *p = eq + 2;
		for (; *p && *p != '"'; p++) {
			char c = *p;
			if (c == '\\' && p[1]) {
				p++;
				c = *p == 'n' ? '\n' : *p;
			}
			if (n + 1 < size)
				out[n++] = c;
		}
		if (*p != '"')
			return false;
		out[n] = '\0';
		if (is_key)
			return true;
		s = p + 1;
		if (*s == ',')
			s++;
	}
	return false;
}

/* Calls cb for each sample line of family name: its label set (after '{', or "" ) and value. */
static void for_each_sample(const char *exp, const char *name,
	void (*cb)(void *arg, const char *labels, double v), void *arg)
{
	size_t n = strlen(name);

	for (const char *line = exp; line && *line;) {
		const char *end = strchr(line, '\n');
		if (line[0] != '#' && strncmp(line, name, n) == 0 &&
			(line[n] == '{' || line[n] == ' ')) {
			const char *labels = line[n] == '{' ? line + n + 1 : "";
			const char *sp = end ? end : line + strlen(line);
			while (sp > line && sp[-1] != ' ')
				sp--;
			cb(arg, labels, strtod(sp, NULL));
		}
		line = end ? end + 1 : NULL;
	}
}

struct find {
	const char *key, *value;
	bool is_found;
	double v;
};

static void find_cb(void *arg, const char *labels, double v)
{
	struct find *f = arg;
	char val[LABEL_MAX];

	if (f->is_found)
		return;
	if (!f->key || (label_value(labels, f->key, val, sizeof(val)) && streq(val, f->value))) {
		f->is_found = true;
		f->v = v;
	}
}

int guest_status_sample(const char *exposition, const char *name, const char *label_key,
	const char *label_value_want, double *ret)
{
	struct find f = { .key = label_key, .value = label_value_want };

	for_each_sample(exposition, name, find_cb, &f);
	if (!f.is_found)
		return -ENOENT;
	*ret = f.v;
	return 0;
}

struct zones {
	char name[ZONES_MAX][LABEL_MAX];
	size_t n;
	size_t n_units;
};

static void zone_cb(void *arg, const char *labels, double v)
{
	struct zones *z = arg;

	if (z->n < ZONES_MAX && label_value(labels, "zone", z->name[z->n], LABEL_MAX))
		z->n++;
}

static void unit_cb(void *arg, const char *labels, double v)
{
	((struct zones *)arg)->n_units++;
}

/* s without control characters, into out (bounded). */
static const char *clean(const char *s, char *out, size_t size)
{
	size_t i = 0;

	for (; i + 1 < size && s[i]; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	out[i] = '\0';
	return out;
}

static void print_clean(const char *s, int width)
{
	char buf[LABEL_MAX];

	printf("%-*s ", width, clean(s, buf, sizeof(buf)));
}

static void print_zones(const char *exp)
{
	struct zones z = { .n = 0 };
	double w = 0, j = 0;

	printf("%-16s %-9s %s\n", "ZONE", "POWER(W)", "ENERGY(J)");
	for_each_sample(exp, "powerd_energy_joules_total", zone_cb, &z);
	for (size_t i = 0; i < z.n; i++) {
		print_clean(z.name[i], 16);
		if (guest_status_sample(exp, "powerd_power_watts", "zone", z.name[i], &w) == 0)
			printf("%-9.2f ", w);
		else
			printf("%-9s ", "-");
		guest_status_sample(exp, "powerd_energy_joules_total", "zone", z.name[i], &j);
		printf("%.3f\n", j);
	}
	/* metric_names: scaphandre serves the host figure in µW and µJ under its own names. */
	if (z.n == 0 &&
		guest_status_sample(exp, "scaph_host_energy_microjoules", NULL, NULL, &j) == 0) {
		print_clean("host (scaphandre)", 16);
		if (guest_status_sample(exp, "scaph_host_power_microwatts", NULL, NULL, &w) == 0)
			printf("%-9.2f ", w / 1e6);
		else
			printf("%-9s ", "-");
		printf("%.3f\n", j / 1e6);
	}
	for_each_sample(exp, "powerd_unit_energy_joules_total", unit_cb, &z);
	if (z.n_units > 0)
		printf("(%zu units attributed: powerd_unit_* on /metrics)\n", z.n_units);
}

struct layout {
	char name[LABEL_MAX];
	char version[LABEL_MAX];
};

static void layout_cb(void *arg, const char *labels, double v)
{
	label_value(labels, "layout", ((struct layout *)arg)->name, LABEL_MAX);
}

static void version_cb(void *arg, const char *labels, double v)
{
	label_value(labels, "version", ((struct layout *)arg)->version, LABEL_MAX);
}

int guest_status_main(const struct guest_config *cfg)
{
	_cleanup_free_ char *body = NULL;
	struct layout l = { "-", "-" };
	double up = 0, est = 0;
	int code = 0, r;

	r = fetch(cfg->listen, &code, &body);
	if (r < 0) {
		fprintf(stderr, "powerd-guest status: %s: %s: powerd-guest is not running\n",
			cfg->listen, strerror(-r));
		return 3;
	}
	if (code != 200) {
		fprintf(stderr, "powerd-guest status: %s answered %d: %s", cfg->listen, code,
			code == 503 ? "no sample yet\n" : "not powerd-guest's /metrics?\n");
		return 1;
	}
	if (guest_status_sample(body, "powerd_source_up", NULL, NULL, &up) < 0) {
		fprintf(stderr,
			"powerd-guest status: %s serves no powerd_source_up: not powerd-guest\n",
			cfg->listen);
		return 1;
	}
	guest_status_sample(body, "powerd_source_estimated", NULL, NULL, &est);
	for_each_sample(body, "powerd_source_info", layout_cb, &l);
	for_each_sample(body, "powerd_build_info", version_cb, &l);
	print_zones(body);
	char version[LABEL_MAX], layout[LABEL_MAX];
	printf("\npowerd-guest %s at %s: %s; source %s %s (layout %s)%s\n",
		clean(l.version, version, sizeof(version)), cfg->listen,
		up == 1 ? "healthy" : "not healthy", cfg->source, up == 1 ? "up" : "down",
		clean(l.name, layout, sizeof(layout)),
		est == 1 ? "; energy estimated by the host" : "");
	return up == 1 ? 0 : 1;
}
