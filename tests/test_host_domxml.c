/* What powerd-host reads of a running domain's live XML for the energy channel (hostd/domxml.c). */
#include "tests/testutil.h"

#include "hostd/domxml.h"

#define CTL "<controller type='virtio-serial' index='0'/>"
#define CHAN(mode, path)                                                                           \
	"<channel type='unix'><source mode='" mode "' path='" path "'/>"                           \
	"<target type='virtio' name='org.powerd.energy.0' state='disconnected'/></channel>"

static void inspect(
	const char *devices, int want_r, bool has_controller, bool has_channel, const char *path)
{
	_cleanup_free_ char *xml = xasprintf(
		"<domain type='kvm'><name>vm</name><devices>%s</devices></domain>", devices);
	struct domxml_channel ch;

	assert_int_equal(domxml_channel_inspect(xml, &ch), want_r);
	if (want_r < 0)
		return;
	assert_int_equal(ch.has_controller, has_controller);
	assert_int_equal(ch.has_channel, has_channel);
	if (path)
		assert_string_equal(ch.path, path);
	else
		assert_null(ch.path);
	domxml_channel_done(&ch);
}

static void test_inspect(void **state)
{
	inspect("", 0, false, false, NULL);
	inspect(CTL, 0, true, false, NULL);
	inspect(CTL CHAN("bind",
			"/var/lib/libvirt/qemu/channel/target/domain-3-vm/org.powerd.energy.0"),
		0, true, true,
		"/var/lib/libvirt/qemu/channel/target/domain-3-vm/org.powerd.energy.0");
	/* qemu as the client of someone else's socket: not ours to write into */
	inspect(CTL CHAN("connect", "/run/other.sock"), 0, true, true, NULL);
	/* a relative path, or none yet */
	inspect(CTL CHAN("bind", "rel/sock"), 0, true, true, NULL);
	inspect(CTL "<channel type='unix'><source mode='bind'/><target type='virtio' "
		    "name='org.powerd.energy.0'/></channel>",
		0, true, true, NULL);
	/* the guest agent's channel is not the energy channel */
	inspect(CTL "<channel type='unix'><source mode='bind' path='/x/org.qemu.guest_agent.0'/>"
		    "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
		0, true, false, NULL);
	/* a pty channel of our name has no socket */
	inspect(CTL
		"<channel type='pty'><target type='virtio' name='org.powerd.energy.0'/></channel>",
		0, true, true, NULL);

	struct domxml_channel ch;
	assert_int_equal(domxml_channel_inspect("<network/>", &ch), -EINVAL);
	assert_int_equal(domxml_channel_inspect("<domain><devices>", &ch), -EINVAL);
	assert_int_equal(domxml_channel_inspect("", &ch), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inspect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
