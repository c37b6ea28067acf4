/* The energy channel's record: formatting and strict parsing (see channel_record.h). */
#include "common/channel_record.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "common/util.h"

#define TAG_PREFIX "powerd-energy/"
#define CRC_KEY " crc="
#define CRC_HEX 8
/* " crc=" and its 8 digits. */
#define CRC_SUFFIX_LEN (sizeof(CRC_KEY) - 1 + CRC_HEX)

enum {
	SEEN_SEQ = 1 << 0,
	SEEN_INSTANCE = 1 << 1,
	SEEN_INTERVAL = 1 << 2,
	SEEN_TIME = 1 << 3,
	SEEN_ESTIMATED = 1 << 4,
	SEEN_REQUIRED = (1 << 5) - 1,
};

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool channel_zone_name_is_valid(const char *s, size_t len)
{
	if (len == 0 || len > CHANNEL_ZONE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(s[i]))
			return false;
	return true;
}

bool channel_instance_is_valid(const char *s, size_t len)
{
	if (len != CHANNEL_INSTANCE_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_lower_hex(s[i]))
			return false;
	return true;
}

int channel_record_zone(const struct channel_record *r, const char *name, uint64_t *ret_uj)
{
	for (size_t i = 0; i < r->n_zones && i < CHANNEL_ZONES_MAX; i++)
		if (streq(r->zones[i].name, name)) {
			*ret_uj = r->zones[i].energy_uj;
			return 0;
		}
	return -ENOENT;
}

static bool record_is_valid(const struct channel_record *r)
{
	bool has_package = false;

	if (r->n_zones == 0 || r->n_zones > CHANNEL_ZONES_MAX)
		return false;
	if (!channel_instance_is_valid(r->instance, strnlen(r->instance, sizeof(r->instance))))
		return false;
	for (size_t i = 0; i < r->n_zones; i++) {
		const char *name = r->zones[i].name;
		if (!channel_zone_name_is_valid(name, strnlen(name, sizeof(r->zones[i].name))))
			return false;
		for (size_t j = 0; j < i; j++)
			if (streq(r->zones[j].name, name))
				return false;
		has_package |= streq(name, CHANNEL_ZONE_PACKAGE);
	}
	return has_package;
}

/* Append to a fixed buffer; *pos goes past size once anything did not fit. */
_printf_(4, 5) static void append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
	va_list ap;

	if (*pos >= size)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *pos, size - *pos, fmt, ap);
	va_end(ap);
	*pos = n < 0 ? size : *pos + (size_t)n;
}

size_t channel_record_format(const struct channel_record *r, char *buf, size_t size)
{
	char line[CHANNEL_RECORD_MAX + 1];
	size_t pos = 0;

	if (!record_is_valid(r))
		return 0;
	append(line, sizeof(line), &pos,
		CHANNEL_RECORD_TAG " seq=%" PRIu64 " instance=%s interval_ms=%" PRIu64
				   " time_ms=%" PRIu64 " estimated=%d",
		r->seq, r->instance, r->interval_ms, r->time_ms, r->is_estimated ? 1 : 0);
	for (size_t i = 0; i < r->n_zones; i++)
		append(line, sizeof(line), &pos, " z.%s=%" PRIu64, r->zones[i].name,
			r->zones[i].energy_uj);
	if (pos >= sizeof(line))
		return 0;
	uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)line, (uInt)pos);
	append(line, sizeof(line), &pos, CRC_KEY "%08lx\n", crc & 0xffffffffUL);
	if (pos > CHANNEL_RECORD_MAX || pos + 1 > size)
		return 0;
	memcpy(buf, line, pos + 1);
	return pos;
}

/* The first token: this version's tag, another version's (-EPROTONOSUPPORT), or junk. */
static int parse_tag(const char *line, size_t len, size_t *ret_len)
{
	const char *sp = memchr(line, ' ', len);
	size_t tag_len = sp ? (size_t)(sp - line) : len;
	size_t prefix_len = strlen(TAG_PREFIX);

	if (tag_len == strlen(CHANNEL_RECORD_TAG) &&
		memcmp(line, CHANNEL_RECORD_TAG, tag_len) == 0) {
		*ret_len = tag_len;
		return 0;
	}
	if (tag_len <= prefix_len || memcmp(line, TAG_PREFIX, prefix_len) != 0)
		return -EINVAL;
	for (size_t i = prefix_len; i < tag_len; i++)
		if (line[i] < '0' || line[i] > '9')
			return -EINVAL;
	return -EPROTONOSUPPORT;
}

static int parse_crc(const char *line, size_t len)
{
	uint32_t want = 0;

	if (len < CRC_SUFFIX_LEN)
		return -EINVAL;
	const char *suffix = line + len - CRC_SUFFIX_LEN;
	if (memcmp(suffix, CRC_KEY, strlen(CRC_KEY)) != 0)
		return -EINVAL;
	for (const char *p = suffix + strlen(CRC_KEY); p < line + len; p++) {
		if (!is_lower_hex(*p))
			return -EINVAL;
		want = want << 4 | (uint32_t)(*p <= '9' ? *p - '0' : *p - 'a' + 10);
	}
	uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)line, (uInt)(suffix - line));
	return (crc & 0xffffffffUL) == want ? 0 : -EINVAL;
}

static int parse_u64_strict(const char *s, size_t len, uint64_t *ret)
{
	return parse_u64_span(s, len, ret) < 0 ? -EINVAL : 0;
}

static bool key_is(const char *key, size_t key_len, const char *name)
{
	return key_len == strlen(name) && memcmp(key, name, key_len) == 0;
}

static int parse_zone(const char *name, size_t name_len, const char *val, size_t val_len,
	struct channel_record *r)
{
	uint64_t v;

	if (!channel_zone_name_is_valid(name, name_len))
		return -EINVAL;
	for (size_t i = 0; i < r->n_zones; i++)
		if (key_is(name, name_len, r->zones[i].name))
			return -EINVAL;
	if (r->n_zones >= CHANNEL_ZONES_MAX)
		return -EINVAL;
	if (parse_u64_strict(val, val_len, &v) < 0)
		return -EINVAL;
	memcpy(r->zones[r->n_zones].name, name, name_len);
	r->zones[r->n_zones].name[name_len] = '\0';
	r->zones[r->n_zones].energy_uj = v;
	r->n_zones++;
	return 0;
}

/* Mark bit in *seen, failing on a duplicate key. */
static int see(unsigned *seen, unsigned bit)
{
	if (*seen & bit)
		return -EINVAL;
	*seen |= bit;
	return 0;
}

static int parse_once(unsigned *seen, unsigned bit, const char *val, size_t len, uint64_t *ret)
{
	if (see(seen, bit) < 0)
		return -EINVAL;
	return parse_u64_strict(val, len, ret);
}

static int parse_token(const char *tok, size_t len, struct channel_record *r, unsigned *seen)
{
	const char *eq = memchr(tok, '=', len);
	if (!eq || eq == tok || eq == tok + len - 1)
		return -EINVAL;
	size_t key_len = (size_t)(eq - tok);
	const char *val = eq + 1;
	size_t val_len = len - key_len - 1;

	for (size_t i = 0; i < key_len; i++)
		if (!is_name_char(tok[i]))
			return -EINVAL;
	if (key_len > 2 && memcmp(tok, "z.", 2) == 0)
		return parse_zone(tok + 2, key_len - 2, val, val_len, r);
	if (key_is(tok, key_len, "seq"))
		return parse_once(seen, SEEN_SEQ, val, val_len, &r->seq);
	if (key_is(tok, key_len, "interval_ms"))
		return parse_once(seen, SEEN_INTERVAL, val, val_len, &r->interval_ms);
	if (key_is(tok, key_len, "time_ms"))
		return parse_once(seen, SEEN_TIME, val, val_len, &r->time_ms);
	if (key_is(tok, key_len, "instance")) {
		if (see(seen, SEEN_INSTANCE) < 0 || !channel_instance_is_valid(val, val_len))
			return -EINVAL;
		memcpy(r->instance, val, val_len);
		r->instance[val_len] = '\0';
		return 0;
	}
	if (key_is(tok, key_len, "estimated")) {
		if (see(seen, SEEN_ESTIMATED) < 0 || val_len != 1 || (*val != '0' && *val != '1'))
			return -EINVAL;
		r->is_estimated = *val == '1';
		return 0;
	}
	/* crc belongs at the end only; "z." alone names no zone. */
	if (key_is(tok, key_len, "crc") || key_is(tok, key_len, "z."))
		return -EINVAL;
	return 0; /* an unknown key of this version: ignored */
}

int channel_record_parse(const char *line, size_t len, struct channel_record *ret)
{
	size_t tag_len;
	unsigned seen = 0;
	uint64_t package;
	int r;

	r = parse_tag(line, len, &tag_len);
	if (r < 0)
		return r;
	if (len >= CHANNEL_RECORD_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (line[i] < 0x20 || line[i] > 0x7e)
			return -EINVAL;
	r = parse_crc(line, len);
	if (r < 0)
		return r;

	memset(ret, 0, sizeof(*ret));
	const char *end = line + len - CRC_SUFFIX_LEN;
	for (const char *p = line + tag_len; p < end;) {
		/* p is at the space before a token: exactly one, and the token is not empty. */
		const char *tok = p + 1;
		const char *next = memchr(tok, ' ', (size_t)(end - tok));
		if (!next)
			next = end;
		if (next == tok)
			return -EINVAL;
		r = parse_token(tok, (size_t)(next - tok), ret, &seen);
		if (r < 0)
			return r;
		p = next;
	}
	if (seen != SEEN_REQUIRED || channel_record_zone(ret, CHANNEL_ZONE_PACKAGE, &package) < 0)
		return -EINVAL;
	return 0;
}
