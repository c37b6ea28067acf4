/* YAML configuration loading on libyaml's event API, driven by a table of keys. Events are
 * consumed as they come so that a bad file stops at its first problem; anchors and aliases are
 * refused outright (no billion laughs), as are several documents and a non-mapping top level. */
#include "common/config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "common/util.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_KEY_MAX 256
/* How much of an offending value a message quotes. */
#define CONFIG_QUOTE_MAX 64

struct cfg_parser {
	yaml_parser_t parser;
	const char *name;
	const char *text;
	char *err;
	size_t err_size;
};

static void yaml_event_deletep(yaml_event_t *ev)
{
	yaml_event_delete(ev);
}

#define _cleanup_event_ _cleanup_(yaml_event_deletep)

static int cfg_error(struct cfg_parser *p, yaml_mark_t mark, const char *fmt, ...) _printf_(3, 4);
static int cfg_error(struct cfg_parser *p, yaml_mark_t mark, const char *fmt, ...)
{
	va_list ap;

	if (!p->err || p->err_size == 0)
		return -EINVAL;
	int n = snprintf(
		p->err, p->err_size, "%s:%zu:%zu: ", p->name, mark.line + 1, mark.column + 1);
	if (n < 0 || (size_t)n >= p->err_size)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->err_size - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static yaml_mark_t offset_mark(const char *text, size_t offset)
{
	yaml_mark_t mark = { .index = offset };
	size_t line_start = 0;

	for (size_t i = 0; i < offset; i++) {
		if (text[i] == '\n') {
			mark.line++;
			line_start = i + 1;
		}
	}
	/* Columns count characters: skip UTF-8 continuation bytes. */
	for (size_t i = line_start; i < offset; i++)
		if (((unsigned char)text[i] & 0xc0) != 0x80)
			mark.column++;
	return mark;
}

/* The next event into ev (whose previous content is released). Syntax errors, anchors and
 * aliases are reported here, so no caller sees them. */
static int cfg_next(struct cfg_parser *p, yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL;

	yaml_event_delete(ev);
	if (!yaml_parser_parse(&p->parser, ev)) {
		yaml_mark_t mark = p->parser.problem_mark;

		*ev = (yaml_event_t){ 0 };
		/* Encoding errors only know their byte offset. */
		if (p->parser.error == YAML_READER_ERROR)
			mark = offset_mark(p->text, p->parser.problem_offset);
		return cfg_error(p, mark, "YAML syntax error: %s",
			p->parser.problem ? p->parser.problem : "unknown problem");
	}
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return cfg_error(p, ev->start_mark, "YAML aliases are not allowed");
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		break;
	default:
		break;
	}
	if (anchor)
		return cfg_error(p, ev->start_mark, "YAML anchors are not allowed");
	return 0;
}

static const char *cfg_event_kind(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return "a scalar";
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	default:
		return "something else";
	}
}

static const char *scalar_value(const yaml_event_t *ev)
{
	return (const char *)ev->data.scalar.value;
}

/* A plain empty scalar, "~" or "null": YAML's null. A quoted "" is an empty string. */
static bool scalar_is_null(const yaml_event_t *ev)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
		if (streq(scalar_value(ev), nulls[i]))
			return true;
	return false;
}

static bool scalar_has_nul(const yaml_event_t *ev)
{
	return memchr(ev->data.scalar.value, '\0', ev->data.scalar.length) != NULL;
}

static void format_duration(uint64_t ms, char *buf, size_t size)
{
	if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, size, "%" PRIu64 "h", ms / 3600000);
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, size, "%" PRIu64 "m", ms / 60000);
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, size, "%" PRIu64 "ms", ms);
}

static void format_size(uint64_t bytes, char *buf, size_t size)
{
	if (bytes != 0 && bytes % (1ull << 30) == 0)
		snprintf(buf, size, "%" PRIu64 "g", bytes >> 30);
	else if (bytes != 0 && bytes % (1ull << 20) == 0)
		snprintf(buf, size, "%" PRIu64 "m", bytes >> 20);
	else if (bytes != 0 && bytes % (1ull << 10) == 0)
		snprintf(buf, size, "%" PRIu64 "k", bytes >> 10);
	else
		snprintf(buf, size, "%" PRIu64, bytes);
}

static void format_bound(enum config_type type, uint64_t v, char *buf, size_t size)
{
	if (type == CONFIG_DURATION_MS)
		format_duration(v, buf, size);
	else if (type == CONFIG_SIZE)
		format_size(v, buf, size);
	else
		snprintf(buf, size, "%" PRIu64, v);
}

static int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static void strv_free(struct config_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	*sv = (struct config_strv){ 0 };
}

static void strv_freep(struct config_strv *sv)
{
	strv_free(sv);
}

static int cfg_run_check(struct cfg_parser *p, const struct config_key *k, const char *key,
	yaml_mark_t mark, const void *value)
{
	char msg[256] = "";

	if (!k->check)
		return 0;
	int r = k->check(value, msg, sizeof(msg));
	if (r < 0)
		return cfg_error(p, mark, "%s: %s", key, msg[0] ? msg : "invalid value");
	return 0;
}

static int cfg_strv(struct cfg_parser *p, const struct config_key *k, const char *key,
	yaml_event_t *ev, void *target)
{
	_cleanup_(strv_freep) struct config_strv sv = { 0 };
	yaml_mark_t mark = ev->start_mark;
	int r;

	if (ev->type == YAML_SCALAR_EVENT && scalar_is_null(ev))
		return cfg_error(p, ev->start_mark, "%s: expected a value", key);
	if (ev->type != YAML_SEQUENCE_START_EVENT)
		return cfg_error(p, ev->start_mark, "%s: expected a list of strings", key);
	for (;;) {
		r = cfg_next(p, ev);
		if (r < 0)
			return r;
		if (ev->type == YAML_SEQUENCE_END_EVENT)
			break;
		if (ev->type != YAML_SCALAR_EVENT || scalar_is_null(ev))
			return cfg_error(p, ev->start_mark, "%s: expected a list of strings", key);
		if (scalar_has_nul(ev))
			return cfg_error(
				p, ev->start_mark, "%s: a string contains a NUL byte", key);
		sv.v = xreallocarray(sv.v, sv.n + 1, sizeof(*sv.v));
		sv.v[sv.n++] = xstrdup(scalar_value(ev));
	}
	r = cfg_run_check(p, k, key, mark, &sv);
	if (r < 0)
		return r;
	struct config_strv *dst = (struct config_strv *)((char *)target + k->offset);
	strv_free(dst);
	*dst = sv;
	sv = (struct config_strv){ 0 };
	return 0;
}

static int cfg_integer(struct cfg_parser *p, const struct config_key *k, const char *key,
	const yaml_event_t *ev, uint64_t *ret)
{
	const char *s = scalar_value(ev);
	int r;

	switch (k->type) {
	case CONFIG_DURATION_MS:
		r = parse_duration_ms(s, ret);
		if (r < 0)
			return cfg_error(p, ev->start_mark,
				"%s: bad duration '%.*s' (use e.g. 250ms, 2s, 1m)", key,
				CONFIG_QUOTE_MAX, s);
		break;
	case CONFIG_SIZE:
		r = parse_size_bytes(s, ret);
		if (r < 0)
			return cfg_error(p, ev->start_mark,
				"%s: bad size '%.*s' (use e.g. 4096, 512k, 5m, 1g)", key,
				CONFIG_QUOTE_MAX, s);
		break;
	default:
		r = parse_u64(s, ret);
		if (r < 0)
			return cfg_error(p, ev->start_mark,
				"%s: bad number '%.*s' (expected a non-negative integer)", key,
				CONFIG_QUOTE_MAX, s);
		break;
	}
	if (k->max != 0 && (*ret < k->min || *ret > k->max)) {
		char lo[32], hi[32];

		format_bound(k->type, k->min, lo, sizeof(lo));
		format_bound(k->type, k->max, hi, sizeof(hi));
		return cfg_error(p, ev->start_mark, "%s: %.*s is out of range (%s..%s)", key,
			CONFIG_QUOTE_MAX, s, lo, hi);
	}
	return 0;
}

static int cfg_scalar(struct cfg_parser *p, const struct config_key *k, const char *key,
	const yaml_event_t *ev, void *target)
{
	void *dst = (char *)target + k->offset;
	const char *s = scalar_value(ev);
	int r;

	if (ev->type != YAML_SCALAR_EVENT)
		return cfg_error(p, ev->start_mark, "%s: expected a scalar, got %s", key,
			cfg_event_kind(ev));
	if (scalar_is_null(ev))
		return cfg_error(p, ev->start_mark, "%s: expected a value", key);
	if (scalar_has_nul(ev))
		return cfg_error(p, ev->start_mark, "%s: the value contains a NUL byte", key);

	switch (k->type) {
	case CONFIG_STRING: {
		/* The check sees the string itself, not a pointer to it. */
		r = cfg_run_check(p, k, key, ev->start_mark, s);
		if (r < 0)
			return r;
		free(*(char **)dst);
		*(char **)dst = xstrdup(s);
		return 0;
	}
	case CONFIG_DURATION_MS:
	case CONFIG_SIZE:
	case CONFIG_U64: {
		uint64_t v;

		r = cfg_integer(p, k, key, ev, &v);
		if (r < 0)
			return r;
		r = cfg_run_check(p, k, key, ev->start_mark, &v);
		if (r < 0)
			return r;
		*(uint64_t *)dst = v;
		return 0;
	}
	case CONFIG_DOUBLE: {
		double v;

		if (parse_double(s, &v) < 0)
			return cfg_error(p, ev->start_mark,
				"%s: bad number '%.*s' (expected e.g. 12 or 7.5)", key,
				CONFIG_QUOTE_MAX, s);
		if (k->dmax != 0 && (v < k->dmin || v > k->dmax))
			return cfg_error(p, ev->start_mark, "%s: %.*s is out of range (%g..%g)",
				key, CONFIG_QUOTE_MAX, s, k->dmin, k->dmax);
		r = cfg_run_check(p, k, key, ev->start_mark, &v);
		if (r < 0)
			return r;
		*(double *)dst = v;
		return 0;
	}
	case CONFIG_BOOL: {
		bool v;

		if (parse_bool(s, &v) < 0)
			return cfg_error(p, ev->start_mark,
				"%s: '%.*s' is not a boolean (use true or false)", key,
				CONFIG_QUOTE_MAX, s);
		r = cfg_run_check(p, k, key, ev->start_mark, &v);
		if (r < 0)
			return r;
		*(bool *)dst = v;
		return 0;
	}
	case CONFIG_ENUM: {
		char names[256] = "";
		size_t len = 0;

		for (int i = 0; k->enum_names && k->enum_names[i]; i++) {
			if (streq(s, k->enum_names[i])) {
				r = cfg_run_check(p, k, key, ev->start_mark, &i);
				if (r < 0)
					return r;
				*(int *)dst = i;
				return 0;
			}
			int n = snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
				k->enum_names[i]);
			if (n > 0)
				len = MIN(len + (size_t)n, sizeof(names) - 1);
		}
		return cfg_error(p, ev->start_mark, "%s: '%.*s' is not one of: %s", key,
			CONFIG_QUOTE_MAX, s, names);
	}
	default:
		break;
	}
	return cfg_error(p, ev->start_mark, "%s: unsupported key type", key);
}

static int cfg_mapping(
	struct cfg_parser *p, const struct config_key *schema, const char *prefix, void *target);

/* The value of key k; its first event is read here. */
static int cfg_value(
	struct cfg_parser *p, const struct config_key *k, const char *key, void *target)
{
	_cleanup_event_ yaml_event_t ev = { 0 };
	int r;

	r = cfg_next(p, &ev);
	if (r < 0)
		return r;
	if (k->type == CONFIG_MAP) {
		if (ev.type == YAML_MAPPING_START_EVENT)
			return cfg_mapping(p, k->children, key, target);
		if (ev.type == YAML_SCALAR_EVENT && scalar_is_null(&ev))
			return cfg_error(p, ev.start_mark, "%s: expected a value", key);
		return cfg_error(p, ev.start_mark, "%s: expected a mapping, got %s", key,
			cfg_event_kind(&ev));
	}
	if (k->type == CONFIG_STRV)
		return cfg_strv(p, k, key, &ev, target);
	return cfg_scalar(p, k, key, &ev, target);
}

/* The keys of a mapping whose start event was consumed, up to and including its end. */
static int cfg_mapping(
	struct cfg_parser *p, const struct config_key *schema, const char *prefix, void *target)
{
	_cleanup_event_ yaml_event_t ev = { 0 };
	_cleanup_free_ bool *seen = NULL;
	size_t n_keys = 0;
	int r;

	while (schema[n_keys].name)
		n_keys++;
	seen = xcalloc(n_keys + 1, sizeof(*seen));

	for (;;) {
		char key[CONFIG_KEY_MAX];
		size_t i;

		r = cfg_next(p, &ev);
		if (r < 0)
			return r;
		if (ev.type == YAML_MAPPING_END_EVENT)
			return 0;
		if (ev.type != YAML_SCALAR_EVENT || scalar_has_nul(&ev))
			return cfg_error(p, ev.start_mark, "%s%sexpected a key, got %s",
				prefix ? prefix : "", prefix ? ": " : "", cfg_event_kind(&ev));
		snprintf(key, sizeof(key), "%s%s%.*s", prefix ? prefix : "", prefix ? "." : "",
			CONFIG_QUOTE_MAX, scalar_value(&ev));
		for (i = 0; i < n_keys; i++)
			if (streq(schema[i].name, scalar_value(&ev)))
				break;
		if (i == n_keys)
			return cfg_error(p, ev.start_mark, "unknown key '%s'", key);
		if (seen[i])
			return cfg_error(p, ev.start_mark, "duplicate key '%s'", key);
		seen[i] = true;
		r = cfg_value(p, &schema[i], key, target);
		if (r < 0)
			return r;
	}
}

static int cfg_expect(struct cfg_parser *p, yaml_event_t *ev, yaml_event_type_t type)
{
	int r = cfg_next(p, ev);
	if (r < 0)
		return r;
	if (ev->type != type)
		return cfg_error(p, ev->start_mark, "unexpected YAML event");
	return 0;
}

static int cfg_stream(struct cfg_parser *p, const struct config_key *schema, void *target)
{
	_cleanup_event_ yaml_event_t ev = { 0 };
	int r;

	r = cfg_expect(p, &ev, YAML_STREAM_START_EVENT);
	if (r < 0)
		return r;
	r = cfg_next(p, &ev);
	if (r < 0)
		return r;
	if (ev.type == YAML_STREAM_END_EVENT)
		return 0; /* empty, or only comments */
	if (ev.type != YAML_DOCUMENT_START_EVENT)
		return cfg_error(p, ev.start_mark, "unexpected YAML event");

	r = cfg_next(p, &ev);
	if (r < 0)
		return r;
	if (ev.type == YAML_MAPPING_START_EVENT) {
		r = cfg_mapping(p, schema, NULL, target);
		if (r < 0)
			return r;
	} else if (ev.type != YAML_SCALAR_EVENT || !scalar_is_null(&ev)) {
		/* A bare "---" is an empty document: no keys. */
		return cfg_error(p, ev.start_mark,
			"expected a mapping of keys at the top level, got %s", cfg_event_kind(&ev));
	}

	r = cfg_expect(p, &ev, YAML_DOCUMENT_END_EVENT);
	if (r < 0)
		return r;
	r = cfg_next(p, &ev);
	if (r < 0)
		return r;
	if (ev.type == YAML_DOCUMENT_START_EVENT)
		return cfg_error(p, ev.start_mark, "only one YAML document is allowed");
	if (ev.type != YAML_STREAM_END_EVENT)
		return cfg_error(p, ev.start_mark, "unexpected YAML event");
	return 0;
}

int config_load_buffer(const char *name, const char *text, size_t len,
	const struct config_key *schema, void *target, char *err, size_t err_size)
{
	struct cfg_parser p = { .name = name, .text = text, .err = err, .err_size = err_size };

	if (err && err_size)
		err[0] = '\0';
	if (len > CONFIG_FILE_MAX) {
		if (err && err_size)
			snprintf(err, err_size, "%s: the file is larger than 1 MiB", name);
		return -EFBIG;
	}
	if (!yaml_parser_initialize(&p.parser))
		abort();
	yaml_parser_set_input_string(&p.parser, (const unsigned char *)text, len);
	int r = cfg_stream(&p, schema, target);
	yaml_parser_delete(&p.parser);
	return r;
}

int config_load_file(
	const char *path, const struct config_key *schema, void *target, char *err, size_t err_size)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int r;

	if (err && err_size)
		err[0] = '\0';
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		if (err && err_size)
			snprintf(err, err_size, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -errno;
		if (err && err_size)
			snprintf(err, err_size, "%s: cannot read: %s", path, strerror(-r));
		return r;
	}
	buf = xmalloc(CONFIG_FILE_MAX + 1);
	while (len <= CONFIG_FILE_MAX) {
		ssize_t n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			if (err && err_size)
				snprintf(err, err_size, "%s: cannot read: %s", path, strerror(-r));
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return config_load_buffer(path, buf, len, schema, target, err, err_size);
}

static size_t config_value_size(enum config_type type)
{
	switch (type) {
	case CONFIG_DURATION_MS:
	case CONFIG_SIZE:
	case CONFIG_U64:
		return sizeof(uint64_t);
	case CONFIG_DOUBLE:
		return sizeof(double);
	case CONFIG_BOOL:
		return sizeof(bool);
	case CONFIG_ENUM:
		return sizeof(int);
	default:
		return 0;
	}
}

void config_free(const struct config_key *schema, void *target)
{
	for (const struct config_key *k = schema; k->name; k++) {
		void *v = (char *)target + k->offset;

		if (k->type == CONFIG_STRING) {
			free(*(char **)v);
			*(char **)v = NULL;
		} else if (k->type == CONFIG_STRV) {
			strv_free(v);
		} else if (k->type == CONFIG_MAP && k->children) {
			config_free(k->children, target);
		}
	}
}

void config_copy(const struct config_key *schema, void *dst, const void *src)
{
	for (const struct config_key *k = schema; k->name; k++) {
		void *d = (char *)dst + k->offset;
		const void *s = (const char *)src + k->offset;

		if (k->type == CONFIG_STRING) {
			const char *str = *(char *const *)s;
			*(char **)d = str ? xstrdup(str) : NULL;
		} else if (k->type == CONFIG_STRV) {
			const struct config_strv *ssv = s;
			struct config_strv *dsv = d;

			dsv->n = ssv->n;
			dsv->v = ssv->n ? xcalloc(ssv->n, sizeof(*dsv->v)) : NULL;
			for (size_t i = 0; i < ssv->n; i++)
				dsv->v[i] = xstrdup(ssv->v[i]);
		} else if (k->type == CONFIG_MAP) {
			if (k->children)
				config_copy(k->children, dst, src);
		} else {
			memcpy(d, s, config_value_size(k->type));
		}
	}
}

/* The parser behind config_split_listen() and config_check_listen(): why is in msg. */
static int listen_parse(
	const char *s, char *host, size_t host_size, uint16_t *port, char *msg, size_t msg_size)
{
	const char *h, *p;
	size_t hlen;
	uint64_t v;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close) {
			snprintf(msg, msg_size, "'%.*s': missing ']' after the IPv6 address",
				CONFIG_QUOTE_MAX, s);
			return -EINVAL;
		}
		if (close[1] != ':') {
			snprintf(msg, msg_size, "'%.*s': expected ':port' after ']'",
				CONFIG_QUOTE_MAX, s);
			return -EINVAL;
		}
		h = s + 1;
		hlen = (size_t)(close - h);
		if (hlen == 0) {
			snprintf(msg, msg_size, "'%.*s': empty address in brackets",
				CONFIG_QUOTE_MAX, s);
			return -EINVAL;
		}
		p = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon) {
			snprintf(msg, msg_size,
				"'%.*s' is not host:port (e.g. 127.0.0.1:9731, [::]:9732, :9732)",
				CONFIG_QUOTE_MAX, s);
			return -EINVAL;
		}
		h = s;
		hlen = (size_t)(colon - s);
		if (memchr(h, ':', hlen)) {
			snprintf(msg, msg_size,
				"'%.*s': put an IPv6 address in brackets, e.g. [::1]:9732",
				CONFIG_QUOTE_MAX, s);
			return -EINVAL;
		}
		p = colon + 1;
	}
	if (memchr(h, '[', hlen) || memchr(h, ']', hlen) || memchr(h, ' ', hlen) ||
		memchr(h, '/', hlen)) {
		snprintf(msg, msg_size, "'%.*s': bad address", CONFIG_QUOTE_MAX, s);
		return -EINVAL;
	}
	if (!*p) {
		snprintf(msg, msg_size, "'%.*s': missing port", CONFIG_QUOTE_MAX, s);
		return -EINVAL;
	}
	int r = parse_u64(p, &v);
	if (r == -EINVAL) {
		snprintf(msg, msg_size, "'%.*s': bad port '%.*s'", CONFIG_QUOTE_MAX, s,
			CONFIG_QUOTE_MAX, p);
		return -EINVAL;
	}
	if (r < 0 || v > 65535) {
		snprintf(msg, msg_size, "'%.*s': port %.*s is out of range (0..65535)",
			CONFIG_QUOTE_MAX, s, CONFIG_QUOTE_MAX, p);
		return -EINVAL;
	}
	if (hlen >= host_size) {
		snprintf(msg, msg_size, "'%.*s': address too long", CONFIG_QUOTE_MAX, s);
		return -EINVAL;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)v;
	return 0;
}

int config_check_listen(const void *value, char *msg, size_t msg_size)
{
	const char *s = value;
	char host[256];
	uint16_t port;

	if (!s || !*s)
		return 0; /* no endpoint */
	return listen_parse(s, host, sizeof(host), &port, msg, msg_size);
}

int config_check_abs_path(const void *value, char *msg, size_t msg_size)
{
	const char *s = value;

	if (s && s[0] == '/')
		return 0;
	snprintf(msg, msg_size, "'%.*s' is not an absolute path", CONFIG_QUOTE_MAX, s ? s : "");
	return -EINVAL;
}

int config_split_listen(const char *listen, char *host, size_t host_size, uint16_t *port)
{
	char msg[256];

	if (!listen || !*listen || host_size == 0)
		return -EINVAL;
	return listen_parse(listen, host, host_size, port, msg, sizeof(msg));
}
