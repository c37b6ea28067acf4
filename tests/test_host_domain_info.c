/* A domain's info labels (hostd/domain_info.c): Nova's metadata read from domain XML shaped as
 * Nova's libvirt driver writes it, hostile variants of it, and the series rendered from it. */
#include "tests/testutil.h"

#include "hostd/domain_info.h"

#define NOVA_NS "http://openstack.org/xmlns/libvirt/nova/1.1"
#define UUID "6f0c3a8e-2b1d-4f5e-9a7c-0d1e2f3a4b5c"
#define USER_ID "3472c2a6de914fb5b61842bc781ef670"
#define PROJECT_ID "f241e906010e4917ae8153f4fb8aa021"
#define IMAGE_ID "fe55c69a-8b2e-4bbc-811a-9ad2023a0426"
#define VOLUME_ID "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

/* The Nova element as nova/virt/libvirt/config.py writes it (LibvirtConfigGuestMetaNovaInstance,
 * ...Flavor, ...Image, ...Owner, ...Ports); root and image are the caller's. */
#define NOVA_INSTANCE(prefix, ns, name, image, root)                                               \
	"<" prefix ":instance xmlns:" prefix "=\"" ns "\">\n"                                      \
	"  <" prefix ":package version=\"27.1.0\"/>\n"                                             \
	"  <" prefix ":name>" name "</" prefix ":name>\n"                                          \
	"  <" prefix ":creationTime>2026-12-06 08:12:31</" prefix ":creationTime>\n"               \
	"  <" prefix ":flavor name=\"m1.small\" id=\"2\">\n"                                       \
	"    <" prefix ":memory>2048</" prefix ":memory>\n"                                        \
	"    <" prefix ":disk>20</" prefix ":disk>\n"                                              \
	"    <" prefix ":swap>0</" prefix ":swap>\n"                                               \
	"    <" prefix ":ephemeral>0</" prefix ":ephemeral>\n"                                     \
	"    <" prefix ":vcpus>1</" prefix ":vcpus>\n"                                             \
	"    <" prefix ":extraSpecs>\n"                                                            \
	"      <" prefix ":extraSpec name=\"hw:cpu_policy\">shared</" prefix ":extraSpec>\n"       \
	"    </" prefix ":extraSpecs>\n"                                                           \
	"  </" prefix ":flavor>\n" image "  <" prefix ":owner>\n"                                  \
	"    <" prefix ":user uuid=\"" USER_ID "\">alice</" prefix ":user>\n"                      \
	"    <" prefix ":project uuid=\"" PROJECT_ID "\">demo</" prefix ":project>\n"              \
	"  </" prefix ":owner>\n" root "  <" prefix ":ports>\n"                                    \
	"    <" prefix ":port uuid=\"567a4527-b0e4-4d0a-bcc2-71fda37897f7\">\n"                    \
	"      <" prefix ":ip type=\"fixed\" address=\"10.0.0.12\" ipVersion=\"4\"/>\n"            \
	"    </" prefix ":port>\n"                                                                 \
	"  </" prefix ":ports>\n"                                                                  \
	"</" prefix ":instance>\n"

#define NOVA_IMAGE                                                                                 \
	"  <nova:image uuid=\"" IMAGE_ID "\">\n"                                                   \
	"    <nova:containerFormat>bare</nova:containerFormat>\n"                                  \
	"    <nova:diskFormat>qcow2</nova:diskFormat>\n"                                           \
	"    <nova:minDisk>20</nova:minDisk>\n"                                                    \
	"    <nova:minRam>0</nova:minRam>\n"                                                       \
	"    <nova:properties>\n"                                                                  \
	"      <nova:property name=\"hw_qemu_guest_agent\">yes</nova:property>\n"                  \
	"    </nova:properties>\n"                                                                 \
	"  </nova:image>\n"
#define NOVA_ROOT_IMAGE "  <nova:root type=\"image\" uuid=\"" IMAGE_ID "\"/>\n"

#define NOVA_DEFAULT NOVA_INSTANCE("nova", NOVA_NS, "web-1", NOVA_IMAGE, NOVA_ROOT_IMAGE)

/* A domain as libvirt shows a Nova instance: name instance-XXXXXXXX, the instance's UUID, Nova's
 * element in <metadata>, and (a default instance) no virtio-serial controller. */
static char *nova_domain(const char *metadata)
{
	return xasprintf("<domain type='kvm' id='3'>\n"
			 "  <name>instance-0000002a</name>\n"
			 "  <uuid>" UUID "</uuid>\n"
			 "  <metadata>\n%s  </metadata>\n"
			 "  <memory unit='KiB'>2097152</memory>\n"
			 "  <vcpu placement='static'>1</vcpu>\n"
			 "  <sysinfo type='smbios'><system>"
			 "<entry name='manufacturer'>OpenStack Foundation</entry>"
			 "<entry name='product'>OpenStack Nova</entry>"
			 "<entry name='uuid'>" UUID "</entry>"
			 "<entry name='family'>Virtual Machine</entry></system></sysinfo>\n"
			 "  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>"
			 "<smbios mode='sysinfo'/></os>\n"
			 "  <devices>\n"
			 "    <controller type='usb' index='0' model='none'/>\n"
			 "    <serial type='pty'><log file='/var/lib/nova/instances/" UUID
			 "/console.log' append='off'/><target port='0'/></serial>\n"
			 "  </devices>\n"
			 "</domain>\n",
		metadata);
}

static struct domain_info *parse_ok(const char *xml)
{
	struct domain_info *info = NULL;

	assert_int_equal(domain_info_parse_xml(xml, &info), 0);
	assert_non_null(info);
	return info;
}

static struct domain_info *parse_domain(const char *metadata)
{
	_cleanup_free_ char *xml = nova_domain(metadata);

	return parse_ok(xml);
}

static void assert_label(const struct domain_info *info, enum domain_info_label l, const char *v)
{
	if (!streq(domain_info_get(info, l), v))
		fail_msg("%s: '%s', expected '%s'", domain_info_label_name(l),
			domain_info_get(info, l), v);
}

static void assert_nova_empty(const struct domain_info *info)
{
	for (int l = DOMAIN_INFO_INSTANCE_NAME; l < DOMAIN_INFO_N_LABELS; l++)
		assert_label(info, l, "");
}

static void assert_default(const struct domain_info *info, const char *uuid)
{
	assert_true(info->is_nova);
	assert_label(info, DOMAIN_INFO_UUID, uuid);
	assert_label(info, DOMAIN_INFO_INSTANCE_NAME, "web-1");
	assert_label(info, DOMAIN_INFO_PROJECT_ID, PROJECT_ID);
	assert_label(info, DOMAIN_INFO_PROJECT_NAME, "demo");
	assert_label(info, DOMAIN_INFO_USER_ID, USER_ID);
	assert_label(info, DOMAIN_INFO_USER_NAME, "alice");
	assert_label(info, DOMAIN_INFO_FLAVOR, "m1.small");
	assert_label(info, DOMAIN_INFO_IMAGE_ID, IMAGE_ID);
}

static void test_nova_domain(void **state)
{
	struct domain_info *info = parse_domain(NOVA_DEFAULT);

	assert_default(info, UUID);
	domain_info_free(info);
}

/* What virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT, the Nova namespace) answers: the element
 * alone (its uuid is the caller's), under whatever prefix. */
static void test_nova_element_alone(void **state)
{
	struct domain_info *info = parse_ok(NOVA_DEFAULT);

	assert_default(info, "");
	domain_info_free(info);

	info = parse_ok(NOVA_INSTANCE(
		"n", NOVA_NS, "web-1", "", "<n:root type=\"image\" uuid=\"" IMAGE_ID "\"/>"));
	assert_default(info, "");
	domain_info_free(info);

	/* an undeclared prefix is no namespace: that element is not Nova's */
	info = parse_ok(NOVA_INSTANCE("n", NOVA_NS, "web-1", "", NOVA_ROOT_IMAGE));
	assert_label(info, DOMAIN_INFO_PROJECT_NAME, "demo");
	assert_label(info, DOMAIN_INFO_IMAGE_ID, "");
	domain_info_free(info);

	/* default namespace, no prefix at all */
	info = parse_ok("<instance xmlns=\"" NOVA_NS "\"><name>web-1</name>"
			"<owner><project uuid=\"p\">demo</project></owner></instance>");
	assert_true(info->is_nova);
	assert_label(info, DOMAIN_INFO_INSTANCE_NAME, "web-1");
	assert_label(info, DOMAIN_INFO_PROJECT_ID, "p");
	domain_info_free(info);
}

/* Where the instance booted from: releases before nova:image have nova:root only; from a volume,
 * nova:image carries the volume's id (or ""), which is no image. */
static void test_image_id(void **state)
{
	struct domain_info *info;

	info = parse_domain(NOVA_INSTANCE("nova", NOVA_NS, "web-1", "", NOVA_ROOT_IMAGE));
	assert_label(info, DOMAIN_INFO_IMAGE_ID, IMAGE_ID);
	domain_info_free(info);

	info = parse_domain(NOVA_INSTANCE("nova", NOVA_NS, "web-1",
		"<nova:image uuid=\"" VOLUME_ID "\"><nova:properties/></nova:image>",
		"<nova:root type=\"volume\" uuid=\"" VOLUME_ID "\"/>"));
	assert_label(info, DOMAIN_INFO_IMAGE_ID, "");
	assert_label(info, DOMAIN_INFO_FLAVOR, "m1.small");
	domain_info_free(info);

	info = parse_domain(NOVA_INSTANCE("nova", NOVA_NS, "web-1",
		"<nova:image uuid=\"\"><nova:properties/></nova:image>", ""));
	assert_label(info, DOMAIN_INFO_IMAGE_ID, "");
	domain_info_free(info);

	info = parse_domain(NOVA_INSTANCE("nova", NOVA_NS, "web-1", NOVA_IMAGE, ""));
	assert_label(info, DOMAIN_INFO_IMAGE_ID, IMAGE_ID);
	domain_info_free(info);
}

/* A domain no one gave Nova's metadata: its uuid, nothing else. Another namespace under the
 * prefix "nova" (an older or a look-alike one) is not Nova's. */
static void test_not_nova(void **state)
{
	struct domain_info *info;

	info = parse_domain("");
	assert_false(info->is_nova);
	assert_label(info, DOMAIN_INFO_UUID, UUID);
	assert_nova_empty(info);
	domain_info_free(info);

	info = parse_domain(NOVA_INSTANCE(
		"nova", "http://openstack.org/xmlns/libvirt/nova/1.0", "web-1", NOVA_IMAGE, ""));
	assert_false(info->is_nova);
	assert_nova_empty(info);
	domain_info_free(info);

	info = parse_domain(
		"<app:instance xmlns:app='http://example.org/app/1'><app:name>x</app:name>"
		"</app:instance>");
	assert_false(info->is_nova);
	assert_nova_empty(info);
	domain_info_free(info);

	/* Nova's element name without a namespace, directly in <metadata> (libvirt would not
	 * keep it; a hand-written file could) */
	info = parse_domain("<instance><name>x</name></instance>");
	assert_false(info->is_nova);
	assert_nova_empty(info);
	domain_info_free(info);

	/* Nova's own children under a foreign element */
	info = parse_domain("<x:instance xmlns:x='urn:x' xmlns:nova='" NOVA_NS "'>"
			    "<nova:name>x</nova:name></x:instance>");
	assert_false(info->is_nova);
	assert_nova_empty(info);
	domain_info_free(info);
}

/* Two of something: which one is meant is not ours to guess, so that label stays empty. */
static void test_duplicates(void **state)
{
	struct domain_info *info;

	info = parse_domain(NOVA_DEFAULT NOVA_DEFAULT);
	assert_true(info->is_nova);
	assert_label(info, DOMAIN_INFO_UUID, UUID);
	assert_nova_empty(info);
	domain_info_free(info);

	info = parse_ok("<nova:instance xmlns:nova='" NOVA_NS "'>"
			"<nova:name>a</nova:name><nova:name>b</nova:name>"
			"<nova:flavor name='m1.small'/><nova:flavor name='m1.large'/>"
			"<nova:owner><nova:project uuid='p1'>one</nova:project>"
			"<nova:project uuid='p2'>two</nova:project>"
			"<nova:user uuid='u'>alice</nova:user></nova:owner>"
			"<nova:owner><nova:user uuid='u2'>bob</nova:user></nova:owner>"
			"</nova:instance>");
	assert_true(info->is_nova);
	assert_nova_empty(info);
	domain_info_free(info);

	info = parse_ok("<nova:instance xmlns:nova='" NOVA_NS "'>"
			"<nova:owner><nova:project uuid='p1'>one</nova:project>"
			"<nova:project uuid='p2'>two</nova:project>"
			"<nova:user uuid='u'>alice</nova:user></nova:owner>"
			"<nova:root type='image' uuid='i1'/><nova:root type='image' uuid='i2'/>"
			"<nova:image uuid='i3'/>"
			"</nova:instance>");
	assert_label(info, DOMAIN_INFO_PROJECT_ID, "");
	assert_label(info, DOMAIN_INFO_PROJECT_NAME, "");
	assert_label(info, DOMAIN_INFO_USER_ID, "u");
	assert_label(info, DOMAIN_INFO_USER_NAME, "alice");
	/* two roots are no root: nova:image then counts */
	assert_label(info, DOMAIN_INFO_IMAGE_ID, "i3");
	domain_info_free(info);

	/* two <uuid> */
	info = parse_ok("<domain><uuid>a</uuid><uuid>b</uuid></domain>");
	assert_label(info, DOMAIN_INFO_UUID, "");
	domain_info_free(info);
}

/* Pieces missing, or not of the shape Nova writes. */
static void test_missing_and_malformed_pieces(void **state)
{
	struct domain_info *info;

	info = parse_ok("<nova:instance xmlns:nova='" NOVA_NS "'/>");
	assert_true(info->is_nova);
	assert_nova_empty(info);
	domain_info_free(info);

	info = parse_ok("<nova:instance xmlns:nova='" NOVA_NS "'>"
			"<nova:name><b>web</b>-1</nova:name>"	   /* markup in a name */
			"<nova:flavor id='2'/>"			   /* no name= */
			"<nova:owner><nova:user>alice</nova:user>" /* no uuid= */
			"<nova:project uuid='p'><!-- c -->demo</nova:project></nova:owner>"
			"</nova:instance>");
	assert_label(info, DOMAIN_INFO_INSTANCE_NAME, "");
	assert_label(info, DOMAIN_INFO_FLAVOR, "");
	assert_label(info, DOMAIN_INFO_USER_ID, "");
	assert_label(info, DOMAIN_INFO_USER_NAME, "alice");
	assert_label(info, DOMAIN_INFO_PROJECT_ID, "p");
	assert_label(info, DOMAIN_INFO_PROJECT_NAME, "");
	domain_info_free(info);

	/* entities and CDATA are text */
	info = parse_ok("<nova:instance xmlns:nova='" NOVA_NS "'>"
			"<nova:name>a &amp; b <![CDATA[<c>]]></nova:name></nova:instance>");
	assert_label(info, DOMAIN_INFO_INSTANCE_NAME, "a & b <c>");
	domain_info_free(info);

	/* project outside owner is not the owner's */
	info = parse_ok("<nova:instance xmlns:nova='" NOVA_NS "'>"
			"<nova:project uuid='p'>demo</nova:project></nova:instance>");
	assert_label(info, DOMAIN_INFO_PROJECT_ID, "");
	domain_info_free(info);
}

static void test_not_xml(void **state)
{
	static const char *const bad[] = {
		"",
		"<domain><metadata>",
		"<network><name>default</name></network>",
		"<metadata/>",
		"not xml at all",
		"<domain><name>a</name></domain><domain/>",
		"<!DOCTYPE domain [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><domain>&e;</domain>x",
	};
	struct domain_info *info = (struct domain_info *)1;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(domain_info_parse_xml(bad[i], &info), -EINVAL);
		assert_null(info);
	}
	assert_int_equal(domain_info_parse_xml(NULL, &info), -EINVAL);

	/* an external entity is never fetched: the name stays an unresolved reference */
	info = parse_ok("<!DOCTYPE domain [<!ENTITY e SYSTEM 'file:///etc/hostname'>]>"
			"<domain><uuid>&e;</uuid></domain>");
	assert_label(info, DOMAIN_INFO_UUID, "");
	domain_info_free(info);
}

/* Values are bounded and sanitised: 10 KiB names are cut at 256 bytes on a character boundary;
 * quotes, backslashes stay (the renderer escapes them); control characters and invalid UTF-8
 * become U+FFFD. */
static void test_hostile_values(void **state)
{
	struct domain_info *info = domain_info_new();
	char big[10 * 1024 + 1];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	domain_info_set(info, DOMAIN_INFO_INSTANCE_NAME, big);
	assert_int_equal(
		strlen(domain_info_get(info, DOMAIN_INFO_INSTANCE_NAME)), DOMAIN_INFO_VALUE_MAX);

	/* 255 ASCII bytes then a 4-byte character: the character does not fit, and is not cut */
	memset(big, 'b', 255);
	strcpy(big + 255, "\xf0\x9f\x94\x8c tail");
	domain_info_set(info, DOMAIN_INFO_PROJECT_NAME, big);
	assert_int_equal(strlen(domain_info_get(info, DOMAIN_INFO_PROJECT_NAME)), 255);

	domain_info_set(info, DOMAIN_INFO_USER_NAME,
		"a\"b\\c\nd\te\x7f"
		"f\xff\xc3(g");
	assert_label(info, DOMAIN_INFO_USER_NAME,
		"a\"b\\c\xef\xbf\xbd"
		"d\xef\xbf\xbd"
		"e\xef\xbf\xbd"
		"f\xef\xbf\xbd\xef\xbf\xbd(g");
	domain_info_set(info, DOMAIN_INFO_FLAVOR, "m1.\xc3\xa9t\xc3\xa9");
	assert_label(info, DOMAIN_INFO_FLAVOR, "m1.\xc3\xa9t\xc3\xa9");
	domain_info_set(info, DOMAIN_INFO_FLAVOR, NULL);
	assert_label(info, DOMAIN_INFO_FLAVOR, "");
	/* out of range: ignored */
	domain_info_set(info, DOMAIN_INFO_N_LABELS, "x");
	assert_string_equal(domain_info_get(info, DOMAIN_INFO_N_LABELS), "");
	domain_info_free(info);

	/* the same through the parser: a 10 KiB project name with quotes and newlines */
	_cleanup_free_ char *name = xmalloc(10 * 1024 + 1);
	for (size_t i = 0; i < 10 * 1024; i++)
		name[i] = "x\"\n\\"[i % 4];
	name[10 * 1024] = '\0';
	_cleanup_free_ char *meta = xasprintf("<nova:instance xmlns:nova='" NOVA_NS "'>"
					      "<nova:owner><nova:project uuid='p'>%s</nova:project>"
					      "</nova:owner></nova:instance>",
		name);
	info = parse_ok(meta);
	const char *v = domain_info_get(info, DOMAIN_INFO_PROJECT_NAME);
	assert_true(strlen(v) <= DOMAIN_INFO_VALUE_MAX);
	assert_true(strlen(v) > DOMAIN_INFO_VALUE_MAX - 3);
	assert_null(strchr(v, '\n'));
	assert_true(startswith(v, "x\"\xef\xbf\xbd\\x\""));
	domain_info_free(info);
}

static void test_equal_and_free(void **state)
{
	struct domain_info *a = parse_domain(NOVA_DEFAULT);
	struct domain_info *b = parse_domain(NOVA_DEFAULT);

	assert_true(domain_info_equal(a, b));
	domain_info_set(b, DOMAIN_INFO_FLAVOR, "m1.large");
	assert_false(domain_info_equal(a, b));
	domain_info_set(b, DOMAIN_INFO_FLAVOR, "m1.small");
	b->is_nova = false;
	assert_false(domain_info_equal(a, b));
	assert_false(domain_info_equal(a, NULL));
	assert_true(domain_info_equal(NULL, NULL));
	domain_info_free(a);
	domain_info_free(b);
	domain_info_free(NULL);
}

static void test_render(void **state)
{
	struct domain_info *info = parse_domain(NOVA_DEFAULT);
	struct strbuf b = { 0 };

	domain_info_render_family(&b);
	domain_info_render(&b, "instance-0000002a", info);
	domain_info_render(&b, "plain", NULL);
	domain_info_set(info, DOMAIN_INFO_PROJECT_NAME, "q\"uo\\te\nnl");
	domain_info_render(&b, "instance-0000002b", info);
	assert_true(startswith(b.buf, "# HELP powerd_domain_info "));
	assert_non_null(strstr(b.buf, "\n# TYPE powerd_domain_info gauge\n"));
	assert_non_null(strstr(b.buf,
		"\npowerd_domain_info{domain=\"instance-0000002a\",uuid=\"" UUID "\","
		"instance_name=\"web-1\",project_id=\"" PROJECT_ID "\",project_name=\"demo\","
		"user_id=\"" USER_ID "\",user_name=\"alice\",flavor=\"m1.small\","
		"image_id=\"" IMAGE_ID "\"} 1\n"));
	assert_non_null(strstr(b.buf,
		"\npowerd_domain_info{domain=\"plain\",uuid=\"\",instance_name=\"\",project_id="
		"\"\","
		"project_name=\"\",user_id=\"\",user_name=\"\",flavor=\"\",image_id=\"\"} 1\n"));
	/* set: the newline is gone; the renderer escapes the quote and the backslash */
	assert_non_null(strstr(b.buf, "project_name=\"q\\\"uo\\\\te\xef\xbf\xbdnl\""));

	_cleanup_free_ char *out = NULL;
	int r = tu_promtool_check(b.buf, &out);
	if (r != -ENOENT && r != 0)
		fail_msg("promtool check metrics (%d): %s", r, out);
	strbuf_done(&b);
	domain_info_free(info);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nova_domain),
		cmocka_unit_test(test_nova_element_alone),
		cmocka_unit_test(test_image_id),
		cmocka_unit_test(test_not_nova),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_missing_and_malformed_pieces),
		cmocka_unit_test(test_not_xml),
		cmocka_unit_test(test_hostile_values),
		cmocka_unit_test(test_equal_and_free),
		cmocka_unit_test(test_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
