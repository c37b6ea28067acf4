/* libvirt's event loop on libevent. libvirt asks for fd watches and timers through the six
 * callbacks of virEventRegisterImpl; each becomes one struct event on our event_base. Removal
 * never calls libvirt's free callback from inside the remove call (libvirt may hold locks
 * there): the record is parked and its ff(opaque) runs from the loop, on a zero timeout. */
#include "hostd/libvirt_loop.h"

#include <poll.h>
#include <sys/time.h>

#include <event2/event.h>
#include <libvirt/libvirt.h>

#include "common/log.h"
#include "common/util.h"

enum lv_kind { LV_HANDLE, LV_TIMEOUT };

struct lv_rec {
	enum lv_kind kind;
	int id;
	int fd;		/* handles */
	int vir_events; /* handles: VIR_EVENT_HANDLE_* asked for */
	int timeout_ms; /* timeouts: -1 disabled, 0 every iteration */
	virEventHandleCallback hcb;
	virEventTimeoutCallback tcb;
	void *opaque;
	virFreeCallback ff;
	struct event *ev;
	struct lv_rec *next;
};

static struct {
	struct event_base *base;
	bool is_registered;
	int next_id;
	struct lv_rec *live;  /* handles and timeouts libvirt holds */
	struct lv_rec *dead;  /* removed; free callback pending */
	struct event *reaper; /* runs the pending free callbacks */
	unsigned n_handles, n_timeouts, n_dead;
	unsigned long frees_done;
} lv;

static struct lv_rec *rec_find(enum lv_kind kind, int id)
{
	for (struct lv_rec *r = lv.live; r; r = r->next)
		if (r->kind == kind && r->id == id)
			return r;
	return NULL;
}

static void rec_unlink(struct lv_rec *rec)
{
	for (struct lv_rec **p = &lv.live; *p; p = &(*p)->next)
		if (*p == rec) {
			*p = rec->next;
			return;
		}
}

static short events_to_libevent(int vir_events)
{
	short what = 0;

	if (vir_events & VIR_EVENT_HANDLE_READABLE)
		what |= EV_READ;
	if (vir_events & VIR_EVENT_HANDLE_WRITABLE)
		what |= EV_WRITE;
	return what;
}

static int revents_to_vir(short revents)
{
	int e = 0;

	if (revents & POLLIN)
		e |= VIR_EVENT_HANDLE_READABLE;
	if (revents & POLLOUT)
		e |= VIR_EVENT_HANDLE_WRITABLE;
	if (revents & POLLERR)
		e |= VIR_EVENT_HANDLE_ERROR;
	if (revents & POLLHUP)
		e |= VIR_EVENT_HANDLE_HANGUP;
	return e;
}

static void handle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lv_rec *rec = arg;
	/* libevent folds errors and hang-ups into readable/writable; libvirt wants them named,
	 * so ask poll() for the precise state of this one fd. */
	struct pollfd pfd = { .fd = fd, .events = 0 };
	int events = 0;

	if (rec->vir_events & VIR_EVENT_HANDLE_READABLE)
		pfd.events |= POLLIN;
	if (rec->vir_events & VIR_EVENT_HANDLE_WRITABLE)
		pfd.events |= POLLOUT;
	if (poll(&pfd, 1, 0) > 0)
		events = revents_to_vir(pfd.revents);
	if (!events) {
		if (what & EV_READ)
			events |= VIR_EVENT_HANDLE_READABLE;
		if (what & EV_WRITE)
			events |= VIR_EVENT_HANDLE_WRITABLE;
	}
	events &= rec->vir_events | VIR_EVENT_HANDLE_ERROR | VIR_EVENT_HANDLE_HANGUP;
	if (events)
		rec->hcb(rec->id, rec->fd, events, rec->opaque);
}

static void arm_timeout(struct lv_rec *rec)
{
	struct timeval tv = { rec->timeout_ms / 1000, (rec->timeout_ms % 1000) * 1000 };

	event_del(rec->ev);
	if (rec->timeout_ms >= 0)
		event_add(rec->ev, &tv);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lv_rec *rec = arg;

	/* Re-arm first: the callback may update or remove this very timer. A 0 ms timer added
	 * now expires at the next iteration's timeout processing, so it fires once per iteration.
	 */
	arm_timeout(rec);
	rec->tcb(rec->id, rec->opaque);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	/* Detach the list first: a free callback may remove more records. */
	while (lv.dead) {
		struct lv_rec *list = lv.dead;

		lv.dead = NULL;
		while (list) {
			struct lv_rec *rec = list;

			list = rec->next;
			lv.n_dead--;
			if (rec->ff)
				rec->ff(rec->opaque);
			lv.frees_done++;
			free(rec);
		}
	}
}

static void rec_retire(struct lv_rec *rec)
{
	static const struct timeval zero = { 0, 0 };

	rec_unlink(rec);
	event_free(rec->ev);
	rec->ev = NULL;
	rec->next = lv.dead;
	lv.dead = rec;
	lv.n_dead++;
	if (lv.reaper)
		evtimer_add(lv.reaper, &zero);
}

static int next_id(void)
{
	if (lv.next_id == INT32_MAX)
		lv.next_id = 0;
	return ++lv.next_id;
}

static int add_handle(
	int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff)
{
	struct lv_rec *rec;

	if (!lv.base)
		return -1;
	rec = xcalloc(1, sizeof(*rec));
	*rec = (struct lv_rec){ .kind = LV_HANDLE,
		.id = next_id(),
		.fd = fd,
		.vir_events = events,
		.hcb = cb,
		.opaque = opaque,
		.ff = ff };
	rec->ev = event_new(lv.base, fd, events_to_libevent(events) | EV_PERSIST, handle_cb, rec);
	if (!rec->ev) {
		free(rec);
		return -1;
	}
	if (events_to_libevent(events))
		event_add(rec->ev, NULL);
	rec->next = lv.live;
	lv.live = rec;
	lv.n_handles++;
	return rec->id;
}

static void update_handle(int watch, int events)
{
	struct lv_rec *rec = rec_find(LV_HANDLE, watch);
	short what = events_to_libevent(events);

	if (!rec)
		return;
	rec->vir_events = events;
	event_del(rec->ev);
	event_assign(rec->ev, lv.base, rec->fd, what | EV_PERSIST, handle_cb, rec);
	if (what)
		event_add(rec->ev, NULL);
}

static int remove_handle(int watch)
{
	struct lv_rec *rec = rec_find(LV_HANDLE, watch);

	if (!rec)
		return -1;
	lv.n_handles--;
	rec_retire(rec);
	return 0;
}

static int add_timeout(int timeout_ms, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
	struct lv_rec *rec;

	if (!lv.base)
		return -1;
	rec = xcalloc(1, sizeof(*rec));
	*rec = (struct lv_rec){ .kind = LV_TIMEOUT,
		.id = next_id(),
		.fd = -1,
		.timeout_ms = timeout_ms,
		.tcb = cb,
		.opaque = opaque,
		.ff = ff };
	rec->ev = evtimer_new(lv.base, timeout_cb, rec);
	if (!rec->ev) {
		free(rec);
		return -1;
	}
	arm_timeout(rec);
	rec->next = lv.live;
	lv.live = rec;
	lv.n_timeouts++;
	return rec->id;
}

static void update_timeout(int timer, int timeout_ms)
{
	struct lv_rec *rec = rec_find(LV_TIMEOUT, timer);

	if (!rec)
		return;
	rec->timeout_ms = timeout_ms;
	arm_timeout(rec);
}

static int remove_timeout(int timer)
{
	struct lv_rec *rec = rec_find(LV_TIMEOUT, timer);

	if (!rec)
		return -1;
	lv.n_timeouts--;
	rec_retire(rec);
	return 0;
}

int libvirt_loop_register(struct event_base *base)
{
	if (lv.is_registered)
		return lv.base == base ? 0 : -EBUSY;
	lv.reaper = evtimer_new(base, reap_cb, NULL);
	if (!lv.reaper)
		return -ENOMEM;
	lv.base = base;
	lv.is_registered = true;
	virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout,
		remove_timeout);
	return 0;
}

bool libvirt_loop_is_registered(void)
{
	return lv.is_registered;
}

void libvirt_loop_get_counts(struct libvirt_loop_counts *ret)
{
	*ret = (struct libvirt_loop_counts){ .handles = lv.n_handles,
		.timeouts = lv.n_timeouts,
		.frees_pending = lv.n_dead,
		.frees_done = lv.frees_done };
}

void libvirt_loop_flush(void)
{
	for (int i = 0; i < 100 && lv.dead && lv.base; i++)
		event_base_loop(lv.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

void libvirt_loop_shutdown(void)
{
	if (!lv.base)
		return;
	reap_cb(-1, 0, NULL);
	while (lv.live) {
		struct lv_rec *rec = lv.live;

		lv.live = rec->next;
		event_free(rec->ev);
		free(rec);
	}
	lv.n_handles = lv.n_timeouts = 0;
	event_free(lv.reaper);
	lv.reaper = NULL;
	lv.base = NULL;
}
