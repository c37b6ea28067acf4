/* The libvirt-on-libevent bridge: the raw handle/timeout contract through libvirt's public
 * virEvent* calls, then libvirt's own test driver delivering lifecycle events through our loop. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <sys/time.h>

#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "hostd/libvirt_loop.h"

static struct event_base *base;

static void quiet_error(void *arg, virErrorPtr err)
{
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until *flag becomes true or timeout_ms passes; a short timer bounds each turn. */
static bool run_until(const int *counter, int want, int timeout_ms)
{
	struct event *wake = event_new(base, -1, EV_PERSIST, wake_cb, NULL);
	struct timeval tv = { 0, 20 * 1000 };
	uint64_t deadline = now_monotonic_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;

	event_add(wake, &tv);
	while (*counter < want && now_monotonic_ns() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wake);
	return *counter >= want;
}

static int group_setup(void **state)
{
	base = event_base_new();
	assert_non_null(base);
	assert_int_equal(libvirt_loop_register(base), 0);
	assert_int_equal(libvirt_loop_register(base), 0);
	virSetErrorFunc(NULL, quiet_error);
	return 0;
}

static int group_teardown(void **state)
{
	libvirt_loop_flush();
	libvirt_loop_shutdown();
	event_base_free(base);
	return 0;
}

static void test_register_once(void **state)
{
	struct event_base *other = event_base_new();

	assert_true(libvirt_loop_is_registered());
	assert_int_equal(libvirt_loop_register(other), -EBUSY);
	event_base_free(other);
}

struct hstate {
	int calls;
	int last_events;
	int frees;
	int watch;
	bool remove_in_cb;
};

static void h_cb(int watch, int fd, int events, void *opaque)
{
	struct hstate *s = opaque;
	char buf[64];

	s->calls++;
	s->last_events = events;
	if (events & VIR_EVENT_HANDLE_READABLE)
		(void)!read(fd, buf, sizeof(buf));
	if (s->remove_in_cb)
		assert_int_equal(virEventRemoveHandle(watch), 0);
}

static void h_free(void *opaque)
{
	((struct hstate *)opaque)->frees++;
}

static void test_handles(void **state)
{
	struct hstate s = { 0 };
	struct libvirt_loop_counts c0, c;
	int p[2];

	libvirt_loop_get_counts(&c0);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	s.watch = virEventAddHandle(p[0], VIR_EVENT_HANDLE_READABLE, h_cb, &s, h_free);
	assert_true(s.watch > 0);
	libvirt_loop_get_counts(&c);
	assert_int_equal(c.handles, c0.handles + 1);

	/* Nothing to read: the callback must not run. */
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(s.calls, 0);

	assert_int_equal(write(p[1], "x", 1), 1);
	assert_true(run_until(&s.calls, 1, 2000));
	assert_int_equal(s.last_events, VIR_EVENT_HANDLE_READABLE);

	/* Events 0: the watch stays registered but is quiet. */
	virEventUpdateHandle(s.watch, 0);
	assert_int_equal(write(p[1], "y", 1), 1);
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(s.calls, 1);
	virEventUpdateHandle(s.watch, VIR_EVENT_HANDLE_READABLE);
	assert_true(run_until(&s.calls, 2, 2000));

	/* The writer goes away: libvirt is told HANGUP, by name. */
	close(p[1]);
	assert_true(run_until(&s.calls, 3, 2000));
	assert_true(s.last_events & VIR_EVENT_HANDLE_HANGUP);

	/* Removal from inside the callback; the free callback runs later, from the loop. */
	s.remove_in_cb = true;
	assert_true(run_until(&s.calls, 4, 2000));
	assert_int_equal(s.frees, 0);
	libvirt_loop_get_counts(&c);
	assert_int_equal(c.handles, c0.handles);
	assert_int_equal(c.frees_pending, c0.frees_pending + 1);
	assert_true(run_until(&s.frees, 1, 2000));
	libvirt_loop_get_counts(&c);
	assert_int_equal(c.frees_done, c0.frees_done + 1);
	assert_int_equal(virEventRemoveHandle(s.watch), -1);
	close(p[0]);

	/* Writable watch on a pipe with room. */
	struct hstate w = { 0 };
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	w.watch = virEventAddHandle(p[1], VIR_EVENT_HANDLE_WRITABLE, h_cb, &w, h_free);
	assert_true(run_until(&w.calls, 1, 2000));
	assert_int_equal(w.last_events, VIR_EVENT_HANDLE_WRITABLE);
	assert_int_equal(virEventRemoveHandle(w.watch), 0);
	assert_int_equal(w.frees, 0);
	assert_true(run_until(&w.frees, 1, 2000));
	close(p[0]);
	close(p[1]);
}

struct tstate {
	int calls;
	int frees;
	int remove_after;
};

static void t_cb(int timer, void *opaque)
{
	struct tstate *s = opaque;

	if (++s->calls == s->remove_after)
		assert_int_equal(virEventRemoveTimeout(timer), 0);
}

static void t_free(void *opaque)
{
	((struct tstate *)opaque)->frees++;
}

static void test_timeouts(void **state)
{
	struct tstate s = { 0 }, d = { 0 };
	struct libvirt_loop_counts c0, c;

	libvirt_loop_get_counts(&c0);

	/* 0 ms: once per loop iteration, no more, no less. */
	int t = virEventAddTimeout(0, t_cb, &s, t_free);
	assert_true(t > 0);
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(s.calls, 5);

	/* -1 disables it. */
	virEventUpdateTimeout(t, -1);
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(s.calls, 5);

	/* 10 ms, then removed by its own callback on the third run. */
	s.remove_after = 8;
	virEventUpdateTimeout(t, 10);
	uint64_t t0 = now_monotonic_ns();
	assert_true(run_until(&s.calls, 8, 2000));
	assert_true(now_monotonic_ns() - t0 >= 25 * NSEC_PER_MSEC);
	assert_int_equal(s.frees, 0);
	assert_true(run_until(&s.frees, 1, 2000));
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(s.calls, 8);

	/* Disabled from birth, removed from outside. */
	int u = virEventAddTimeout(-1, t_cb, &d, t_free);
	assert_true(u > 0);
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(d.calls, 0);
	assert_int_equal(virEventRemoveTimeout(u), 0);
	assert_int_equal(virEventRemoveTimeout(u), -1);
	assert_int_equal(d.frees, 0);
	assert_true(run_until(&d.frees, 1, 2000));

	libvirt_loop_get_counts(&c);
	assert_int_equal(c.timeouts, c0.timeouts);
	assert_int_equal(c.frees_pending, 0);
	assert_int_equal(c.frees_done, c0.frees_done + 2);
}

struct ev_log {
	int n;
	char name[16][32];
	int event[16];
	int frees;
};

static void lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct ev_log *l = opaque;

	if (l->n >= 16)
		return;
	snprintf(l->name[l->n], sizeof(l->name[0]), "%s", virDomainGetName(dom));
	l->event[l->n] = event;
	l->n++;
}

static void log_free(void *opaque)
{
	((struct ev_log *)opaque)->frees++;
}

static bool has_event(const struct ev_log *l, const char *name, int event)
{
	for (int i = 0; i < l->n; i++)
		if (streq(l->name[i], name) && l->event[i] == event)
			return true;
	return false;
}

static const char xml_fmt[] = "<domain type='test'><name>%s</name><memory>8192</memory>"
			      "<os><type>hvm</type></os></domain>";

static void test_libvirt_events(void **state)
{
	struct ev_log l = { 0 };
	struct libvirt_loop_counts c0, c;
	char xml[256];

	libvirt_loop_get_counts(&c0);
	virConnectPtr conn = virConnectOpen("test:///default");
	assert_non_null(conn);
	int id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), &l, log_free);
	assert_true(id >= 0);

	snprintf(xml, sizeof(xml), xml_fmt, "lv-persistent");
	virDomainPtr dom = virDomainDefineXML(conn, xml);
	assert_non_null(dom);
	assert_true(run_until(&l.n, 1, 5000));
	assert_true(has_event(&l, "lv-persistent", VIR_DOMAIN_EVENT_DEFINED));
	assert_int_equal(virDomainCreate(dom), 0);
	assert_true(run_until(&l.n, 2, 5000));
	assert_true(has_event(&l, "lv-persistent", VIR_DOMAIN_EVENT_STARTED));
	assert_int_equal(virDomainDestroy(dom), 0);
	assert_true(run_until(&l.n, 3, 5000));
	assert_true(has_event(&l, "lv-persistent", VIR_DOMAIN_EVENT_STOPPED));
	assert_int_equal(virDomainUndefine(dom), 0);
	assert_true(run_until(&l.n, 4, 5000));
	assert_true(has_event(&l, "lv-persistent", VIR_DOMAIN_EVENT_UNDEFINED));
	virDomainFree(dom);

	/* Transient: STARTED and STOPPED only. */
	snprintf(xml, sizeof(xml), xml_fmt, "lv-transient");
	dom = virDomainCreateXML(conn, xml, 0);
	assert_non_null(dom);
	assert_true(run_until(&l.n, 5, 5000));
	assert_true(has_event(&l, "lv-transient", VIR_DOMAIN_EVENT_STARTED));
	assert_int_equal(virDomainDestroy(dom), 0);
	assert_true(run_until(&l.n, 6, 5000));
	assert_true(has_event(&l, "lv-transient", VIR_DOMAIN_EVENT_STOPPED));
	assert_false(has_event(&l, "lv-transient", VIR_DOMAIN_EVENT_DEFINED));
	virDomainFree(dom);
	assert_int_equal(l.n, 6);

	/* libvirt dispatches events from a timer of ours: it was registered. */
	libvirt_loop_get_counts(&c);
	assert_true(c.timeouts + c.handles > c0.timeouts + c0.handles);

	assert_int_equal(virConnectDomainEventDeregisterAny(conn, id), 0);
	assert_int_equal(virConnectClose(conn), 0);
	/* libvirt's own free callback for our registration, and everything the connection had
	 * registered, ran later from the loop. */
	assert_true(run_until(&l.frees, 1, 2000));
	libvirt_loop_flush();
	libvirt_loop_get_counts(&c);
	assert_int_equal(c.handles, c0.handles);
	assert_int_equal(c.timeouts, c0.timeouts);
	assert_int_equal(c.frees_pending, 0);
	assert_true(c.frees_done > c0.frees_done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_once),
		cmocka_unit_test(test_handles),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_libvirt_events),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
