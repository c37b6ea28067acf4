/* powerd-guest status against the real daemon (a fixture tree, its own listen address): healthy,
 * source down, not running; and the exposition reading it relies on, on hostile input. */
#include "tests/testutil.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "guestd/status.h"

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

static void test_sample(void **state)
{
	static const char exp[] =
		"# HELP x y\n"
		"# TYPE powerd_power_watts gauge\n"
		"powerd_power_watts{zone=\"a\\\"b\"} 1.5\n"
		"powerd_power_watts{other=\"zone=\\\"dram\\\"\",zone=\"dram\"} 2.5\n"
		"powerd_power_wattsx{zone=\"dram\"} 9\n"
		"powerd_source_up 1\n"
		"broken{zone=\"unterminated 3\n"
		"powerd_power_watts{zone=\"core\"} 4\n";
	double v;

	assert_int_equal(guest_status_sample(exp, "powerd_power_watts", "zone", "a\"b", &v), 0);
	assert_true(v == 1.5);
	/* A label value that looks like another label is not that label. */
	assert_int_equal(guest_status_sample(exp, "powerd_power_watts", "zone", "dram", &v), 0);
	assert_true(v == 2.5);
	assert_int_equal(guest_status_sample(exp, "powerd_power_watts", "zone", "core", &v), 0);
	assert_true(v == 4);
	assert_int_equal(guest_status_sample(exp, "powerd_source_up", NULL, NULL, &v), 0);
	assert_true(v == 1);
	assert_int_equal(guest_status_sample(exp, "broken", "zone", "x", &v), -ENOENT);
	assert_int_equal(guest_status_sample(exp, "powerd_power", NULL, NULL, &v), -ENOENT);
	assert_int_equal(guest_status_sample("", "powerd_source_up", NULL, NULL, &v), -ENOENT);
}

struct fx {
	char *tmp, *cfg, *log;
	uint16_t port;
	pid_t pid;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->tmp = tu_mkdtemp("powerd-guest-status");
	f->cfg = xasprintf("%s/guest.yaml", f->tmp);
	f->log = xasprintf("%s/daemon.log", f->tmp);
	f->port = tu_free_port();
	tu_write(f->tmp, "tree/intel-rapl:0/name", "package-0\n");
	tu_write(f->tmp, "tree/intel-rapl:0/energy_uj", "1000000\n");
	tu_write(f->tmp, "tree/intel-rapl:0/max_energy_range_uj", "262143328850\n");
	tu_writef(f->tmp, "guest.yaml",
		"source: %s/tree\ninterval: 100ms\nlisten: 127.0.0.1:%u\nattribution: none\n",
		f->tmp, f->port);
	char *argv[] = { POWERD_GUEST_BIN, "-c", f->cfg, NULL };
	f->pid = tu_spawn(argv, NULL, f->log);
	assert_int_equal(tu_wait_port(f->port, 10000), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->pid > 0)
		tu_stop(f->pid, 5000);
	tu_rm_rf(f->tmp);
	free(f->tmp);
	free(f->cfg);
	free(f->log);
	free(f);
	return 0;
}

static int run_status(struct fx *f, char **ret)
{
	_cleanup_free_ char *out = xasprintf("%s/status.out", f->tmp);
	char *argv[] = { POWERD_GUEST_BIN, "-c", f->cfg, "status", NULL };
	int status = tu_wait(tu_spawn(argv, NULL, out), 10000);

	assert_true(WIFEXITED(status));
	if (ret)
		*ret = tu_read(f->tmp, "status.out");
	return WEXITSTATUS(status);
}

/* Poll the command until it exits with want and its output contains text. */
static char *wait_status(struct fx *f, int want, const char *text)
{
	char *out = NULL;

	for (int i = 0; i < 300; i++) {
		free(out);
		out = NULL;
		if (run_status(f, &out) == want && out && strstr(out, text))
			return out;
		pause_ms(20);
	}
	fail_msg(
		"status never exited %d with \"%s\"; last output:\n%s", want, text, out ? out : "");
	return NULL;
}

static void test_status(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *ok = wait_status(f, 0, "healthy");
	assert_non_null(strstr(ok, "package-0"));
	assert_non_null(strstr(ok, "up (layout"));

	/* The tree goes away: the daemon still answers, the source is down. */
	_cleanup_free_ char *tree = xasprintf("%s/tree", f->tmp);
	_cleanup_free_ char *gone = xasprintf("%s/gone", f->tmp);
	assert_int_equal(rename(tree, gone), 0);
	_cleanup_free_ char *down = wait_status(f, 1, "not healthy");
	assert_non_null(strstr(down, " down "));

	/* Stopped: nothing answers. */
	tu_stop(f->pid, 5000);
	f->pid = 0;
	_cleanup_free_ char *out = NULL;
	assert_int_equal(run_status(f, &out), 3);
	assert_non_null(strstr(out, "not running"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample),
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
