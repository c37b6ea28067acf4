/* Small helpers every module uses: cleanup attributes, allocation that cannot fail, strict parsing
 * of numbers, durations and sizes, bounded file reads relative to directory fds, clocks. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		typeof(p) _tp = (p);                                                               \
		(p) = NULL;                                                                        \
		_tp;                                                                               \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_tf;                                                                               \
	})

/* Allocation failure aborts: a daemon this small has no better answer. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);

static inline bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static inline bool startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Strict unsigned decimal: digits only (no sign, space, or trailing garbage), no overflow.
 * -EINVAL for anything else, -ERANGE on overflow. */
int parse_u64(const char *s, uint64_t *ret);
/* The same over the len bytes at s (which need no NUL). */
int parse_u64_span(const char *s, size_t len, uint64_t *ret);
/* The same over a buffer that is the whole content of a sysfs-like file: exactly one value,
 * optionally followed by a single '\n'. Empty, truncated ("12\n3") or padded content is -EINVAL. */
int parse_u64_content(const char *buf, size_t len, uint64_t *ret);
/* "250ms", "2s", "1m", "1h" (also "1.5s"). A bare number or an unknown unit is -EINVAL. */
int parse_duration_ms(const char *s, uint64_t *ret_ms);
/* "4096", "512k", "5m", "1g" (binary multiples, also "5M", "5MiB"). */
int parse_size_bytes(const char *s, uint64_t *ret);
/* A finite, non-negative decimal ("12", "7.5"). */
int parse_double(const char *s, double *ret);

/* Read at most size-1 bytes of dirfd/name (never following a final symlink), NUL-terminated.
 * -EFBIG if the file holds more than that. */
int read_file_at(int dirfd, const char *name, char *buf, size_t size, size_t *ret_len);
/* pread from offset 0 into buf (size-1 bytes at most), NUL-terminated. */
int pread_all(int fd, char *buf, size_t size, size_t *ret_len);
/* The head of a long file whose first line is all that matters (/proc/stat on a big host): pread
 * from offset 0 until a '\n' has arrived, EOF, or size-1 bytes; NUL-terminated. Never -EFBIG,
 * and no further pread once the line is in (each one makes the kernel generate the file again). */
int pread_head(int fd, char *buf, size_t size, size_t *ret_len);
/* Read fd until EOF into *ret (NUL-terminated, caller frees; "" when nothing came), waiting at most
 * timeout_ms in all: -ETIMEDOUT past it, -EFBIG past max_bytes. For the status commands' replies.
 */
int read_all_deadline(int fd, size_t max_bytes, uint64_t timeout_ms, char **ret, size_t *ret_len);
/* Replace dirfd/name with content, atomically and durably: a temporary named after the pid (no
 * other process takes or removes it: ".NAME.PID.tmp"), written, fsynced, renamed over. */
int write_file_atomic_at(int dirfd, const char *name, const char *content);
/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, surrogates or code points
 * above U+10FFFF; an ASCII byte, NUL included, is 1), 0 if none starts there. Never reads past a
 * NUL. */
size_t utf8_valid_len(const char *s);
/* Write the whole buffer, retrying short writes and EINTR. */
int write_all(int fd, const void *buf, size_t len);

uint64_t now_monotonic_ns(void); /* stops while the machine is suspended */
/* CLOCK_BOOTTIME: CLOCK_MONOTONIC plus the time spent suspended, as energy counters see it */
uint64_t now_boottime_ns(void);
uint64_t now_realtime_ms(void);

#define NSEC_PER_SEC UINT64_C(1000000000)
#define NSEC_PER_MSEC UINT64_C(1000000)
#define USEC_PER_SEC UINT64_C(1000000)
