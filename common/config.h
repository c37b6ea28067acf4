/* YAML configuration loading on libyaml, driven by a schema of keys. Both daemons describe their
 * config as a table of struct config_key; this module parses, type-checks and range-checks it,
 * and reports every problem as "FILE:LINE:COLUMN: KEY: what is wrong". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_type {
	CONFIG_STRING,	    /* char * (heap; config_free() frees it); scalar */
	CONFIG_DURATION_MS, /* uint64_t ms; "250ms", "2s", "1m"; bounded by min/max (ms) */
	CONFIG_SIZE,	    /* uint64_t bytes; "5m", "4096"; bounded by min/max (bytes) */
	CONFIG_U64,	    /* uint64_t; plain decimal; bounded by min/max */
	CONFIG_DOUBLE,	    /* double; bounded by dmin/dmax */
	CONFIG_BOOL,	    /* bool; true/false/yes/no/on/off */
	CONFIG_ENUM,	    /* int index into enum_names */
	CONFIG_STRV,	    /* struct config_strv; a YAML sequence of scalars (flow or block) */
	CONFIG_MAP,	    /* nested mapping described by children; offset unused */
};

struct config_strv {
	char **v;
	size_t n;
};

struct config_key {
	const char *name; /* NULL terminates a table */
	enum config_type type;
	size_t offset;		       /* of the value inside the target struct */
	uint64_t min, max;	       /* integer bounds when max != 0 */
	double dmin, dmax;	       /* double bounds when dmax != 0 */
	const char *const *enum_names; /* NULL-terminated, for CONFIG_ENUM */
	/* For CONFIG_MAP: the nested keys; their offsets are into the same target struct. */
	const struct config_key *children;
	/* Optional extra check of a parsed value (strings: listen addresses, paths, globs).
	 * Returns 0, or a negative errno with a message (no key or position, those are added).
	 * value is the string itself (const char *) for CONFIG_STRING, else a pointer to the parsed
	 * value: const uint64_t *, const double *, const bool *, const int * (enum index) or
	 * const struct config_strv *. */
	int (*check)(const void *value, char *msg, size_t msg_size);
};

/* Load path into target, which the caller has filled with defaults (strings on the heap).
 * On error target may be half-updated: load into a scratch copy and keep the old one on failure.
 * -ENOENT: the file does not exist (err says so; the caller decides whether that is fine).
 * -EINVAL: malformed YAML, unknown or duplicate key, wrong type, bad or out-of-range value.
 * Files over 1 MiB are refused. An empty file or a document of just "---" means "no keys". */
int config_load_file(const char *path, const struct config_key *schema, void *target, char *err,
	size_t err_size);
/* The same from memory; name stands for the file name in messages. */
int config_load_buffer(const char *name, const char *text, size_t len,
	const struct config_key *schema, void *target, char *err, size_t err_size);
/* Free every string and string list the schema owns in target (not target itself). */
void config_free(const struct config_key *schema, void *target);
/* Deep copy of src into dst by the schema (dst's previous content is not freed). */
void config_copy(const struct config_key *schema, void *dst, const void *src);

/* Checks usable as config_key.check. */
int config_check_listen(
	const void *value, char *msg, size_t msg_size); /* "", "host:port", "[v6]:port", ":port" */
int config_check_abs_path(const void *value, char *msg, size_t msg_size);

/* Split "127.0.0.1:9731", "[::]:9732", ":9732" (any address) into host and port.
 * host is "" for ":port". -EINVAL if malformed. */
int config_split_listen(const char *listen, char *host, size_t host_size, uint16_t *port);
