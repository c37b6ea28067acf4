/* libFuzzer target: the energy channel's record parser (common/channel_record.c), fed by a host
 * through a virtio-serial port, and its round trips:
 *   - the input as a line, as the guest's reader hands it over;
 *   - the input as the body of a line that gets its correct " crc=" appended, so that mutations
 *     reach the token parser instead of stopping at the checksum; a record parsed this way must
 *     format again (it is never longer normalised) and parse back to the same record;
 *   - a record built from the input's bytes: what channel_record_format writes must parse back
 *     to the same record. */
#include <zlib.h>

#include "common/channel_record.h"
#include "common/util.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static bool records_equal(const struct channel_record *a, const struct channel_record *b)
{
	if (a->seq != b->seq || a->interval_ms != b->interval_ms || a->time_ms != b->time_ms ||
		a->is_estimated != b->is_estimated || !streq(a->instance, b->instance) ||
		a->n_zones != b->n_zones)
		return false;
	for (size_t i = 0; i < a->n_zones; i++)
		if (!streq(a->zones[i].name, b->zones[i].name) ||
			a->zones[i].energy_uj != b->zones[i].energy_uj)
			return false;
	return true;
}

/* r formats to a line of the contract's shape that parses back to r. */
static void check_format_parse(const struct channel_record *r, bool must_fit)
{
	char buf[CHANNEL_RECORD_MAX + 1];
	struct channel_record back;
	size_t n = channel_record_format(r, buf, sizeof(buf));

	if (n == 0) {
		if (must_fit)
			abort();
		return;
	}
	if (n > CHANNEL_RECORD_MAX || buf[n - 1] != '\n' || strlen(buf) != n)
		abort();
	if (channel_record_parse(buf, n - 1, &back) != 0 || !records_equal(r, &back))
		abort();
}

static void parse_line(const char *line, size_t len)
{
	struct channel_record r;
	int e = channel_record_parse(line, len, &r);

	if (e == 0)
		check_format_parse(&r, true);
	else if (e != -EINVAL && e != -EPROTONOSUPPORT)
		abort();
}

static uint64_t take_u64(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;

	for (int i = 0; i < 8 && *p < end; i++)
		v = v << 8 | *(*p)++;
	return v;
}

/* Fixed fields from the first bytes, then zone names separated by '\n', each name's energy from
 * its length and first bytes; package-0 first when the first byte is even. */
static void build_record(const uint8_t *data, size_t size, struct channel_record *r)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = data, *end = data + size;

	*r = (struct channel_record){ 0 };
	r->seq = take_u64(&p, end);
	r->interval_ms = take_u64(&p, end);
	r->time_ms = take_u64(&p, end);
	r->is_estimated = size > 0 && (data[0] & 2);
	for (size_t i = 0; i < CHANNEL_INSTANCE_LEN; i++)
		r->instance[i] = hex[(i < size ? data[i] : i) & 15];
	if (size == 0 || !(data[0] & 1))
		snprintf(r->zones[r->n_zones++].name, sizeof(r->zones[0].name), "%s",
			CHANNEL_ZONE_PACKAGE);
	while (p < end && r->n_zones < CHANNEL_ZONES_MAX) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		snprintf(r->zones[r->n_zones].name, sizeof(r->zones[0].name), "%.*s",
			(int)MIN(len, (size_t)CHANNEL_ZONE_NAME_MAX), (const char *)p);
		r->zones[r->n_zones].energy_uj = len * UINT64_C(1000003) + (len ? p[0] : 0);
		r->n_zones++;
		p += len + (nl ? 1 : 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct channel_record r;

	parse_line(s, size && s[size - 1] == '\n' ? size - 1 : size);

	if (size < CHANNEL_RECORD_MAX) {
		char line[CHANNEL_RECORD_MAX + 32];
		uLong crc = crc32(crc32(0L, Z_NULL, 0), data, (uInt)size);

		memcpy(line, data, size);
		int n = snprintf(
			line + size, sizeof(line) - size, " crc=%08lx", crc & 0xffffffffUL);
		parse_line(line, size + (size_t)n);
	}

	build_record(data, size, &r);
	check_format_parse(&r, false);
	return 0;
}
