/* Logging: one line per message whatever the message holds. */
#include "tests/testutil.h"

#include <fcntl.h>

#include "common/log.h"

static void test_one_line(void **state)
{
	_cleanup_free_ char *dir = tu_mkdtemp("test_log");
	_cleanup_free_ char *path = xasprintf("%s/stderr", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int saved = dup(STDERR_FILENO);

	assert_true(fd >= 0 && saved >= 0);
	unsetenv("JOURNAL_STREAM");
	log_setup("test");
	dup2(fd, STDERR_FILENO);
	log_err("bad value '%s' in %s", "a\nb\r\nc", "x.yaml");
	log_debug("not shown at the default level");
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);

	_cleanup_free_ char *out = tu_read(dir, "stderr");
	assert_non_null(out);
	assert_string_equal(out, "test: error: bad value 'a b  c' in x.yaml\n");
	tu_rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
