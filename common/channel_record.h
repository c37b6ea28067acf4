/* The energy channel's record (DESIGN.md §4, docs/formats.md): one self-contained text
 * line per interval, written by powerd-host into a domain's virtio-serial port and read by
 * powerd-guest. Pure formatting and parsing, no I/O.
 *
 *   powerd-energy/1 seq=<u64> instance=<32 hex> interval_ms=<u64> time_ms=<u64> estimated=<0|1>
 *     z.<zone>=<u64 uJ> [z.<zone>=<u64>...] crc=<8 hex>\n
 *
 * Tokens are separated by exactly one space; the version tag comes first and crc last, the keys
 * between in any order. crc is zlib's crc32 of every byte before " crc=". Unknown keys of version 1
 * are ignored; another version tag is -EPROTONOSUPPORT; anything else malformed is -EINVAL. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHANNEL_RECORD_TAG "powerd-energy/1"
/* One record, its final '\n' included, is never longer than this. */
#define CHANNEL_RECORD_MAX 1024
#define CHANNEL_ZONES_MAX 16
#define CHANNEL_ZONE_NAME_MAX 63
#define CHANNEL_INSTANCE_LEN 32
/* The zone every record carries. */
#define CHANNEL_ZONE_PACKAGE "package-0"

struct channel_record {
	uint64_t seq, interval_ms, time_ms;
	bool is_estimated;
	char instance[CHANNEL_INSTANCE_LEN + 1]; /* lowercase hex */
	size_t n_zones;
	struct {
		char name[CHANNEL_ZONE_NAME_MAX + 1];
		uint64_t energy_uj; /* cumulative, not wrapped */
	} zones[CHANNEL_ZONES_MAX];
};

/* Write r as one line, its '\n' included, NUL-terminated, into buf. Returns the line's length
 * (without the NUL), or 0 if it does not fit in size, would exceed CHANNEL_RECORD_MAX, or r is not
 * a record the parser would accept (bad instance or zone names, no package-0 zone, duplicate
 * zones). */
size_t channel_record_format(const struct channel_record *r, char *buf, size_t size);

/* Parse the len bytes at line (the final '\n' excluded; no NUL needed) into ret. 0, or
 * -EPROTONOSUPPORT for a record of another version, -EINVAL for anything malformed (ret is then
 * unspecified). */
int channel_record_parse(const char *line, size_t len, struct channel_record *ret);

/* The energy of the named zone, or -ENOENT. */
int channel_record_zone(const struct channel_record *r, const char *name, uint64_t *ret_uj);

/* Is s (len bytes) a valid zone name: 1..63 bytes of [A-Za-z0-9_.-]? */
bool channel_zone_name_is_valid(const char *s, size_t len);
/* Is s (len bytes) 32 lowercase hex digits? */
bool channel_instance_is_valid(const char *s, size_t len);
