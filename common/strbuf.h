/* A growable byte buffer for rendering text (metrics, tree files, status lines). */
#pragma once

#include <stdarg.h>
#include <stddef.h>

#include "common/util.h"

struct strbuf {
	char *buf; /* always NUL-terminated once anything was added */
	size_t len;
	size_t cap;
};

void strbuf_add(struct strbuf *b, const char *s, size_t len);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_putc(struct strbuf *b, char c);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) _printf_(2, 3);
void strbuf_reset(struct strbuf *b); /* len = 0, keeps the allocation */
void strbuf_done(struct strbuf *b);  /* frees the allocation */
