/* Prometheus text exposition (format 0.0.4): family headers, samples with escaped labels, and
 * numbers printed so that a scraper parses back exactly the double we had. */
#include "common/prom.h"

#include <math.h>

/* 2^53: above it not every integer is a double, so printing with "%.0f" would invent digits. */
#define PROM_EXACT_INT_LIMIT 9007199254740992.0

void prom_format_double(double v, char *out)
{
	if (isnan(v)) {
		strcpy(out, "NaN");
		return;
	}
	if (isinf(v)) {
		strcpy(out, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == floor(v) && fabs(v) < PROM_EXACT_INT_LIMIT) {
		snprintf(out, 32, "%.0f", v);
		return;
	}
	/* %.17g always round-trips; try the shorter forms first for readability. */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, 32, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void prom_escape(struct strbuf *b, const char *v, bool escape_quote)
{
	const char *start = v;

	for (; *v; v++) {
		const char *rep = NULL;
		size_t n = utf8_valid_len(v);

		if (n > 1) {
			v += n - 1;
			continue;
		}
		/* Prometheus refuses a whole scrape over one invalid label value. */
		if (n == 0)
			rep = "\xef\xbf\xbd";
		else if (*v == '\\')
			rep = "\\\\";
		else if (*v == '\n')
			rep = "\\n";
		else if (*v == '"' && escape_quote)
			rep = "\\\"";
		if (!rep)
			continue;
		strbuf_add(b, start, (size_t)(v - start));
		strbuf_puts(b, rep);
		start = v + 1;
	}
	strbuf_add(b, start, (size_t)(v - start));
}

void prom_escape_label_value(struct strbuf *b, const char *v)
{
	prom_escape(b, v, true);
}

static const char *prom_type_name(enum prom_type type)
{
	switch (type) {
	case PROM_COUNTER:
		return "counter";
	case PROM_GAUGE:
		return "gauge";
	case PROM_UNTYPED:
		break;
	}
	return "untyped";
}

void prom_family(struct strbuf *b, const char *name, enum prom_type type, const char *help)
{
	strbuf_printf(b, "# HELP %s ", name);
	prom_escape(b, help, false);
	strbuf_printf(b, "\n# TYPE %s %s\n", name, prom_type_name(type));
}

void prom_sample(struct strbuf *b, const char *name, const char *const *labels, double value)
{
	char num[32];

	strbuf_puts(b, name);
	if (labels && labels[0]) {
		strbuf_putc(b, '{');
		for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
			if (i > 0)
				strbuf_putc(b, ',');
			strbuf_puts(b, labels[i]);
			strbuf_puts(b, "=\"");
			prom_escape_label_value(b, labels[i + 1]);
			strbuf_putc(b, '"');
		}
		strbuf_putc(b, '}');
	}
	prom_format_double(value, num);
	strbuf_putc(b, ' ');
	strbuf_puts(b, num);
	strbuf_putc(b, '\n');
}
