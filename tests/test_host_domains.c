/* The domain manager with the real accounting on libvirt's test driver, in-process: the test
 * holds a read-write connection of its own to define, start, stop and undefine domains (the
 * driver's default state is shared by the connections of one process), the manager follows
 * through its read-only connection's events, on real mounts in a private mount namespace. */
#include "tests/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/channel_record.h"
#include "common/log.h"
#include "common/powercap.h"
#include "common/strbuf.h"
#include "hostd/accounting.h"
#include "hostd/domain_info.h"
#include "hostd/domains.h"
#include "hostd/host_config.h"
#include "hostd/libvirt_loop.h"
#include "hostd/manager.h"

static struct event_base *base;
static virConnectPtr rw; /* the test's own connection: defines and starts domains */

struct fx {
	char *tmp;
	char *share;
	char *pc;
	struct host_config cfg;
	struct accounting *acct;
	struct domains *d;
	int attempts;
	uint64_t raw_uj;
};

static const char *mount_prefix; /* the current test's directory */

static int count_mounts(void)
{
	assert_non_null(mount_prefix);
	return tu_mount_count_under(mount_prefix);
}

static int count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(dir);
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

/* Diagnostics for a mount count that does not add up. */
static void dump_mounts(int batch, int mounts0)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];

	fprintf(stderr, "batch %d: %d mounts, %d at start:\n", batch, count_mounts(), mounts0);
	while (f && fgets(line, sizeof(line), f))
		if (!strstr(line, "/bulk-"))
			fputs(line, stderr);
}

struct until {
	bool (*pred)(struct fx *, const char *);
	struct fx *f;
	const char *name;
};

static bool until_pred(void *arg)
{
	const struct until *u = arg;
	return u->pred(u->f, u->name);
}

/* Run the loop until pred(arg) holds or timeout_ms passes. */
static bool run_until(
	bool (*pred)(struct fx *, const char *), struct fx *f, const char *name, int timeout_ms)
{
	struct until u = { pred, f, name };

	return tu_loop_until(base, until_pred, &u, timeout_ms);
}

static bool is_tracked(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == 0;
}

static bool is_gone(struct fx *f, const char *name)
{
	return !is_tracked(f, name);
}

static bool is_running(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == 0 && v.is_running;
}

static bool is_stopped(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == 0 && !v.is_running;
}

static bool is_connected(struct fx *f, const char *name)
{
	return domains_is_connected(f->d);
}

static size_t want_count;
static bool has_count(struct fx *f, const char *name)
{
	return domains_count(f->d) == want_count;
}

static const char xml_fmt[] = "<domain type='test'><name>%s</name><memory>8192</memory>"
			      "<os><type>hvm</type></os></domain>";

static virDomainPtr define(const char *name)
{
	char xml[512];

	snprintf(xml, sizeof(xml), xml_fmt, name);
	virDomainPtr dom = virDomainDefineXML(rw, xml);
	assert_non_null(dom);
	return dom;
}

static void undefine(const char *name)
{
	virDomainPtr dom = virDomainLookupByName(rw, name);

	assert_non_null(dom);
	assert_int_equal(virDomainUndefine(dom), 0);
	virDomainFree(dom);
}

static void write_counter(struct fx *f)
{
	tu_writef(f->pc, "intel-rapl:0/energy_uj", "%" PRIu64 "\n", f->raw_uj);
	tu_writef(f->pc, "intel-rapl:0/intel-rapl:0:0/energy_uj", "%" PRIu64 "\n", f->raw_uj / 2);
}

static void on_attempt(void *arg)
{
	((struct fx *)arg)->attempts++;
}

static void set_strv(struct config_strv *v, const char *one)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
	if (one) {
		v->v = xcalloc(1, sizeof(char *));
		v->v[0] = xstrdup(one);
		v->n = 1;
	}
}

static int setup_with_uri(void **state, const char *uri)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->tmp = tu_mkdtemp("powerd-domains");
	mount_prefix = f->tmp;
	f->share = xasprintf("%s/share", f->tmp);
	f->pc = xasprintf("%s/powercap", f->tmp);
	tu_write(f->pc, "intel-rapl:0/name", "package-0\n");
	tu_write(f->pc, "intel-rapl:0/max_energy_range_uj", "262143328850\n");
	tu_write(f->pc, "intel-rapl:0/intel-rapl:0:0/name", "core\n");
	tu_write(f->pc, "intel-rapl:0/intel-rapl:0:0/max_energy_range_uj", "262143328850\n");
	f->raw_uj = 1000000;
	write_counter(f);

	host_config_init(&f->cfg);
	free(f->cfg.libvirt_uri);
	f->cfg.libvirt_uri = xstrdup(uri);
	free(f->cfg.share_dir);
	f->cfg.share_dir = xstrdup(f->share);
	free(f->cfg.powercap_root);
	f->cfg.powercap_root = xstrdup(f->pc);
	f->cfg.tmpfs_size = 1 << 20;
	assert_int_equal(accounting_new(&f->cfg, &f->acct), 0);
	assert_int_equal(domains_new(base, &f->cfg, f->acct, &f->d), 0);
	domains_set_attempt_cb(f->d, on_attempt, f);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with_uri(state, "test:///default");
}

static int teardown(void **state)
{
	struct fx *f = *state;

	domains_free(f->d);
	accounting_free(f->acct);
	host_config_free(&f->cfg);
	libvirt_loop_flush();
	tu_umount_under(f->tmp);
	assert_int_equal(count_mounts(), 0);
	mount_prefix = NULL;
	tu_rm_rf(f->tmp);
	free(f->tmp);
	free(f->share);
	free(f->pc);
	free(f);
	return 0;
}

static int group_setup(void **state)
{
	if (unshare(CLONE_NEWNS) == 0)
		/* "none": valgrind checks the type string even where the kernel ignores it. */
		mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL);
	log_set_max_level(LOG_WARNING);
	base = event_base_new();
	assert_non_null(base);
	assert_int_equal(libvirt_loop_register(base), 0);
	rw = virConnectOpen("test:///default");
	assert_non_null(rw);
	return 0;
}

static int group_teardown(void **state)
{
	virConnectClose(rw);
	libvirt_loop_flush();
	libvirt_loop_shutdown();
	event_base_free(base);
	return 0;
}

static void test_startup_reconcile(void **state)
{
	struct fx *f = *state;
	struct domain_view v;
	int n0 = count_mounts();

	domains_start(f->d);
	assert_true(domains_is_connected(f->d));
	assert_int_equal(f->attempts, 1);
	/* The driver's stock domain "test" runs. */
	assert_int_equal(domains_lookup(f->d, "test", &v), 0);
	assert_true(v.is_running);
	assert_true(v.is_persistent);
	assert_int_equal(v.mount, MOUNT_TMPFS);
	assert_int_equal(count_mounts(), n0 + 2);
	_cleanup_free_ char *name = tu_read(f->share, "test/intel-rapl:0/name");
	assert_non_null(name);
	assert_string_equal(name, "package-0\n");

	/* Two ticks with the counter advancing: the running domain gets energy. */
	assert_int_equal(accounting_tick(f->acct), 0);
	f->raw_uj += 5000000;
	write_counter(f);
	/* CPU time must advance too (libvirt's cpuTime for the test driver). */
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL); /* elapsed time is the input here, not a synchronisation */
	assert_int_equal(accounting_tick(f->acct), 0);
	_cleanup_free_ char *e = tu_read(f->share, "test/intel-rapl:0/energy_uj");
	assert_non_null(e);
	assert_true(strtoull(e, NULL, 10) > 0);
	assert_true(strtoull(e, NULL, 10) <= 5000000);
}

static void test_lifecycle_persistent(void **state)
{
	struct fx *f = *state;
	struct domain_view v;
	struct stat st;

	domains_start(f->d);
	int n0 = count_mounts();
	virDomainPtr dom = define("p1");
	assert_true(run_until(is_tracked, f, "p1", 5000));
	assert_int_equal(domains_lookup(f->d, "p1", &v), 0);
	assert_true(v.is_persistent);
	assert_false(v.is_running);
	assert_int_equal(v.mount, MOUNT_TMPFS);
	assert_int_equal(count_mounts(), n0 + 2);
	_cleanup_free_ char *zone = tu_read(f->share, "p1/intel-rapl:0/energy_uj");
	assert_non_null(zone);

	assert_int_equal(virDomainCreate(dom), 0);
	assert_true(run_until(is_running, f, "p1", 5000));
	assert_int_equal(virDomainSuspend(dom), 0);
	assert_int_equal(virDomainResume(dom), 0);
	assert_int_equal(virDomainDestroy(dom), 0);
	assert_true(run_until(is_stopped, f, "p1", 5000));
	/* Persistent and stopped: the share stays for the next start. */
	assert_int_equal(count_mounts(), n0 + 2);

	assert_int_equal(virDomainUndefine(dom), 0);
	virDomainFree(dom);
	assert_true(run_until(is_gone, f, "p1", 5000));
	assert_int_equal(count_mounts(), n0);
	_cleanup_free_ char *exp = xasprintf("%s/p1", f->share);
	_cleanup_free_ char *priv = xasprintf("%s/.powerd/p1", f->share);
	assert_int_equal(stat(exp, &st), -1);
	assert_int_equal(stat(priv, &st), -1);
}

static void test_lifecycle_transient(void **state)
{
	struct fx *f = *state;
	struct domain_view v;
	char xml[256];

	domains_start(f->d);
	int n0 = count_mounts();
	snprintf(xml, sizeof(xml), xml_fmt, "t1");
	virDomainPtr dom = virDomainCreateXML(rw, xml, 0);
	assert_non_null(dom);
	assert_true(run_until(is_running, f, "t1", 5000));
	assert_int_equal(domains_lookup(f->d, "t1", &v), 0);
	assert_false(v.is_persistent);
	assert_int_equal(count_mounts(), n0 + 2);
	_cleanup_free_ char *zone = tu_read(f->share, "t1/intel-rapl:0/name");
	assert_non_null(zone);

	/* Undefining a running transient is refused by libvirt; stopping it ends it. */
	assert_int_equal(virDomainDestroy(dom), 0);
	virDomainFree(dom);
	assert_true(run_until(is_gone, f, "t1", 5000));
	assert_int_equal(count_mounts(), n0);
	_cleanup_free_ char *exp = xasprintf("%s/t1", f->share);
	assert_int_equal(access(exp, F_OK), -1);
}

static void test_include_exclude(void **state)
{
	struct fx *f = *state;
	struct domain_view v;

	set_strv(&f->cfg.exclude, "skip-*");
	domains_start(f->d);
	int n0 = count_mounts();
	virDomainFree(define("skip-me"));
	virDomainFree(define("keep-me"));
	assert_true(run_until(is_tracked, f, "keep-me", 5000));
	assert_int_equal(domains_lookup(f->d, "skip-me", &v), -ENOENT);
	_cleanup_free_ char *skip = xasprintf("%s/skip-me", f->share);
	assert_int_equal(access(skip, F_OK), -1);
	assert_int_equal(count_mounts(), n0 + 2);

	/* A reload that lets it in, then one that shuts keep-me out. */
	set_strv(&f->cfg.exclude, NULL);
	domains_set_config(f->d, &f->cfg);
	assert_true(is_tracked(f, "skip-me"));
	assert_int_equal(access(skip, F_OK), 0);
	set_strv(&f->cfg.exclude, "keep-*");
	domains_set_config(f->d, &f->cfg);
	assert_false(is_tracked(f, "keep-me"));
	assert_true(is_tracked(f, "skip-me"));
	assert_int_equal(count_mounts(), n0 + 2);

	undefine("skip-me");
	undefine("keep-me");
	assert_true(run_until(is_gone, f, "skip-me", 5000));
	assert_int_equal(count_mounts(), n0);
}

static void test_reconnect_reconciles(void **state)
{
	struct fx *f = *state;

	domains_start(f->d);
	virDomainFree(define("gone-while-away"));
	assert_true(run_until(is_tracked, f, "gone-while-away", 5000));
	int n_tracked = (int)domains_count(f->d);

	domains_reconnect(f->d, 50);
	assert_false(domains_is_connected(f->d));
	/* Missed while disconnected: one appears, one goes. Counters and trees stay meanwhile. */
	undefine("gone-while-away");
	virDomainFree(define("came-while-away"));
	assert_true(is_tracked(f, "gone-while-away"));
	assert_int_equal(accounting_tick(f->acct), 0);

	/* An exclusion reloaded while disconnected applies at once; "test" runs, so its share
	 * stays (qemu would hold it) until it stops. */
	set_strv(&f->cfg.exclude, "test");
	domains_set_config(f->d, &f->cfg);
	assert_false(is_tracked(f, "test"));
	_cleanup_free_ char *test_exp = xasprintf("%s/test", f->share);
	assert_int_equal(access(test_exp, F_OK), 0);
	n_tracked--;

	assert_true(run_until(is_connected, f, NULL, 5000));
	assert_int_equal(f->attempts, 2);
	assert_false(is_tracked(f, "test"));
	assert_true(is_tracked(f, "came-while-away"));
	assert_false(is_tracked(f, "gone-while-away"));
	assert_int_equal((int)domains_count(f->d), n_tracked);
	_cleanup_free_ char *gone = xasprintf("%s/gone-while-away", f->share);
	assert_int_equal(access(gone, F_OK), -1);

	/* Events flow on the new connection. */
	undefine("came-while-away");
	assert_true(run_until(is_gone, f, "came-while-away", 5000));
}

static bool is_share_gone(struct fx *f, const char *name)
{
	_cleanup_free_ char *exp = xasprintf("%s/%s", f->share, name);
	return access(exp, F_OK) < 0;
}

static uint64_t tree_energy(struct fx *f, const char *name)
{
	_cleanup_free_ char *rel = xasprintf("%s/intel-rapl:0/energy_uj", name);
	_cleanup_free_ char *e = tu_read(f->share, rel);

	assert_non_null(e);
	return strtoull(e, NULL, 10);
}

/* Issue 10 #10: excluding a running domain on reload leaves its share mounted (qemu holds the
 * export) until the domain stops; re-included while it runs, the share is adopted and the
 * counter goes on from its tree, never from 0. */
static void test_exclude_running_keeps_share(void **state)
{
	struct fx *f = *state;
	struct domain_view v;

	domains_start(f->d);
	int n0 = count_mounts();
	assert_true(is_running(f, "test"));
	assert_int_equal(accounting_tick(f->acct), 0);
	f->raw_uj += 5000000;
	write_counter(f);
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL); /* elapsed time is the input here (libvirt's CPU time) */
	assert_int_equal(accounting_tick(f->acct), 0);
	uint64_t e = tree_energy(f, "test");
	assert_true(e > 0);

	set_strv(&f->cfg.exclude, "test");
	domains_set_config(f->d, &f->cfg);
	assert_false(is_tracked(f, "test"));
	assert_int_equal(count_mounts(), n0);
	assert_true(tree_energy(f, "test") == e);

	/* included again while it runs: adopted, not mounted over, counter continued */
	set_strv(&f->cfg.exclude, NULL);
	domains_set_config(f->d, &f->cfg);
	assert_int_equal(domains_lookup(f->d, "test", &v), 0);
	assert_int_equal(v.mount, MOUNT_TMPFS);
	assert_int_equal(count_mounts(), n0);
	assert_int_equal(accounting_tick(f->acct), 0);
	assert_true(tree_energy(f, "test") >= e);

	/* excluded again, then stopped: now the share goes */
	set_strv(&f->cfg.exclude, "test");
	domains_set_config(f->d, &f->cfg);
	assert_int_equal(count_mounts(), n0);
	virDomainPtr dom = virDomainLookupByName(rw, "test");
	assert_non_null(dom);
	assert_int_equal(virDomainDestroy(dom), 0);
	assert_true(run_until(is_share_gone, f, "test", 5000));
	assert_int_equal(count_mounts(), n0 - 2);
	/* the stock domain runs again for the other tests */
	assert_int_equal(virDomainCreate(dom), 0);
	virDomainFree(dom);
}

/* A share made as the hook makes it, with its tree's top last touched age_s ago. */
static void make_share(struct fx *f, struct mounts *m, const char *name, time_t age_s)
{
	enum mount_state ms;
	int fd;

	assert_int_equal(mounts_prepare(m, name, false, &fd, &ms), 0);
	close(fd);
	_cleanup_free_ char *priv = xasprintf("%s/.powerd/%s", f->share, name);
	struct timespec t[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = time(NULL) - age_s } };
	assert_int_equal(utimensat(AT_FDCWD, priv, t, 0), 0);
}

/* Issue 10 #11: shares no known domain owns (a failed start, a transient domain that stopped
 * while the daemon was down) are removed by reconcile; not one the hook may be preparing (too
 * young), nor one a running domain may hold (even untracked). */
static void test_orphans_removed(void **state)
{
	struct fx *f = *state;
	struct mounts *m;
	char xml[256];

	set_strv(&f->cfg.exclude, "run-*");
	domains_start(f->d);
	int n0 = count_mounts();
	assert_int_equal(mounts_new(f->share, f->cfg.tmpfs_size, &m), 0);
	make_share(f, m, "ghost", 600);
	make_share(f, m, "young-ghost", 5);
	snprintf(xml, sizeof(xml), xml_fmt, "run-untracked");
	virDomainPtr dom = virDomainCreateXML(rw, xml, 0);
	assert_non_null(dom);
	make_share(f, m, "run-untracked", 600);
	assert_int_equal(count_mounts(), n0 + 6);

	assert_int_equal(domains_reconcile(f->d), 0);
	assert_int_equal(count_mounts(), n0 + 4);
	assert_true(is_share_gone(f, "ghost"));
	_cleanup_free_ char *priv = xasprintf("%s/.powerd/ghost", f->share);
	assert_int_equal(access(priv, F_OK), -1);
	assert_false(is_share_gone(f, "young-ghost"));
	assert_false(is_share_gone(f, "run-untracked"));
	/* tracked domains' shares are never orphans, however old */
	make_share(f, m, "test", 600);
	assert_int_equal(domains_reconcile(f->d), 0);
	assert_false(is_share_gone(f, "test"));

	/* the running one stops (while untracked): now it is an orphan */
	assert_int_equal(virDomainDestroy(dom), 0);
	virDomainFree(dom);
	make_share(f, m, "run-untracked", 600);
	assert_int_equal(domains_reconcile(f->d), 0);
	assert_true(is_share_gone(f, "run-untracked"));
	assert_int_equal(count_mounts(), n0 + 2);
	assert_int_equal(mounts_teardown(m, "young-ghost"), 0);
	mounts_free(m);
}

static int setup_bad_uri(void **state)
{
	return setup_with_uri(state, "test:///nonexistent/powerd-no-such-file.xml");
}

static bool has_two_attempts(void *arg)
{
	const struct fx *f = arg;
	return f->attempts >= 2;
}

static void test_unreachable_retries(void **state)
{
	struct fx *f = *state;

	domains_start(f->d);
	assert_int_equal(f->attempts, 1);
	assert_false(domains_is_connected(f->d));
	assert_int_equal(domains_backoff_ms(f->d), 2 * DOMAINS_BACKOFF_MIN_MS);
	/* The first retry comes about a second later, from the loop; the backoff doubles. */
	uint64_t t0 = now_monotonic_ns();
	assert_true(tu_loop_until(base, has_two_attempts, f, 5000));
	assert_int_equal(f->attempts, 2);
	assert_true(now_monotonic_ns() - t0 >= 900 * NSEC_PER_MSEC);
	assert_int_equal(domains_backoff_ms(f->d), 4 * DOMAINS_BACKOFF_MIN_MS);
	assert_int_equal(domains_reconcile(f->d), -ENOTCONN);
}

static void test_thousand_domains_no_leak(void **state)
{
	struct fx *f = *state;
	char name[32];

	domains_start(f->d);
	size_t base_count = domains_count(f->d);
	int fds0 = count_fds(), mounts0 = count_mounts();

	for (int batch = 0; batch < 10; batch++) {
		for (int i = 0; i < 100; i++) {
			snprintf(name, sizeof(name), "bulk-%d-%d", batch, i);
			virDomainFree(define(name));
		}
		want_count = base_count + 100;
		assert_true(run_until(has_count, f, NULL, 20000));
		if (count_mounts() != mounts0 + 200)
			dump_mounts(batch, mounts0);
		assert_int_equal(count_mounts(), mounts0 + 200);
		assert_int_equal(accounting_tick(f->acct), 0);
		/* every other one goes first: the rest are still found by name (the index of
		 * tracked domains moves entries when one is taken out) */
		for (int i = 1; i < 100; i += 2) {
			snprintf(name, sizeof(name), "bulk-%d-%d", batch, i);
			undefine(name);
		}
		want_count = base_count + 50;
		assert_true(run_until(has_count, f, NULL, 20000));
		for (int i = 0; i < 100; i++) {
			struct domain_view v;
			snprintf(name, sizeof(name), "bulk-%d-%d", batch, i);
			assert_int_equal(domains_lookup(f->d, name, &v), i % 2 ? -ENOENT : 0);
		}
		for (int i = 0; i < 100; i += 2) {
			snprintf(name, sizeof(name), "bulk-%d-%d", batch, i);
			undefine(name);
		}
		want_count = base_count;
		assert_true(run_until(has_count, f, NULL, 20000));
	}
	libvirt_loop_flush();
	assert_int_equal(count_fds(), fds0);
	assert_int_equal(count_mounts(), mounts0);
	_cleanup_free_ char *one = xasprintf("%s/bulk-9-99", f->share);
	assert_int_equal(access(one, F_OK), -1);
}

/* A domain found running with a plain export directory is written in place; once it stops,
 * its next start gets the read-only tmpfs (docs/faults.md), and its counters go on from where
 * they were. */
static void test_in_place_next_start(void **state)
{
	struct fx *f = *state;
	struct domain_view v;

	virDomainPtr dom = define("ip1");
	assert_int_equal(virDomainCreate(dom), 0);
	_cleanup_free_ char *exp = xasprintf("%s/ip1", f->share);
	assert_int_equal(mkdir(exp, 0755), 0);
	domains_start(f->d);
	int n0 = count_mounts();
	assert_int_equal(domains_lookup(f->d, "ip1", &v), 0);
	assert_true(v.is_running);
	assert_int_equal(v.mount, MOUNT_IN_PLACE);
	assert_int_equal(accounting_tick(f->acct), 0);
	f->raw_uj += 5000000;
	write_counter(f);
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL); /* elapsed time is the input here, not a synchronisation */
	assert_int_equal(accounting_tick(f->acct), 0);
	_cleanup_free_ char *e0 = tu_read(f->share, "ip1/intel-rapl:0/energy_uj");
	assert_non_null(e0);
	uint64_t before = strtoull(e0, NULL, 10);
	assert_true(before > 0);

	/* qemu is gone: the share can be mounted now, before the next start */
	assert_int_equal(virDomainDestroy(dom), 0);
	assert_true(run_until(is_stopped, f, "ip1", 5000));
	assert_int_equal(domains_lookup(f->d, "ip1", &v), 0);
	assert_int_equal(v.mount, MOUNT_TMPFS);
	assert_int_equal(count_mounts(), n0 + 2);
	_cleanup_free_ char *e1 = tu_read(f->share, "ip1/intel-rapl:0/energy_uj");
	assert_non_null(e1);
	assert_int_equal(strtoull(e1, NULL, 10), before);
	assert_int_equal(virDomainCreate(dom), 0);
	assert_true(run_until(is_running, f, "ip1", 5000));
	assert_int_equal(accounting_tick(f->acct), 0);
	_cleanup_free_ char *e2 = tu_read(f->share, "ip1/intel-rapl:0/energy_uj");
	assert_non_null(e2);
	assert_true(strtoull(e2, NULL, 10) >= before);

	assert_int_equal(virDomainDestroy(dom), 0);
	assert_int_equal(virDomainUndefine(dom), 0);
	virDomainFree(dom);
	assert_true(run_until(is_gone, f, "ip1", 5000));
	assert_int_equal(count_mounts(), n0);
}

/* A share whose tree cannot be laid out (tmpfs_size too small for it) is not left mounted
 * behind a domain that is not tracked: nothing would ever unmount it. */
static void test_untracked_share_not_left(void **state)
{
	struct fx *f = *state;

	domains_free(f->d);
	f->cfg.tmpfs_size = 4096;
	assert_int_equal(domains_new(base, &f->cfg, f->acct, &f->d), 0);
	set_strv(&f->cfg.include, "small-*");
	domains_start(f->d);
	int n0 = count_mounts();
	virDomainFree(define("small-1"));
	assert_int_equal(domains_reconcile(f->d), 0);
	assert_false(is_tracked(f, "small-1"));
	assert_int_equal(count_mounts(), n0);
	undefine("small-1");
}

/* The in-place share of a stopped domain whose tmpfs cannot hold the tree stays in place (no
 * mount hiding the directory its tree is still written in). */
static void test_in_place_reshare_fails(void **state)
{
	struct fx *f = *state;
	struct domain_view v;

	domains_free(f->d);
	f->cfg.tmpfs_size = 4096;
	assert_int_equal(domains_new(base, &f->cfg, f->acct, &f->d), 0);
	set_strv(&f->cfg.include, "ip2");
	virDomainPtr dom = define("ip2");
	assert_int_equal(virDomainCreate(dom), 0);
	_cleanup_free_ char *exp = xasprintf("%s/ip2", f->share);
	assert_int_equal(mkdir(exp, 0755), 0);
	domains_start(f->d);
	int n0 = count_mounts();
	assert_int_equal(domains_lookup(f->d, "ip2", &v), 0);
	assert_int_equal(v.mount, MOUNT_IN_PLACE);
	assert_int_equal(virDomainDestroy(dom), 0);
	assert_true(run_until(is_stopped, f, "ip2", 5000));
	assert_int_equal(domains_lookup(f->d, "ip2", &v), 0);
	assert_int_equal(v.mount, MOUNT_IN_PLACE);
	assert_int_equal(count_mounts(), n0);
	assert_int_equal(accounting_tick(f->acct), 0);
	_cleanup_free_ char *hb = tu_read(f->share, "ip2/" POWERCAP_HEARTBEAT_FILE);
	assert_non_null(hb);
	assert_int_equal(virDomainUndefine(dom), 0);
	virDomainFree(dom);
	assert_true(run_until(is_gone, f, "ip2", 5000));
}

static enum channel_state want_channel;
static bool has_channel_state(struct fx *f, const char *name)
{
	struct domain_view v;
	return domains_lookup(f->d, name, &v) == 0 && v.channel == want_channel;
}

static void define_start(const char *name, const char *devices)
{
	char xml[1024];

	snprintf(xml, sizeof(xml),
		"<domain type='test'><name>%s</name><memory>8192</memory>"
		"<os><type>hvm</type></os><devices>%s</devices></domain>",
		name, devices);
	virDomainPtr dom = virDomainDefineXML(rw, xml);
	assert_non_null(dom);
	assert_int_equal(virDomainCreate(dom), 0);
	virDomainFree(dom);
}

static void destroy_undefine(const char *name)
{
	virDomainPtr dom = virDomainLookupByName(rw, name);

	assert_non_null(dom);
	virDomainDestroy(dom);
	assert_int_equal(virDomainUndefine(dom), 0);
	virDomainFree(dom);
}

/* Read what arrives on fd (waiting up to 2 s for the first byte): whole lines only; the last one
 * without its '\n', or NULL if nothing came. */
static char *read_lines(int fd, char *buf, size_t size)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t len = 0;

	while (len < size - 1 && poll(&p, 1, len ? 50 : 2000) == 1) {
		ssize_t k = read(fd, buf + len, size - 1 - len);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	buf[len] = '\0';
	if (len == 0)
		return NULL;
	assert_true(buf[len - 1] == '\n');
	buf[len - 1] = '\0';
	char *nl = strrchr(buf, '\n');
	return nl ? nl + 1 : buf;
}

/* channel: auto on the test driver: a domain without a controller is not served (and says so), the
 * driver refuses hot-plug (its reason kept), and a domain whose live XML has the channel gets
 * one record per tick on the socket, the same energy as its tree; stopping it closes the channel.
 */
static void test_channel(void **state)
{
	struct fx *f = *state;
	struct domain_view v;
	_cleanup_free_ char *sock = xasprintf("%s/chan.sock", f->tmp);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	strcpy(sa.sun_path, sock);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(f->cfg.channel, CHANNEL_MODE_AUTO);

	domains_start(f->d);
	define_start("nochan", "");
	define_start("refused", "<controller type='virtio-serial' index='0'/>");
	char served[512];
	snprintf(served, sizeof(served),
		"<controller type='virtio-serial' index='0'/><channel type='unix'><source "
		"mode='bind' path='%s'/><target type='virtio' "
		"name='org.powerd.energy.0'/></channel>",
		sock);
	define_start("served", served);

	want_channel = CHANNEL_NO_CONTROLLER;
	assert_true(run_until(has_channel_state, f, "nochan", 5000));
	want_channel = CHANNEL_HOTPLUG_REFUSED;
	assert_true(run_until(has_channel_state, f, "refused", 5000));
	assert_int_equal(domains_lookup(f->d, "refused", &v), 0);
	assert_non_null(strstr(v.channel_reason, "not supported"));
	want_channel = CHANNEL_CONNECTED;
	assert_true(run_until(has_channel_state, f, "served", 5000));
	/* the stock domain "test" has no controller either */
	want_channel = CHANNEL_NO_CONTROLLER;
	assert_true(run_until(has_channel_state, f, "test", 5000));

	struct pollfd p = { .fd = lfd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	_cleanup_close_ int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(cfd >= 0);
	char buf[4096];
	char *last = read_lines(cfd, buf, sizeof(buf)); /* nothing yet: no tick */
	assert_null(last);
	assert_int_equal(accounting_tick(f->acct), 0);
	last = read_lines(cfd, buf, sizeof(buf));
	assert_non_null(last);
	f->raw_uj += 3000000;
	write_counter(f);
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL); /* elapsed time is the input here, not a synchronisation */
	assert_int_equal(accounting_tick(f->acct), 0);
	/* the second tick's record, with the tree's energy */
	last = read_lines(cfd, buf, sizeof(buf));
	assert_non_null(last);
	struct channel_record r;
	assert_int_equal(channel_record_parse(last, strlen(last), &r), 0);
	assert_string_equal(r.instance, accounting_instance(f->acct));
	uint64_t pkg;
	assert_int_equal(channel_record_zone(&r, "package-0", &pkg), 0);
	_cleanup_free_ char *e = tu_read(f->share, "served/intel-rapl:0/energy_uj");
	assert_non_null(e);
	assert_int_equal(pkg, strtoull(e, NULL, 10));
	assert_true(pkg > 0);
	_cleanup_free_ char *hb = tu_read(f->share, "served/" POWERCAP_HEARTBEAT_FILE);
	struct heartbeat h;
	assert_int_equal(heartbeat_parse(hb, strlen(hb), &h), 0);
	assert_int_equal(h.seq, r.seq);
	assert_string_equal(h.instance, r.instance);

	struct strbuf m = { 0 };
	double val;
	domains_render(f->d, &m);
	assert_int_equal(
		tu_metric(m.buf, "powerd_domain_channel_connected{domain=\"served\"}", &val), 0);
	assert_true(val == 1);
	assert_int_equal(
		tu_metric(m.buf, "powerd_domain_channel_connected{domain=\"nochan\"}", &val), 0);
	assert_true(val == 0);
	/* not served: the reason is a label (libvirt's words for a refusal) */
	assert_non_null(
		strstr(m.buf, "\npowerd_domain_transport{domain=\"refused\",transport=\"channel\","
			      "state=\"hotplug_refused\",reason=\""));
	assert_int_equal(tu_metric(m.buf,
				 "powerd_domain_transport{domain=\"nochan\",transport=\"channel\","
				 "state=\"no_controller\",reason=\"no virtio-serial controller: "
				 "powerd-host attach --channel, restart\"}",
				 &val),
		0);
	assert_int_equal(tu_metric(m.buf,
				 "powerd_domain_transport{domain=\"served\",transport=\"tree\","
				 "state=\"tmpfs\"}",
				 &val),
		0);
	assert_int_equal(tu_metric(m.buf,
				 "powerd_domain_channel_records_total{domain=\"served\","
				 "outcome=\"sent\"}",
				 &val),
		0);
	assert_true(val == 2);
	strbuf_done(&m);

	/* stopped: the channel is off and the host's end closed */
	virDomainPtr dom = virDomainLookupByName(rw, "served");
	assert_int_equal(virDomainDestroy(dom), 0);
	virDomainFree(dom);
	want_channel = CHANNEL_OFF;
	assert_true(run_until(has_channel_state, f, "served", 5000));
	assert_int_equal(read(cfd, buf, 1), 0);
	destroy_undefine("served");
	destroy_undefine("refused");
	destroy_undefine("nochan");
}

#define NOVA_NS "http://openstack.org/xmlns/libvirt/nova/1.1"
#define NOVA_UUID "6f0c3a8e-2b1d-4f5e-9a7c-0d1e2f3a4b5c"
/* Nova's element (nova/virt/libvirt/config.py) with the project's name given. */
/* Nova's element (nova/virt/libvirt/config.py) with the project's name given: P is "nova:" in a
 * domain's XML; "" for virDomainSetMetadata (virsh metadata --set), which puts it into the
 * namespace it is given. */
#define NOVA_META(P, xmlns, project)                                                               \
	"<" P "instance" xmlns "><" P "package version=\"27.1.0\"/>"                               \
	"<" P "name>web-1</" P "name><" P "creationTime>2026-12-06 08:12:31</" P "creationTime>"   \
	"<" P "flavor name=\"m1.small\" id=\"2\"><" P "memory>2048</" P "memory>"                  \
	"<" P "vcpus>1</" P "vcpus><" P "extraSpecs/></" P "flavor>"                               \
	"<" P "image uuid=\"fe55c69a-8b2e-4bbc-811a-9ad2023a0426\"><" P "properties/></" P         \
	"image>"                                                                                   \
	"<" P "owner><" P "user uuid=\"u1\">alice</" P "user>"                                     \
	"<" P "project uuid=\"p1\">" project "</" P "project></" P "owner>"                        \
	"<" P "root type=\"image\" uuid=\"fe55c69a-8b2e-4bbc-811a-9ad2023a0426\"/>"                \
	"</" P "instance>"
#define NOVA_INFO(project)                                                                         \
	"powerd_domain_info{domain=\"instance-0000002a\",uuid=\"" NOVA_UUID "\","                  \
	"instance_name=\"web-1\",project_id=\"p1\",project_name=\"" project "\",user_id=\"u1\","   \
	"user_name=\"alice\",flavor=\"m1.small\","                                                 \
	"image_id=\"fe55c69a-8b2e-4bbc-811a-9ad2023a0426\"}"

static const char *want_series;
static bool has_series(struct fx *f, const char *name)
{
	struct strbuf m = { 0 };
	double v;

	domains_render(f->d, &m);
	bool has = tu_metric(m.buf, want_series, &v) == 0 && v == 1;
	strbuf_done(&m);
	return has;
}

/* A Nova-shaped domain (instance-0000002a, Nova's metadata, no virtio-serial controller): its
 * info series carries the labels, its channel is no_controller with the reason naming the image
 * property; a live metadata change (virsh metadata --live) updates the labels through libvirt's
 * event, and its removal empties them. */
static void test_nova_labels(void **state)
{
	struct fx *f = *state;
	struct domain_view v;
	double val;

	domains_start(f->d);
	virDomainPtr dom = virDomainDefineXML(rw,
		"<domain type='test'><name>instance-0000002a</name><uuid>" NOVA_UUID "</uuid>"
		"<metadata>" NOVA_META("nova:", " xmlns:nova=\"" NOVA_NS "\"",
			"demo") "</metadata>"
				"<memory>8192</memory><os><type>hvm</type></"
				"os><devices/></domain>");
	assert_non_null(dom);
	assert_int_equal(virDomainCreate(dom), 0);
	want_series = NOVA_INFO("demo");
	if (!run_until(has_series, f, "instance-0000002a", 5000)) {
		struct strbuf dbg = { 0 };
		domains_render(f->d, &dbg);
		fail_msg("%s", dbg.buf);
	}
	want_channel = CHANNEL_NO_CONTROLLER;
	assert_true(run_until(has_channel_state, f, "instance-0000002a", 5000));
	assert_int_equal(domains_lookup(f->d, "instance-0000002a", &v), 0);
	assert_non_null(strstr(v.channel_reason, "hw_qemu_guest_agent=yes"));
	assert_string_equal(v.title, "web-1");

	struct strbuf m = { 0 };
	domains_render(f->d, &m);
	assert_int_equal(tu_metric(m.buf,
				 "powerd_domain_transport{domain=\"instance-0000002a\","
				 "transport=\"channel\",state=\"no_controller\",reason=\"no "
				 "virtio-serial controller: a Nova instance; its image needs "
				 "hw_qemu_guest_agent=yes\"}",
				 &val),
		0);
	/* the stock domain: no Nova labels, its uuid */
	assert_non_null(strstr(m.buf, "\npowerd_domain_info{domain=\"test\",uuid=\""));
	assert_non_null(
		strstr(m.buf, "\",instance_name=\"\",project_id=\"\",project_name=\"\","
			      "user_id=\"\",user_name=\"\",flavor=\"\",image_id=\"\"} 1\n"));
	_cleanup_free_ char *out = NULL;
	int r = tu_promtool_check(m.buf, &out);
	if (r != -ENOENT && r != 0)
		fail_msg("promtool check metrics (%d): %s", r, out);
	strbuf_done(&m);

	/* virsh metadata --live: the project renamed, with a quote and a newline */
	assert_int_equal(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
				 NOVA_META("", "", "de&quot;mo&#10;2"), "nova", NOVA_NS,
				 VIR_DOMAIN_AFFECT_LIVE),
		0);
	want_series = NOVA_INFO("de\\\"mo\xef\xbf\xbd"
				"2");
	assert_true(run_until(has_series, f, "instance-0000002a", 5000));
	/* removed: the Nova labels go, the uuid stays */
	assert_int_equal(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, NULL, NULL, NOVA_NS,
				 VIR_DOMAIN_AFFECT_LIVE),
		0);
	want_series = "powerd_domain_info{domain=\"instance-0000002a\",uuid=\"" NOVA_UUID "\","
		      "instance_name=\"\",project_id=\"\",project_name=\"\",user_id=\"\","
		      "user_name=\"\",flavor=\"\",image_id=\"\"}";
	assert_true(run_until(has_series, f, "instance-0000002a", 5000));
	assert_int_equal(domains_lookup(f->d, "instance-0000002a", &v), 0);
	assert_null(v.title);
	virDomainFree(dom);
	destroy_undefine("instance-0000002a");
}

/* A node file for the test driver (test:///PATH): Nova's domains as its libvirt driver writes them,
 * and hostile metadata an operator's tool could write. */
static char *nova_dir;

static void nova_node_domain(struct strbuf *b, const char *name, const char *uuid,
	const char *metadata, const char *devices)
{
	strbuf_printf(b,
		"<domain type='test'><name>%s</name><uuid>%s</uuid><metadata>%s</metadata>"
		"<memory>8192</memory><os><type>hvm</type></os><devices>%s</devices></domain>\n",
		name, uuid, metadata, devices);
}

static int setup_nova_file(void **state)
{
	struct strbuf b = { 0 }, big = { 0 };

	nova_dir = tu_mkdtemp("powerd-nova");
	strbuf_puts(&b, "<node>\n");
	nova_node_domain(&b, "instance-0000002a", NOVA_UUID,
		NOVA_META("nova:", " xmlns:nova=\"" NOVA_NS "\"", "demo"), "");
	/* hw_qemu_guest_agent=yes: the agent's channel, and a controller for it */
	nova_node_domain(&b, "instance-0000002b", "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
		NOVA_META("nova:", " xmlns:nova=\"" NOVA_NS "\"", "demo"),
		"<controller type='virtio-serial' index='0'/><channel type='unix'><source "
		"mode='bind' "
		"path='/var/lib/libvirt/qemu/org.qemu.guest_agent.0.instance-0000002b.sock'/>"
		"<target type='virtio' name='org.qemu.guest_agent.0'/></channel>");
	/* a 10 KiB project name of quotes, newlines, backslashes and text */
	for (int i = 0; i < 10 * 1024 / 8; i++)
		strbuf_puts(&big, "a&quot;b&#10;c\\d");
	_cleanup_free_ char *long_meta = xasprintf("<nova:instance xmlns:nova=\"" NOVA_NS "\">"
						   "<nova:owner><nova:project uuid=\"p\">%s"
						   "</nova:project></nova:owner></nova:instance>",
		big.buf);
	nova_node_domain(&b, "hostile-long", "11111111-2222-4333-8444-555555555555", long_meta, "");
	/* Nova's element names in another namespace */
	nova_node_domain(&b, "hostile-ns", "21111111-2222-4333-8444-555555555555",
		NOVA_META("nova:", " xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.0\"",
			"other"),
		"");
	/* two Nova elements: libvirt keeps the first (the parser's own rule is unit-tested) */
	nova_node_domain(&b, "hostile-dup", "31111111-2222-4333-8444-555555555555",
		"<nova:instance xmlns:nova=\"" NOVA_NS "\"><nova:name>first</nova:name>"
		"</nova:instance><nova:instance xmlns:nova=\"" NOVA_NS "\"><nova:name>second"
		"</nova:name></nova:instance>",
		"");
	strbuf_puts(&b, "</node>\n");
	tu_write(nova_dir, "node.xml", b.buf);
	strbuf_done(&b);
	strbuf_done(&big);
	_cleanup_free_ char *uri = xasprintf("test://%s/node.xml", nova_dir);
	return setup_with_uri(state, uri);
}

static int teardown_nova_file(void **state)
{
	teardown(state);
	tu_rm_rf(nova_dir);
	free(nova_dir);
	nova_dir = NULL;
	return 0;
}

static const struct domain_info *info_of(struct fx *f, const char *name)
{
	struct domain *dm = domains_find(f->d, name);

	assert_non_null(dm);
	return dm->info;
}

/* The test driver from a file of Nova's domains: the info series carries their labels, hostile
 * metadata gives bounded, escaped or empty labels, and the whole exposition (as powerd-host
 * serves it) passes promtool check metrics. */
static void test_nova_file(void **state)
{
	struct fx *f = *state;
	struct strbuf m = { 0 };
	double val;

	domains_start(f->d);
	assert_true(domains_is_connected(f->d));
	assert_int_equal(domains_count(f->d), 5);
	want_channel = CHANNEL_NO_CONTROLLER;
	assert_true(run_until(has_channel_state, f, "instance-0000002a", 5000));
	/* the test driver cannot hot-plug: the controller was found, the plug refused */
	want_channel = CHANNEL_HOTPLUG_REFUSED;
	assert_true(run_until(has_channel_state, f, "instance-0000002b", 5000));
	want_channel = CHANNEL_NO_CONTROLLER;
	assert_true(run_until(has_channel_state, f, "hostile-ns", 5000));
	assert_int_equal(accounting_tick(f->acct), 0);

	accounting_render(f->acct, true, &m);
	domains_render(f->d, &m);
	assert_int_equal(tu_metric(m.buf, NOVA_INFO("demo"), &val), 0);
	assert_non_null(strstr(m.buf,
		"\npowerd_domain_info{domain=\"instance-0000002b\","
		"uuid=\"0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d\",instance_name=\"web-1\","
		"project_id=\"p1\",project_name=\"demo\",user_id=\"u1\",user_name=\"alice\","
		"flavor=\"m1.small\",image_id=\"fe55c69a-8b2e-4bbc-811a-9ad2023a0426\"} 1\n"));
	assert_int_equal(tu_metric(m.buf,
				 "powerd_domain_transport{domain=\"instance-0000002a\","
				 "transport=\"channel\",state=\"no_controller\",reason=\"no "
				 "virtio-serial controller: a Nova instance; its image needs "
				 "hw_qemu_guest_agent=yes\"}",
				 &val),
		0);
	/* 10 KiB: cut at 256 bytes, the newlines replaced, quotes and backslashes escaped */
	const char *long_name =
		domain_info_get(info_of(f, "hostile-long"), DOMAIN_INFO_PROJECT_NAME);
	assert_true(strlen(long_name) <= DOMAIN_INFO_VALUE_MAX);
	assert_true(strlen(long_name) > DOMAIN_INFO_VALUE_MAX - 4);
	assert_null(strchr(long_name, '\n'));
	assert_non_null(strstr(m.buf, "project_name=\"a\\\"b\xef\xbf\xbd"
				      "c\\\\da\\\"b"));
	/* another namespace is not Nova's */
	assert_false(info_of(f, "hostile-ns")->is_nova);
	assert_string_equal(
		domain_info_get(info_of(f, "hostile-ns"), DOMAIN_INFO_PROJECT_NAME), "");
	assert_non_null(strstr(m.buf,
		"\npowerd_domain_info{domain=\"hostile-ns\","
		"uuid=\"21111111-2222-4333-8444-555555555555\",instance_name=\"\",project_id=\"\","
		"project_name=\"\",user_id=\"\",user_name=\"\",flavor=\"\",image_id=\"\"} 1\n"));
	assert_non_null(strstr(m.buf, "powerd_domain_transport{domain=\"hostile-ns\","
				      "transport=\"channel\",state=\"no_controller\",reason=\"no "
				      "virtio-serial controller: powerd-host attach --channel, "
				      "restart\"} 1\n"));
	assert_string_equal(
		domain_info_get(info_of(f, "hostile-dup"), DOMAIN_INFO_INSTANCE_NAME), "first");

	_cleanup_free_ char *out = NULL;
	int r = tu_promtool_check(m.buf, &out);
	if (r != -ENOENT && r != 0)
		fail_msg("promtool check metrics (%d): %s", r, out);
	strbuf_done(&m);
}

/* channel: off: no channel, and the connection stays read-only (nothing is hot-plugged). */
static void test_channel_off(void **state)
{
	struct fx *f = *state;
	struct domain_view v;

	f->cfg.channel = CHANNEL_MODE_OFF;
	domains_start(f->d);
	define_start("refused", "<controller type='virtio-serial' index='0'/>");
	assert_true(run_until(is_running, f, "refused", 5000));
	/* a loop turn for any deferred work there would be */
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(domains_lookup(f->d, "refused", &v), 0);
	assert_int_equal(v.channel, CHANNEL_OFF);
	assert_string_equal(v.channel_reason, "");
	destroy_undefine("refused");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_startup_reconcile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nova_labels, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_nova_file, setup_nova_file, teardown_nova_file),
		cmocka_unit_test_setup_teardown(test_lifecycle_persistent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle_transient, setup, teardown),
		cmocka_unit_test_setup_teardown(test_include_exclude, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_reconciles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exclude_running_keeps_share, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphans_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_place_next_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untracked_share_not_left, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_place_reshare_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_retries, setup_bad_uri, teardown),
		cmocka_unit_test_setup_teardown(test_thousand_domains_no_leak, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_off, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
