/* Strict parsing helpers of common/util.c. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

static void test_parse_u64(void **state)
{
	uint64_t v;

	assert_int_equal(parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(parse_u64("", &v), -EINVAL);
	assert_int_equal(parse_u64("-1", &v), -EINVAL);
	assert_int_equal(parse_u64("+1", &v), -EINVAL);
	assert_int_equal(parse_u64(" 1", &v), -EINVAL);
	assert_int_equal(parse_u64("1x", &v), -EINVAL);
}

static void test_parse_content(void **state)
{
	uint64_t v;

	assert_int_equal(parse_u64_content("123\n", 4, &v), 0);
	assert_int_equal(v, 123);
	assert_int_equal(parse_u64_content("123", 3, &v), 0);
	assert_int_equal(parse_u64_content("\n", 1, &v), -EINVAL);
	assert_int_equal(parse_u64_content("", 0, &v), -EINVAL);
	assert_int_equal(parse_u64_content("12\n3", 4, &v), -EINVAL);
	assert_int_equal(parse_u64_content("12\n\n", 4, &v), -EINVAL);
	assert_int_equal(parse_u64_content("1 2\n", 4, &v), -EINVAL);
}

static void test_parse_span(void **state)
{
	uint64_t v;

	assert_int_equal(parse_u64_span("123456", 3, &v), 0);
	assert_int_equal(v, 123);
	assert_int_equal(parse_u64_span("18446744073709551615x", 20, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64_span("18446744073709551616", 20, &v), -ERANGE);
	assert_int_equal(parse_u64_span("1", 0, &v), -EINVAL);
	assert_int_equal(parse_u64_span("1\0", 2, &v), -EINVAL);
	assert_int_equal(parse_u64_span("1 ", 2, &v), -EINVAL);
}

/* The head of a file: stops at the first line or the buffer's end, never -EFBIG. */
static void test_pread_head(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("powerd-util");
	_cleanup_free_ char *path = xasprintf("%s/f", dir);
	char buf[8];
	size_t len;

	tu_write(dir, "f", "");
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread_head(fd, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	tu_write(dir, "f", "ab\ncd\n");
	assert_int_equal(pread_head(fd, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal(buf, "ab\ncd\n");
	tu_write(dir, "f", "0123456789\n");
	assert_int_equal(pread_head(fd, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(buf) - 1);
	assert_string_equal(buf, "0123456");
	assert_int_equal(pread_head(fd, buf, 0, &len), -EINVAL);
	assert_int_equal(pread_head(-1, buf, sizeof(buf), &len), -EBADF);
	tu_rm_rf(dir);
}

static void test_parse_duration(void **state)
{
	uint64_t ms;

	assert_int_equal(parse_duration_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(parse_duration_ms("2s", &ms), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(parse_duration_ms("1.5s", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(parse_duration_ms("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(parse_duration_ms("2x", &ms), -EINVAL);
	assert_int_equal(parse_duration_ms("2", &ms), -EINVAL);
	assert_int_equal(parse_duration_ms("-1s", &ms), -EINVAL);
	assert_int_equal(parse_duration_ms("s", &ms), -EINVAL);
	assert_int_equal(parse_duration_ms("0.5ms", &ms), -ERANGE);
}

static void test_parse_size(void **state)
{
	uint64_t b;

	assert_int_equal(parse_size_bytes("5m", &b), 0);
	assert_int_equal(b, 5 << 20);
	assert_int_equal(parse_size_bytes("4096", &b), 0);
	assert_int_equal(b, 4096);
	assert_int_equal(parse_size_bytes("1GiB", &b), 0);
	assert_int_equal(b, 1 << 30);
	assert_int_equal(parse_size_bytes("5q", &b), -EINVAL);
	assert_int_equal(parse_size_bytes("", &b), -EINVAL);
}

/* Issue 10 #8: the boot-time clock counts suspend, so it is never behind the monotonic one and
 * moves with it while the machine runs. */
static void test_boottime(void **state)
{
	uint64_t m0 = now_monotonic_ns(), b0 = now_boottime_ns();
	struct timespec ts;

	assert_true(b0 >= m0);
	clock_gettime(CLOCK_BOOTTIME, &ts);
	uint64_t direct = (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
	uint64_t b1 = now_boottime_ns(), m1 = now_monotonic_ns();
	assert_true(direct >= b0 && b1 >= direct);
	/* no suspend can happen in these microseconds: both clocks advanced alike (10 ms slack) */
	int64_t skew = (int64_t)(b1 - b0) - (int64_t)(m1 - m0);
	assert_true(skew > -(int64_t)(10 * NSEC_PER_MSEC) && skew < (int64_t)(10 * NSEC_PER_MSEC));
}

/* A reply read to EOF, bounded in size and in time. */
static void test_read_all_deadline(void **state)
{
	int sv[2];
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write_all(sv[1], "hello\n", 6), 0);
	close(sv[1]);
	assert_int_equal(read_all_deadline(sv[0], 64, 1000, &buf, &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal(buf, "hello\n");
	free(buf);
	close(sv[0]);

	/* more than the bound */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write_all(sv[1], "0123456789", 10), 0);
	close(sv[1]);
	assert_int_equal(read_all_deadline(sv[0], 9, 1000, &buf, &len), -EFBIG);
	close(sv[0]);

	/* a peer that never closes: the deadline ends it */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write_all(sv[1], "partial", 7), 0);
	assert_int_equal(read_all_deadline(sv[0], 64, 50, &buf, &len), -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);

	/* nothing at all: an empty string */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(read_all_deadline(sv[0], 64, 1000, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
	close(sv[0]);
}

/* The replacement is whole and leaves no temporary behind; a directory in the way is an error. */
static void test_write_file_atomic(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("powerd-util");
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char buf[64];
	size_t len;

	assert_true(dfd >= 0);
	assert_int_equal(write_file_atomic_at(dfd, "state", "one\n"), 0);
	assert_int_equal(write_file_atomic_at(dfd, "state", "two\n"), 0);
	assert_int_equal(read_file_at(dfd, "state", buf, sizeof(buf), &len), 0);
	assert_string_equal(buf, "two\n");
	_cleanup_free_ char *tmp = xasprintf(".state.%d.tmp", (int)getpid());
	assert_int_equal(faccessat(dfd, tmp, F_OK, AT_SYMLINK_NOFOLLOW), -1);
	/* a directory where the file belongs: an error, nothing written through it */
	assert_int_equal(mkdirat(dfd, "dir", 0755), 0);
	assert_true(write_file_atomic_at(dfd, "dir", "x\n") < 0);
	assert_int_equal(faccessat(dfd, tmp, F_OK, AT_SYMLINK_NOFOLLOW), -1);
	tu_rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_boottime),
		cmocka_unit_test(test_parse_content),
		cmocka_unit_test(test_parse_span),
		cmocka_unit_test(test_pread_head),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_read_all_deadline),
		cmocka_unit_test(test_write_file_atomic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
