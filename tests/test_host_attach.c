/* powerd-host attach/detach against libvirt's test:///default driver, in process. That driver
 * keeps one state per process for as long as a connection to it is open: the test holds one, so
 * the domains it defines are the ones attach_main's own connection sees. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "hostd/attach.h"

#define DOM "powerd-attach"

struct fixture {
	char *dir;
	char *config;
	virConnectPtr conn;
};

static const char domain_xml[] = "<domain type='test'><name>" DOM "</name>"
				 "<memory unit='MiB'>128</memory><os><type>hvm</type></os>"
				 "<devices/></domain>";

static const char hugepages_xml[] = "<domain type='test'><name>" DOM "</name>"
				    "<memory unit='MiB'>128</memory>"
				    "<memoryBacking><hugepages/></memoryBacking>"
				    "<os><type>hvm</type></os><devices/></domain>";

static void quiet(void *data, virErrorPtr err)
{
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->dir = tu_mkdtemp("powerd-attach");
	tu_writef(
		f->dir, "host.yaml", "libvirt_uri: test:///default\nshare_dir: %s/share\n", f->dir);
	f->config = xasprintf("%s/host.yaml", f->dir);
	virSetErrorFunc(NULL, quiet);
	f->conn = virConnectOpen("test:///default");
	assert_non_null(f->conn);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	virDomainPtr d = virDomainLookupByName(f->conn, DOM);

	if (d) {
		virDomainUndefine(d);
		virDomainFree(d);
	}
	virConnectClose(f->conn);
	tu_rm_rf(f->dir);
	free(f->dir);
	free(f->config);
	free(f);
	return 0;
}

static void define(struct fixture *f, const char *xml)
{
	virDomainPtr d = virDomainDefineXML(f->conn, xml);

	assert_non_null(d);
	virDomainFree(d);
}

static char *dom_xml(struct fixture *f, const char *name)
{
	virDomainPtr d = virDomainLookupByName(f->conn, name);

	assert_non_null(d);
	char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
	assert_non_null(xml);
	virDomainFree(d);
	return xml;
}

/* Run attach_main with argv (NULL-terminated) and stderr captured into *ret_err if not NULL. */
static int run_attach(struct fixture *f, char **ret_err, const char *const *args)
{
	char *argv[16];
	int argc = 0, status, saved;
	_cleanup_free_ char *errpath = xasprintf("%s/stderr", f->dir);

	for (; args[argc]; argc++)
		argv[argc] = (char *)args[argc];
	argv[argc] = NULL;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	status = attach_main(argc, argv, f->config);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	if (ret_err)
		*ret_err = tu_read(f->dir, "stderr");
	return status;
}

#define ATTACH(f, ...) run_attach(f, NULL, (const char *const[]){ __VA_ARGS__, NULL })

static void test_attach_9p_idempotent_detach(void **state)
{
	struct fixture *f = *state;

	define(f, domain_xml);
	_cleanup_free_ char *orig = dom_xml(f, DOM);
	assert_null(strstr(orig, "scaphandre"));

	assert_int_equal(ATTACH(f, "attach", DOM), 0);
	_cleanup_free_ char *once = dom_xml(f, DOM);
	_cleanup_free_ char *source = xasprintf("<source dir='%s/share/" DOM "'/>", f->dir);
	assert_non_null(strstr(once, "<filesystem type='mount' accessmode='passthrough'>"));
	assert_non_null(strstr(once, source));
	assert_non_null(strstr(once, "<target dir='scaphandre'/>"));
	assert_non_null(strstr(once, "<readonly/>"));
	assert_null(strstr(once, "virtiofs"));
	assert_null(strstr(once, "memoryBacking"));

	/* a second attach changes nothing, byte for byte */
	assert_int_equal(ATTACH(f, "attach", DOM), 0);
	_cleanup_free_ char *twice = dom_xml(f, DOM);
	assert_string_equal(once, twice);

	/* switching kind in place is refused, and leaves the definition alone */
	_cleanup_free_ char *err = NULL;
	assert_int_equal(
		run_attach(f, &err, (const char *const[]){ "attach", "--virtiofs", DOM, NULL }), 1);
	assert_non_null(err);
	assert_non_null(strstr(err, "domain " DOM ": already has a 9p share"));
	_cleanup_free_ char *after_refusal = dom_xml(f, DOM);
	assert_string_equal(once, after_refusal);

	assert_int_equal(ATTACH(f, "detach", DOM), 0);
	_cleanup_free_ char *detached = dom_xml(f, DOM);
	assert_null(strstr(detached, "scaphandre"));
	assert_string_equal(orig, detached);

	/* detaching what is not there is not an error */
	assert_int_equal(ATTACH(f, "detach", DOM), 0);
	_cleanup_free_ char *again = dom_xml(f, DOM);
	assert_string_equal(orig, again);
}

/* A share whose source is not the domain's export (the domain was renamed, share_dir moved)
 * would stop the domain from starting once the old directory goes: attach points it at the
 * right one. */
static void test_attach_fixes_stale_source(void **state)
{
	struct fixture *f = *state;

	define(f, domain_xml);
	assert_int_equal(ATTACH(f, "attach", DOM), 0);
	tu_writef(
		f->dir, "host.yaml", "libvirt_uri: test:///default\nshare_dir: %s/moved\n", f->dir);
	assert_int_equal(ATTACH(f, "attach", DOM), 0);
	_cleanup_free_ char *xml = dom_xml(f, DOM);
	_cleanup_free_ char *source = xasprintf("<source dir='%s/moved/" DOM "'/>", f->dir);
	assert_non_null(strstr(xml, source));
	assert_null(strstr(xml, "/share/" DOM));
	assert_non_null(strstr(xml, "<readonly/>"));
	/* and then it is idempotent again */
	assert_int_equal(ATTACH(f, "attach", DOM), 0);
	_cleanup_free_ char *again = dom_xml(f, DOM);
	assert_string_equal(xml, again);
}

static void test_attach_virtiofs(void **state)
{
	struct fixture *f = *state;

	define(f, domain_xml);
	_cleanup_free_ char *orig = dom_xml(f, DOM);

	/* options may come before or after the domain, -c overrides main's config path */
	assert_int_equal(ATTACH(f, "attach", "--virtiofs", "-c", f->config, DOM), 0);
	_cleanup_free_ char *once = dom_xml(f, DOM);
	assert_non_null(strstr(once, "<driver type='virtiofs'/>"));
	assert_non_null(strstr(once, "<target dir='scaphandre'/>"));
	assert_null(strstr(once, "<readonly/>"));
	assert_non_null(strstr(once, "<memoryBacking>"));
	assert_non_null(strstr(once, "<source type='memfd'/>"));
	assert_non_null(strstr(once, "<access mode='shared'/>"));

	assert_int_equal(ATTACH(f, "attach", DOM, "--virtiofs"), 0);
	_cleanup_free_ char *twice = dom_xml(f, DOM);
	assert_string_equal(once, twice);

	/* what attach added, and only that, goes away */
	assert_int_equal(ATTACH(f, "detach", DOM), 0);
	_cleanup_free_ char *detached = dom_xml(f, DOM);
	assert_string_equal(orig, detached);
}

static void test_virtiofs_keeps_admin_memory_backing(void **state)
{
	struct fixture *f = *state;

	define(f, hugepages_xml);
	_cleanup_free_ char *orig = dom_xml(f, DOM);
	assert_non_null(strstr(orig, "<hugepages/>"));

	assert_int_equal(ATTACH(f, "attach", "--virtiofs", DOM), 0);
	_cleanup_free_ char *once = dom_xml(f, DOM);
	assert_non_null(strstr(once, "<hugepages/>"));
	assert_non_null(strstr(once, "<access mode='shared'/>"));
	assert_null(strstr(once, "memfd"));

	assert_int_equal(ATTACH(f, "detach", DOM), 0);
	_cleanup_free_ char *detached = dom_xml(f, DOM);
	assert_non_null(strstr(detached, "<hugepages/>"));
	assert_string_equal(orig, detached);
}

static const char agent_xml[] =
	"<domain type='test'><name>" DOM "</name>"
	"<memory unit='MiB'>128</memory><os><type>hvm</type></os>"
	"<devices><controller type='virtio-serial' index='0'/></devices></domain>";

/* attach --channel: the channel and, where there is none, a virtio-serial controller; a second
 * run changes nothing byte for byte; detach removes exactly that. */
static void test_attach_channel(void **state)
{
	struct fixture *f = *state;

	define(f, domain_xml);
	_cleanup_free_ char *orig = dom_xml(f, DOM);
	assert_null(strstr(orig, "virtio-serial"));

	assert_int_equal(ATTACH(f, "attach", DOM, "--channel"), 0);
	_cleanup_free_ char *once = dom_xml(f, DOM);
	assert_non_null(strstr(once, "<controller type='virtio-serial' index='0'"));
	assert_non_null(strstr(once, "<channel type='unix'>"));
	/* (the test driver drops a <source mode='bind'/> without a path; qemu's keeps it) */
	assert_non_null(strstr(once, "name='org.powerd.energy.0'"));
	assert_non_null(strstr(once, "channel=\"channel+controller\""));
	assert_null(strstr(once, "scaphandre"));

	assert_int_equal(ATTACH(f, "attach", "--channel", DOM), 0);
	_cleanup_free_ char *twice = dom_xml(f, DOM);
	assert_string_equal(once, twice);

	/* the share beside it: both recorded, both go with detach */
	assert_int_equal(ATTACH(f, "attach", DOM), 0);
	_cleanup_free_ char *both = dom_xml(f, DOM);
	assert_non_null(strstr(both, "<target dir='scaphandre'/>"));
	assert_non_null(strstr(both, "name='org.powerd.energy.0'"));

	assert_int_equal(ATTACH(f, "detach", DOM), 0);
	_cleanup_free_ char *detached = dom_xml(f, DOM);
	assert_string_equal(orig, detached);
	assert_int_equal(ATTACH(f, "detach", DOM), 0);
	_cleanup_free_ char *again = dom_xml(f, DOM);
	assert_string_equal(orig, again);
}

/* A controller the administrator has (a guest agent's): kept by detach, only the channel goes. */
static void test_channel_keeps_admin_controller(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *err = NULL;

	define(f, agent_xml);
	_cleanup_free_ char *orig = dom_xml(f, DOM);
	assert_int_equal(ATTACH(f, "attach", "--channel", DOM), 0);
	_cleanup_free_ char *once = dom_xml(f, DOM);
	assert_non_null(strstr(once, "channel=\"channel\""));
	assert_non_null(strstr(once, "name='org.powerd.energy.0'"));
	assert_int_equal(ATTACH(f, "detach", DOM), 0);
	_cleanup_free_ char *detached = dom_xml(f, DOM);
	assert_non_null(strstr(detached, "virtio-serial"));
	assert_string_equal(orig, detached);

	assert_int_equal(
		run_attach(f, &err, (const char *const[]){ "detach", "--channel", DOM, NULL }), 2);
	assert_non_null(strstr(err, "--channel is an option of attach only"));
	free(err);
	err = NULL;
	assert_int_equal(
		run_attach(f, &err,
			(const char *const[]){ "attach", "--channel", "--virtiofs", DOM, NULL }),
		2);
	assert_non_null(strstr(err, "separate attachments"));
}

static void test_unknown_domain(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *err = NULL;

	assert_int_equal(
		run_attach(f, &err, (const char *const[]){ "attach", "no-such-domain", NULL }), 1);
	assert_non_null(err);
	assert_non_null(strstr(err, "domain no-such-domain: not found"));
}

static void test_transient_domain_refused(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *err = NULL;
	virDomainPtr d = virDomainCreateXML(f->conn, domain_xml, 0);

	assert_non_null(d);
	assert_int_equal(run_attach(f, &err, (const char *const[]){ "attach", DOM, NULL }), 1);
	assert_non_null(strstr(err, "domain " DOM ": is transient"));
	virDomainDestroy(d);
	virDomainFree(d);
}

static void test_bad_config(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *err = NULL;
	_cleanup_free_ char *missing = xasprintf("%s/missing.yaml", f->dir);

	assert_int_equal(
		run_attach(f, &err, (const char *const[]){ "attach", "-c", missing, "test", NULL }),
		1);
	assert_non_null(strstr(err, "missing.yaml"));
}

static void test_untracked_domain_refused(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *err = NULL;

	define(f, domain_xml);
	_cleanup_free_ char *orig = dom_xml(f, DOM);
	tu_writef(f->dir, "host.yaml",
		"libvirt_uri: test:///default\nshare_dir: %s/share\n"
		"domains:\n  exclude: [\"powerd-*\"]\n",
		f->dir);
	assert_int_equal(run_attach(f, &err, (const char *const[]){ "attach", DOM, NULL }), 1);
	assert_non_null(strstr(err, "domain " DOM ": not tracked by powerd-host"));
	_cleanup_free_ char *after = dom_xml(f, DOM);
	assert_string_equal(orig, after);
}

static void test_usage(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(ATTACH(f, "attach"), 2);
	assert_int_equal(ATTACH(f, "attach", "a", "b"), 2);
	assert_int_equal(ATTACH(f, "detach", "--virtiofs", "test"), 2);
	assert_int_equal(ATTACH(f, "attach", "--bogus", "test"), 2);
	assert_int_equal(ATTACH(f, "attach", "../etc"), 2);
	assert_int_equal(ATTACH(f, "attach", ".powerd"), 2);
	assert_int_equal(ATTACH(f, "frobnicate", "test"), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_attach_9p_idempotent_detach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_virtiofs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_fixes_stale_source, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_virtiofs_keeps_admin_memory_backing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_channel_keeps_admin_controller, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_domain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transient_domain_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untracked_domain_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
