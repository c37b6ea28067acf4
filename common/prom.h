/* Prometheus text exposition format 0.0.4 writer: HELP/TYPE, label escaping, floats that
 * round-trip. Pure: renders into a strbuf. */
#pragma once

#include <stdint.h>

#include "common/strbuf.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_UNTYPED };

/* "# HELP name help\n# TYPE name type\n"; help is escaped (\\ and \n). */
void prom_family(struct strbuf *b, const char *name, enum prom_type type, const char *help);
/* "name{k="v",...} value\n". labels is { "k1", "v1", "k2", "v2", NULL } or NULL; values are
 * escaped (\\, \", \n) and each byte of invalid UTF-8 in them becomes U+FFFD; labels are
 * written in the order given (callers keep it stable). */
void prom_sample(struct strbuf *b, const char *name, const char *const *labels, double value);
/* Shortest decimal that parses back to exactly v; "NaN", "+Inf", "-Inf"; integers without ".0"
 * or exponent up to 2^53. out must hold 32 bytes. */
void prom_format_double(double v, char *out);
void prom_escape_label_value(struct strbuf *b, const char *v);
