/* Reading a powercap tree off the event loop. One thread per reader does every file system call
 * (open, stat, read); the loop only hands it requests and takes finished readings, woken through
 * a pipe. A read that never returns (a hung 9p server) keeps that thread, never the loop: the
 * source reports it stalled, and when the reader is let go the thread frees it once the kernel
 * lets the read return. */
#include "guestd/tree_reader.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "common/util.h"

struct tree_reader {
	struct source_reader pub;
	char *root;
	struct event *ev; /* loop side: the pipe's read end */
	int pipe_fd[2];
	pthread_t thread;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* a request, a finished reading, or abandonment */
	/* guarded by lock */
	bool has_request;
	bool is_busy; /* requested and not finished */
	bool has_result;
	bool is_abandoned;
	bool is_orphan; /* abandoned while busy: the thread frees the reader */
	struct source_reading result;

	/* the thread's own */
	struct powercap_tree *tree;
};

static void reader_destroy(struct tree_reader *t)
{
	powercap_tree_free(t->tree);
	source_reading_done(&t->result);
	if (t->pipe_fd[0] >= 0)
		close(t->pipe_fd[0]);
	if (t->pipe_fd[1] >= 0)
		close(t->pipe_fd[1]);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t->root);
	free(t);
}

static _printf_(2, 3) void reading_fail(struct source_reading *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->problem, sizeof(r->problem), fmt, ap);
	va_end(ap);
}

static void tree_close(struct tree_reader *t)
{
	powercap_tree_free(t->tree);
	t->tree = NULL;
}

static int tree_open(struct tree_reader *t, struct source_reading *r)
{
	char err[256] = "";
	struct stat st;
	/* Guests may be upgraded before their hosts: Scaphandre's own qemu tree is read too. */
	int e = powercap_tree_open_flags(
		t->root, POWERCAP_OPEN_SCAPHANDRE_QEMU, &t->tree, err, sizeof(err));

	if (e >= 0 && t->tree->n_zones == 0) {
		powercap_tree_free(t->tree);
		e = -ENODATA;
	}
	if (e < 0) {
		t->tree = NULL;
		/* A file missing in the tree is named by err; "missing" is for the root only. */
		if (e == -ENOENT && stat(t->root, &st) < 0 && errno == ENOENT)
			reading_fail(r, "%s: missing", t->root);
		else if (e == -ENODATA)
			reading_fail(r, "%s: no powercap zones", t->root);
		else
			reading_fail(r, "%s: %s", t->root, err[0] ? err : strerror(-e));
		return e;
	}
	r->is_reopened = true;
	r->layout = t->tree->layout;
	return 0;
}

static bool is_same_root(const struct tree_reader *t)
{
	struct stat path_st, fd_st;

	if (stat(t->root, &path_st) < 0 || fstat(t->tree->root_fd, &fd_st) < 0)
		return false;
	return path_st.st_dev == fd_st.st_dev && path_st.st_ino == fd_st.st_ino;
}

static int heartbeat_read(struct tree_reader *t, struct source_reading *r)
{
	int e = powercap_heartbeat_read(t->tree, &r->hb);

	if (e == -ENOENT) {
		/* Bare-metal sysfs has none: fresh for as long as it can be read. */
		r->has_heartbeat = false;
		return 0;
	}
	if (e < 0) {
		reading_fail(r, "%s/%s: %s", t->root, POWERCAP_HEARTBEAT_FILE, strerror(-e));
		return e;
	}
	r->has_heartbeat = true;
	return 0;
}

/* Every zone first, then hand over: a reading is used whole or not at all. */
static int zones_read(struct tree_reader *t, struct source_reading *r)
{
	r->zones = xreallocarray(r->zones, MAX(t->tree->n_zones, 1), sizeof(*r->zones));
	r->n_zones = t->tree->n_zones;
	for (size_t i = 0; i < t->tree->n_zones; i++) {
		const struct powercap_zone *pz = &t->tree->zones[i];
		struct source_reading_zone *z = &r->zones[i];
		int e = powercap_zone_read(t->tree, pz, &z->energy_uj);

		if (e < 0) {
			reading_fail(r, "%s/%s/energy_uj: %s", t->root, pz->id,
				e == -EINVAL ? "invalid content" : strerror(-e));
			return e;
		}
		snprintf(z->id, sizeof(z->id), "%s", pz->id);
		snprintf(z->name, sizeof(z->name), "%s", pz->name);
		z->package = pz->package;
		/* psys, top-level on client CPUs, already includes the packages. */
		z->is_package = pz->parent < 0 && startswith(pz->name, "package-");
		/* sysfs wraps as RAPL does; powerd's trees exactly at their range */
		powercap_zone_limits(
			pz, t->tree->is_sysfs ? COUNTER_RAPL : COUNTER_EXACT, &z->limits);
	}
	return 0;
}

static int read_once(struct tree_reader *t, struct source_reading *r)
{
	int e;

	if (t->tree && !is_same_root(t)) {
		/* Unmounted, replaced or moved away: what the fds still reach is not the source. */
		tree_close(t);
	}
	if (!t->tree) {
		e = tree_open(t, r);
		if (e < 0)
			return e;
	}
	e = heartbeat_read(t, r);
	if (e < 0)
		return e;
	return zones_read(t, r);
}

static void tree_read(struct tree_reader *t, struct source_reading *r)
{
	bool was_open = t->tree != NULL;
	int e = read_once(t, r);

	if (e < 0 && was_open) {
		/* The tree may have been replaced under the fds we hold (unmounted and mounted
		 * again, or rewritten): try once with a fresh open before calling it down. */
		tree_close(t);
		source_reading_done(r);
		e = read_once(t, r);
	}
	if (e < 0) {
		tree_close(t);
		r->error = e;
		r->is_closed = true;
		r->n_zones = 0;
	}
}

static void *reader_main(void *arg)
{
	struct tree_reader *t = arg;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (!t->has_request && !t->is_abandoned)
			pthread_cond_wait(&t->cond, &t->lock);
		if (t->is_abandoned)
			break;
		t->has_request = false;
		pthread_mutex_unlock(&t->lock);

		struct source_reading r = { 0 };
		tree_read(t, &r); /* may block for as long as the file system does */

		pthread_mutex_lock(&t->lock);
		source_reading_done(&t->result);
		t->result = r;
		t->has_result = true;
		t->is_busy = false;
		pthread_cond_broadcast(&t->cond);
		/* A full pipe already holds a wake-up: nothing is lost when this one fails. */
		ssize_t n = write(t->pipe_fd[1], "r", 1);
		(void)n;
	}
	bool is_orphan = t->is_orphan;
	pthread_mutex_unlock(&t->lock);
	if (is_orphan)
		reader_destroy(t);
	return NULL;
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
	struct tree_reader *t = arg;
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (t->pub.on_ready)
		t->pub.on_ready(t->pub.arg);
}

static int reader_request(struct source_reader *pub)
{
	struct tree_reader *t = (struct tree_reader *)pub;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (t->is_busy) {
		r = -EBUSY;
	} else {
		t->is_busy = true;
		t->has_request = true;
		pthread_cond_broadcast(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

static int reader_take(struct source_reader *pub, struct source_reading *ret)
{
	struct tree_reader *t = (struct tree_reader *)pub;
	int r = -EAGAIN;

	pthread_mutex_lock(&t->lock);
	if (t->has_result) {
		*ret = t->result;
		t->result = (struct source_reading){ 0 };
		t->has_result = false;
		r = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

static int reader_wait(struct source_reader *pub, uint64_t timeout_ns)
{
	struct tree_reader *t = (struct tree_reader *)pub;
	struct timespec ts;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + timeout_ns % NSEC_PER_SEC;
	ts.tv_sec += (time_t)(timeout_ns / NSEC_PER_SEC + ns / NSEC_PER_SEC);
	ts.tv_nsec = (long)(ns % NSEC_PER_SEC);
	pthread_mutex_lock(&t->lock);
	while (t->is_busy && r == 0)
		r = pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	r = t->is_busy ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&t->lock);
	return r;
}

static void reader_free(struct source_reader *pub)
{
	struct tree_reader *t = (struct tree_reader *)pub;
	bool is_orphan;

	if (!t)
		return;
	if (t->ev) {
		event_free(t->ev);
		t->ev = NULL;
	}
	pthread_mutex_lock(&t->lock);
	t->is_abandoned = true;
	/* A thread stuck in a read cannot be waited for: it frees the reader when it is back. */
	is_orphan = t->is_orphan = t->is_busy;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (is_orphan) {
		pthread_detach(t->thread);
		return;
	}
	pthread_join(t->thread, NULL);
	reader_destroy(t);
}

static const struct source_reader_ops tree_reader_ops = {
	.request = reader_request,
	.take = reader_take,
	.wait = reader_wait,
	.free = reader_free,
};

static int reader_start(struct tree_reader *t)
{
	sigset_t all, old;
	int r;

	/* Signals are the loop's: the reader thread never takes one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&t->thread, NULL, reader_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int tree_reader_new(const char *root, struct event_base *base, void (*on_ready)(void *), void *arg,
	struct source_reader **ret)
{
	struct tree_reader *t = xcalloc(1, sizeof(*t));
	pthread_condattr_t ca;
	int r;

	t->pub =
		(struct source_reader){ .ops = &tree_reader_ops, .on_ready = on_ready, .arg = arg };
	t->root = xstrdup(root);
	t->pipe_fd[0] = t->pipe_fd[1] = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pipe2(t->pipe_fd, O_NONBLOCK | O_CLOEXEC) < 0) {
		r = -errno;
		reader_destroy(t);
		return r;
	}
	if (base) {
		t->ev = event_new(base, t->pipe_fd[0], EV_READ | EV_PERSIST, on_pipe, t);
		if (!t->ev || event_add(t->ev, NULL) < 0) {
			if (t->ev)
				event_free(t->ev);
			reader_destroy(t);
			return -ENOMEM;
		}
	}
	r = reader_start(t);
	if (r < 0) {
		if (t->ev)
			event_free(t->ev);
		reader_destroy(t);
		return r;
	}
	*ret = &t->pub;
	return 0;
}
