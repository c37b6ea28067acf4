/* The shared parsers of CPU time files: /proc/stat's "cpu" line, /proc/<pid>/stat with hostile
 * comms, cgroup v2 cpu.stat; garbage, truncation, overflow, and a 2000-CPU /proc/stat. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <inttypes.h>

#include "common/procstat.h"
#include "common/strbuf.h"

static uint64_t tick_ns;

/* Name the input that failed: the assertion's line is the loop's. */
static void expect(int r, int want, const char *input)
{
	if (r != want)
		print_message("input: \"%s\"\n", input);
	assert_int_equal(r, want);
}

static int cpu_parse(const char *s, struct cpu_times *t)
{
	return procstat_parse_cpu(s, strlen(s), t);
}

static void test_cpu_line(void **state)
{
	struct cpu_times t;

	/* user nice system idle iowait irq softirq steal guest guest_nice */
	assert_int_equal(cpu_parse("cpu  100 5 50 1000 20 3 2 1 7 9\ncpu0 1\n", &t), 0);
	assert_int_equal(t.n_fields, 10);
	assert_int_equal(t.user_ns, 100 * tick_ns);
	assert_int_equal(t.nice_ns, 5 * tick_ns);
	assert_int_equal(t.system_ns, 50 * tick_ns);
	assert_int_equal(t.idle_ns, 1000 * tick_ns);
	assert_int_equal(t.iowait_ns, 20 * tick_ns);
	assert_int_equal(t.irq_ns, 3 * tick_ns);
	assert_int_equal(t.softirq_ns, 2 * tick_ns);
	assert_int_equal(t.steal_ns, 1 * tick_ns);
	/* guest (7) and guest_nice (9) are inside user and nice: not counted again */
	assert_int_equal(cpu_times_all_ns(&t), (100 + 5 + 50 + 1000 + 20 + 3 + 2 + 1) * tick_ns);
	/* steal (1) is time this system's CPUs did not run at all: not busy */
	assert_int_equal(cpu_times_busy_ns(&t), (100 + 5 + 50 + 3 + 2) * tick_ns);

	/* older kernels: 8 fields (2.6.11), 4 (2.4); what is missing is 0 */
	assert_int_equal(cpu_parse("cpu  1 2 3 4 5 6 7 8\n", &t), 0);
	assert_int_equal(t.n_fields, 8);
	assert_int_equal(cpu_times_all_ns(&t), 36 * tick_ns);
	assert_int_equal(cpu_parse("cpu  1 2 3 4\n", &t), 0);
	assert_int_equal(t.n_fields, 4);
	assert_int_equal(t.iowait_ns + t.irq_ns + t.softirq_ns + t.steal_ns, 0);
	assert_int_equal(cpu_times_busy_ns(&t), 6 * tick_ns);
	/* one space after "cpu" or several; a single trailing space */
	assert_int_equal(cpu_parse("cpu 1 2 3 4\n", &t), 0);
	assert_int_equal(cpu_parse("cpu     1 2 3 4 \n", &t), 0);
	assert_int_equal(t.n_fields, 4);
	/* the largest tick count parses; its ns wrap modulo 2^64 */
	assert_int_equal(cpu_parse("cpu  18446744073709551615 0 0 0\n", &t), 0);
	assert_int_equal(t.user_ns, UINT64_MAX * tick_ns);
}

static void test_cpu_line_bad(void **state)
{
	static const char *const einval[] = {
		"",
		"\n",
		"cpu\n",
		"cpu \n",
		"cpu  1 2 3\n",			 /* too few */
		"cpu  1 2 3 4 5 6 7 8 9 10 x\n", /* an appended field must still be a number */
		"cpu  1 2 3 4 5 6 7 8",		 /* truncated: no end of line */
		"cpu0 1 2 3 4 5 6 7 8\n",	 /* a single CPU's line */
		"intr 1 2 3 4\ncpu  1 2 3 4\n",	 /* not the first line */
		" cpu  1 2 3 4\n",
		"cpux 1 2 3 4\n",
		"CPU  1 2 3 4\n",
		"cpu  1 2  3 4\n", /* an empty field */
		"cpu  1 2 3 4  \n",
		"cpu  1 2 3 x\n",
		"cpu  1 2 3 4x\n",
		"cpu  1 2 3 -4\n",
		"cpu  1 2 3 +4\n",
		"cpu  1 2 3 4.0\n",
		"cpu  1\t2 3 4\n",
		"cpu  1 2 3 4\r\n",
		"cpu  1 2 3 000000000000000000000004\n", /* 24 characters: garbage */
		"garbage\n",
	};
	struct cpu_times t;

	for (size_t i = 0; i < ARRAY_SIZE(einval); i++) {
		expect(cpu_parse(einval[i], &t), -EINVAL, einval[i]);
	}
	assert_int_equal(cpu_parse("cpu  1 2 3 18446744073709551616\n", &t), -ERANGE);
	assert_int_equal(cpu_parse("cpu  99999999999999999999 2 3 4 5 6 7 8\n", &t), -ERANGE);
	/* 23 characters still parse */
	assert_int_equal(cpu_parse("cpu  1 2 3 00000000000000000000004\n", &t), 0);
	assert_int_equal(t.idle_ns, 4 * tick_ns);
	/* a NUL inside the line, and a line whose end lies beyond len */
	assert_int_equal(procstat_parse_cpu("cpu  1 2 3 4\0 5\n", 16, &t), -EINVAL);
	assert_int_equal(procstat_parse_cpu("cpu  1 2 3 4 5 6 7 8\n", 20, &t), -EINVAL);
	assert_int_equal(procstat_parse_cpu("cpu  1 2 3 4\n", 0, &t), -EINVAL);
}

/* A big host's /proc/stat: 2000 "cpuN" lines and a long intr line after the one that matters,
 * read the way both daemons read it (the head only, with pread_head). */
static void test_cpu_many_cpus(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("powerd-procstat");
	_cleanup_free_ char *path = xasprintf("%s/stat", dir);
	struct strbuf b = { 0 };
	struct cpu_times t;
	char buf[2048];
	size_t len;

	strbuf_puts(&b, "cpu  10 0 10 80 0 0 0 5 0 0\n");
	for (int i = 0; i < 2000; i++)
		strbuf_printf(&b, "cpu%d 1 0 1 8 0 0 0 0 0 0\n", i);
	strbuf_puts(&b, "intr 123456789");
	for (int i = 0; i < 5000; i++)
		strbuf_puts(&b, " 0");
	strbuf_puts(&b, "\nctxt 1\n");
	assert_true(b.len > 50000);
	/* the whole content in memory: only the first line is looked at */
	assert_int_equal(procstat_parse_cpu(b.buf, b.len, &t), 0);
	assert_int_equal(t.n_fields, 10);
	assert_int_equal(cpu_times_busy_ns(&t), 20 * tick_ns);
	tu_write(dir, "stat", b.buf);
	strbuf_done(&b);

	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread_head(fd, buf, sizeof(buf), &len), 0);
	assert_true(len > 0 && len < sizeof(buf));
	assert_int_equal(buf[len], '\0');
	assert_int_equal(procstat_parse_cpu(buf, len, &t), 0);
	assert_int_equal(cpu_times_all_ns(&t), 105 * tick_ns);
	/* the same file read again through the kept fd */
	assert_int_equal(pread_head(fd, buf, sizeof(buf), &len), 0);
	assert_int_equal(procstat_parse_cpu(buf, len, &t), 0);

	/* a first line longer than the buffer is cut, and so refused */
	struct strbuf l = { 0 };
	strbuf_puts(&l, "cpu  1 2 3 4");
	for (int i = 0; i < 2000; i++)
		strbuf_puts(&l, " 1");
	strbuf_puts(&l, "\n");
	tu_write(dir, "stat", l.buf);
	strbuf_done(&l);
	assert_int_equal(pread_head(fd, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(buf) - 1);
	assert_int_equal(procstat_parse_cpu(buf, len, &t), -EINVAL);
	tu_rm_rf(dir);
}

/* A /proc/<pid>/stat line as the kernel writes it: utime and stime are fields 14 and 15,
 * starttime 22. */
static char *pid_line(const char *comm, uint64_t ut, uint64_t st, uint64_t start)
{
	return xasprintf(
		"4242 (%s) S 1 4242 4242 0 -1 4194560 5000 0 12 0 %" PRIu64 " %" PRIu64
		" 0 0 20 0 4 0 %" PRIu64
		" 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 3 0 0 0 0 "
		"0\n",
		comm, ut, st, start);
}

static int pid_parse(const char *s, struct pid_stat *st)
{
	return procstat_parse_pid(s, strlen(s), st);
}

static void test_pid(void **state)
{
	static const char *const comms[] = {
		"qemu-system-x86",
		"we (i)rd) name",
		"qemu) S 1 2 3 4 5 6 7 8 9 10 11 12 (x", /* mimics the fields after it */
		")",
		"((",
		"a\nb", /* a newline is a legal comm character */
		"",
	};
	struct pid_stat st;

	for (size_t i = 0; i < ARRAY_SIZE(comms); i++) {
		_cleanup_free_ char *line = pid_line(comms[i], 150, 50, 123456);
		expect(pid_parse(line, &st), 0, line);
		assert_int_equal(st.comm_len, strlen(comms[i]));
		assert_memory_equal(st.comm, comms[i], st.comm_len);
		assert_int_equal(st.cpu_ticks, 200);
		assert_int_equal(st.start_ticks, 123456);
	}

	/* the line ends after starttime: later fields are not needed */
	assert_int_equal(pid_parse("1 (x) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99", &st), 0);
	assert_int_equal(st.cpu_ticks, 15);
	assert_int_equal(st.start_ticks, 99);
	assert_int_equal(pid_parse("1 (x) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99\n", &st), 0);
	/* the largest values parse (their sum wraps) */
	_cleanup_free_ char *big = pid_line("x", UINT64_MAX, 1, UINT64_MAX);
	assert_int_equal(pid_parse(big, &st), 0);
	assert_int_equal(st.cpu_ticks, 0);
	assert_int_equal(st.start_ticks, UINT64_MAX);
}

static void test_pid_bad(void **state)
{
	static const char *const einval[] = {
		"",
		"\n",
		"garbage\n",
		"200 (qemu S 1 2 3\n",					  /* no ')' */
		"200 qemu) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99\n", /* no '(' */
		"200 )qemu( S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99\n",
		"200 (qemu) S 1 2 3\n",					/* truncated before utime */
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0 7\n",		/* ... inside it */
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0\n", /* ... before starttime */
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 \n",
		"200 (qemu)S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99\n",
		"200 (qemu)  S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99\n", /* an empty field */
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0  7 8 0 0 20 0 1 0 99\n",
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0 7\n8 0 0 20 0 1 0 99\n", /* a line break */
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0 x 8 0 0 20 0 1 0 99\n",
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0 7 -8 0 0 20 0 1 0 99\n",
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 9x\n",
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 +9\n",
		"200 (qemu) S 1 1 1 0 -1 0 0 0 0 0 000000000000000000000007 8 0 0 20 0 1 0 9\n",
	};
	struct pid_stat st;

	for (size_t i = 0; i < ARRAY_SIZE(einval); i++) {
		expect(pid_parse(einval[i], &st), -EINVAL, einval[i]);
	}
	assert_int_equal(
		pid_parse("1 (x) S 1 1 1 0 -1 0 0 0 0 0 18446744073709551616 8 0 0 20 0 1 0 9\n",
			&st),
		-ERANGE);
	assert_int_equal(
		pid_parse("1 (x) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99999999999999999999\n",
			&st),
		-ERANGE);
	/* a NUL anywhere, and a line whose needed fields lie beyond len */
	static const char nul[] = "1 (x\0y) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99\n";
	assert_int_equal(procstat_parse_pid(nul, sizeof(nul) - 1, &st), -EINVAL);
	static const char cut[] = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99\n";
	assert_int_equal(procstat_parse_pid(cut, 20, &st), -EINVAL);
	assert_int_equal(procstat_parse_pid(cut, sizeof(cut) - 1, &st), 0);
}

static int usage_parse(const char *s, uint64_t *ns)
{
	return procstat_parse_cgroup_usage(s, strlen(s), ns);
}

static void test_cgroup_usage(void **state)
{
	uint64_t ns;

	assert_int_equal(usage_parse("usage_usec 5000\nuser_usec 1\nsystem_usec 2\n", &ns), 0);
	assert_int_equal(ns, 5000 * 1000);
	/* not the first line; the last line without its '\n'; empty lines on the way */
	assert_int_equal(usage_parse("user_usec 1\n\nusage_usec 42\nsystem_usec 2\n", &ns), 0);
	assert_int_equal(ns, 42000);
	assert_int_equal(usage_parse("user_usec 1\nusage_usec 7", &ns), 0);
	assert_int_equal(ns, 7000);
	assert_int_equal(usage_parse("usage_usec 0\n", &ns), 0);
	assert_int_equal(ns, 0);
	/* the largest usec whose ns fit */
	assert_int_equal(usage_parse("usage_usec 18446744073709551\n", &ns), 0);
	assert_int_equal(ns, UINT64_C(18446744073709551000));

	static const char *const einval[] = {
		"",
		"\n",
		"user_usec 12\n",
		"usage_usec\n",
		"usage_usec \n",
		"usage_usec \nusage_usec 5\n", /* the first usage_usec line decides */
		"usage_usec 12x\n",
		"usage_usec -1\n",
		"usage_usec +1\n",
		"usage_usec  1\n",
		"usage_usec 1 \n",
		"usage_usec 1\r\n",
		" usage_usec 1\n",
		"usage_usecs 1\n",
		"Usage_usec 1\n",
		"usage_usec 000000000000000000000001\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(einval); i++) {
		expect(usage_parse(einval[i], &ns), -EINVAL, einval[i]);
	}
	assert_int_equal(usage_parse("usage_usec 18446744073709552\n", &ns), -ERANGE);
	assert_int_equal(usage_parse("usage_usec 99999999999999999999\n", &ns), -ERANGE);
	static const char nul[] = "user_usec 1\0\nusage_usec 5\n";
	assert_int_equal(procstat_parse_cgroup_usage(nul, sizeof(nul) - 1, &ns), -EINVAL);
	assert_int_equal(procstat_parse_cgroup_usage("usage_usec 55\n", 12, &ns), 0);
	assert_int_equal(ns, 5000);
}

static void test_ticks(void **state)
{
	assert_int_equal(procstat_ticks_to_ns(0), 0);
	assert_int_equal(procstat_ticks_to_ns(1), tick_ns);
	assert_int_equal(procstat_ticks_to_ns(1000), 1000 * tick_ns);
}

static int setup(void **state)
{
	tick_ns = NSEC_PER_SEC / (uint64_t)sysconf(_SC_CLK_TCK);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_line),
		cmocka_unit_test(test_cpu_line_bad),
		cmocka_unit_test(test_cpu_many_cpus),
		cmocka_unit_test(test_pid),
		cmocka_unit_test(test_pid_bad),
		cmocka_unit_test(test_cgroup_usage),
		cmocka_unit_test(test_ticks),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
