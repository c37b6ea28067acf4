/* Parsers of /proc/stat's "cpu" line, /proc/<pid>/stat and cgroup v2 cpu.stat: strict, over a
 * buffer and its length, no I/O. */
#include "common/procstat.h"

#include "common/util.h"

/* A field: 1 to 23 digits (longer is garbage, not a big number), no overflow. */
static int parse_field(const char *s, size_t len, uint64_t *ret)
{
	if (len == 0 || len >= 24)
		return -EINVAL;
	return parse_u64_span(s, len, ret);
}

uint64_t procstat_ticks_to_ns(uint64_t ticks)
{
	long hz = sysconf(_SC_CLK_TCK);

	return ticks * (NSEC_PER_SEC / (uint64_t)(hz > 0 ? hz : 100));
}

int procstat_parse_cpu(const char *buf, size_t len, struct cpu_times *ret)
{
	const char *nl = memchr(buf, '\n', len);
	/* user nice system idle iowait irq softirq steal [guest guest_nice] */
	uint64_t v[10] = { 0 };
	size_t n = 0;

	if (!nl || nl - buf < 4 || memcmp(buf, "cpu ", 4) != 0)
		return -EINVAL;
	const char *p = buf + 4;
	while (p < nl && *p == ' ')
		p++;
	/* Fields the kernel may append in the future (it added steal, guest and guest_nice over
	 * the years) must still be numbers, but are not used: a kernel update must not stop the
	 * accounting. */
	while (p < nl) {
		const char *start = p;
		uint64_t field;
		while (p < nl && *p != ' ')
			p++;
		int r = parse_field(start, (size_t)(p - start), &field);
		if (r < 0)
			return r;
		if (n < ARRAY_SIZE(v))
			v[n] = field;
		n++;
		if (p < nl)
			p++;
	}
	if (n < 4)
		return -EINVAL;
	*ret = (struct cpu_times){
		.user_ns = procstat_ticks_to_ns(v[0]),
		.nice_ns = procstat_ticks_to_ns(v[1]),
		.system_ns = procstat_ticks_to_ns(v[2]),
		.idle_ns = procstat_ticks_to_ns(v[3]),
		.iowait_ns = procstat_ticks_to_ns(v[4]),
		.irq_ns = procstat_ticks_to_ns(v[5]),
		.softirq_ns = procstat_ticks_to_ns(v[6]),
		.steal_ns = procstat_ticks_to_ns(v[7]),
		.n_fields = n,
	};
	return 0;
}

int procstat_parse_pid(const char *buf, size_t len, struct pid_stat *ret)
{
	const char *end = buf + len;
	const char *open = memchr(buf, '(', len);
	const char *close = memrchr(buf, ')', len);
	uint64_t utime = 0, stime = 0, start_ticks = 0;

	if (memchr(buf, '\0', len) || !open || !close || close < open)
		return -EINVAL;
	const char *p = close + 1;
	for (int field = 3; field <= 22; field++) {
		if (p == end || *p != ' ')
			return -EINVAL;
		const char *start = ++p;
		while (p < end && *p != ' ' && *p != '\n')
			p++;
		size_t n = (size_t)(p - start);
		int r = 0;
		if (field == 14)
			r = parse_field(start, n, &utime);
		else if (field == 15)
			r = parse_field(start, n, &stime);
		else if (field == 22)
			r = parse_field(start, n, &start_ticks);
		else if (n == 0)
			r = -EINVAL;
		if (r < 0)
			return r;
	}
	*ret = (struct pid_stat){
		.comm = open + 1,
		.comm_len = (size_t)(close - open - 1),
		.cpu_ticks = utime + stime,
		.start_ticks = start_ticks,
	};
	return 0;
}

int procstat_parse_cgroup_usage(const char *buf, size_t len, uint64_t *ret_ns)
{
	static const char key[] = "usage_usec ";
	const size_t key_len = sizeof(key) - 1;
	const char *end = buf + len;

	if (memchr(buf, '\0', len))
		return -EINVAL;
	for (const char *line = buf; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t n = (size_t)((nl ? nl : end) - line);
		if (n >= key_len && memcmp(line, key, key_len) == 0) {
			uint64_t usec;
			int r = parse_field(line + key_len, n - key_len, &usec);
			if (r < 0)
				return r;
			if (usec > UINT64_MAX / 1000)
				return -ERANGE;
			*ret_ns = usec * 1000;
			return 0;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return -EINVAL;
}
