/* Small helpers: allocation, strict parsing, bounded reads, clocks. */
#include "common/util.h"

#include <poll.h>

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>

static void oom(void)
{
	fputs("<2>out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		oom();
	return xrealloc(p, n * size);
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		oom();
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		oom();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	int r = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (r < 0)
		oom();
	return p;
}

int parse_u64_span(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

int parse_u64(const char *s, uint64_t *ret)
{
	return parse_u64_span(s, strlen(s), ret);
}

int parse_u64_content(const char *buf, size_t len, uint64_t *ret)
{
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	return parse_u64_span(buf, len, ret);
}

int parse_double(const char *s, double *ret)
{
	char *end;

	if (!*s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end || !isfinite(v) || v < 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Split "1.5s" into 1.5 and "s". */
static int parse_number_unit(const char *s, double *ret_v, const char **ret_unit)
{
	char *end;

	if (!*s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno == ERANGE || !isfinite(v) || v < 0 || end == s)
		return -EINVAL;
	*ret_v = v;
	*ret_unit = end;
	return 0;
}

int parse_duration_ms(const char *s, uint64_t *ret_ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	const char *unit;
	double v;

	if (parse_number_unit(s, &v, &unit) < 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (!streq(unit, units[i].unit))
			continue;
		double ms = v * units[i].ms;
		if (ms > (double)UINT64_MAX / 2 || ms != floor(ms))
			return -ERANGE;
		*ret_ms = (uint64_t)ms;
		return 0;
	}
	return -EINVAL;
}

int parse_size_bytes(const char *s, uint64_t *ret)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{ "", 1 },
		{ "b", 1 },
		{ "B", 1 },
		{ "k", 1ull << 10 },
		{ "K", 1ull << 10 },
		{ "KiB", 1ull << 10 },
		{ "m", 1ull << 20 },
		{ "M", 1ull << 20 },
		{ "MiB", 1ull << 20 },
		{ "g", 1ull << 30 },
		{ "G", 1ull << 30 },
		{ "GiB", 1ull << 30 },
	};
	const char *unit;
	double v;

	if (parse_number_unit(s, &v, &unit) < 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (!streq(unit, units[i].unit))
			continue;
		double b = v * (double)units[i].mult;
		if (b >= 18446744073709551616.0 || b != floor(b))
			return -ERANGE;
		*ret = (uint64_t)b;
		return 0;
	}
	return -EINVAL;
}

int pread_all(int fd, char *buf, size_t size, size_t *ret_len)
{
	size_t len = 0;

	if (size == 0)
		return -EINVAL;
	for (;;) {
		ssize_t n = pread(fd, buf + len, size - len, (off_t)len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == size)
			return -EFBIG;
	}
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	return 0;
}

int pread_head(int fd, char *buf, size_t size, size_t *ret_len)
{
	size_t len = 0;

	if (size == 0)
		return -EINVAL;
	while (len < size - 1 && !memchr(buf, '\n', len)) {
		ssize_t n = pread(fd, buf + len, size - 1 - len, (off_t)len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	return 0;
}

int read_file_at(int dirfd, const char *name, char *buf, size_t size, size_t *ret_len)
{
	_cleanup_close_ int fd =
		openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	return pread_all(fd, buf, size, ret_len);
}

int read_all_deadline(int fd, size_t max_bytes, uint64_t timeout_ms, char **ret, size_t *ret_len)
{
	uint64_t deadline = now_monotonic_ns() + timeout_ms * NSEC_PER_MSEC;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - now_monotonic_ns()) / (int64_t)NSEC_PER_MSEC;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return -ETIMEDOUT;
		if (len + 65536 + 1 > cap) {
			cap = MAX(cap * 2, (size_t)65536 * 2);
			buf = xrealloc(buf, cap);
		}
		ssize_t n = read(fd, buf + len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max_bytes)
			return -EFBIG;
	}
	if (!buf)
		buf = xstrdup("");
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const char *content)
{
	_cleanup_free_ char *tmp = xasprintf(".%s.%d.tmp", name, (int)getpid());

	(void)unlinkat(dirfd, tmp, 0);
	_cleanup_close_ int fd =
		openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, content, strlen(content));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		(void)unlinkat(dirfd, tmp, 0);
	return r;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

uint64_t now_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t now_boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t now_realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / NSEC_PER_MSEC;
}

size_t utf8_valid_len(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}
