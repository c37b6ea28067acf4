/* The event loop of powerd-guest. Callbacks only translate events into calls on the collector,
 * the HTTP server and the notifier. */
#include "guestd/daemon.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "common/http.h"
#include "common/log.h"
#include "common/notify.h"
#include "guestd/collector.h"

struct daemon {
	struct event_base *base;
	struct guest_config cfg;
	char *config_path;
	struct collector *collector;
	struct http_server *http;
	struct notify *notify;
	struct event *timer;
	struct event *sig_term, *sig_int, *sig_hup;
	int exit_code;
};

static void daemon_publish(struct daemon *d)
{
	char status[320];

	if (d->http)
		http_server_set_metrics(
			d->http, d->collector->exposition.buf, d->collector->exposition.len);
	collector_status(d->collector, status, sizeof(status));
	notify_status("%s", status);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	/* The reading is done off the loop: daemon_publish() follows when it is in. */
	collector_begin(d->collector, now_monotonic_ns());
}

static void on_collector_update(void *arg)
{
	daemon_publish(arg);
}

static void timer_arm(struct daemon *d)
{
	struct timeval tv = {
		.tv_sec = (time_t)(d->cfg.interval_ms / 1000),
		.tv_usec = (suseconds_t)((d->cfg.interval_ms % 1000) * 1000),
	};

	evtimer_del(d->timer);
	evtimer_add(d->timer, &tv);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	log_info("signal %d: stopping", (int)sig);
	notify_stopping();
	event_base_loopexit(d->base, NULL);
}

static int http_open(struct daemon *d, const char *listen, struct http_server **ret)
{
	struct http_limits limits = HTTP_LIMITS_DEFAULT;
	char err[256] = "";
	int r = http_server_new(d->base, listen, &limits, "powerd-guest", ret, err, sizeof(err));

	if (r < 0)
		log_err("cannot listen on %s: %s", listen, err[0] ? err : strerror(-r));
	return r;
}

/* Serve on listen instead. On failure the old address is kept (d->http NULL if even that failed).
 */
static int daemon_rebind(struct daemon *d, const char *listen)
{
	struct http_server *http = NULL;

	if (http_open(d, listen, &http) == 0)
		goto done;
	/* Sockets from systemd could not be had back (systemd still holds their address): keep
	 * them. */
	if (http_server_is_activated(d->http))
		return -EADDRNOTAVAIL;
	/* The new address may overlap the old one ("[::]:P" and "0.0.0.0:P"): let go first. */
	http_server_free(d->http);
	d->http = NULL;
	if (http_open(d, listen, &http) == 0)
		goto done;
	if (http_open(d, d->cfg.listen, &http) == 0) {
		d->http = http;
		http_server_set_metrics(
			http, d->collector->exposition.buf, d->collector->exposition.len);
	}
	return -EADDRNOTAVAIL;
done:
	http_server_free(d->http);
	d->http = http;
	log_info("listening on %s", listen);
	return 0;
}

static void daemon_reload(struct daemon *d)
{
	struct guest_config cfg;
	char err[512] = "";
	int r;

	notify_reloading();
	r = guest_config_load(d->config_path, &cfg, err, sizeof(err));
	if (r < 0) {
		log_err("reload: %s; keeping the running configuration", err);
		notify_reload_done();
		return;
	}
	if (!streq(cfg.listen, d->cfg.listen)) {
		r = daemon_rebind(d, cfg.listen);
		if (r < 0) {
			guest_config_free(&cfg);
			if (!d->http) {
				d->exit_code = 1;
				event_base_loopexit(d->base, NULL);
				return;
			}
			log_err("reload: keeping the running configuration");
			notify_reload_done();
			return;
		}
	}
	log_set_max_level(guest_config_log_level(&cfg));
	collector_reconfigure(d->collector, &cfg);
	guest_config_free(&d->cfg);
	d->cfg = cfg;
	collector_begin(d->collector, now_monotonic_ns());
	timer_arm(d);
	log_info("configuration reloaded");
	notify_reload_done();
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	daemon_reload(arg);
}

int daemon_new(struct guest_config *cfg, const char *config_path, struct daemon **ret)
{
	struct daemon *d = xcalloc(1, sizeof(*d));
	int r;

	d->base = event_base_new();
	if (!d->base) {
		free(d);
		return -ENOMEM;
	}
	d->cfg = *cfg;
	*cfg = (struct guest_config){ 0 };
	d->config_path = config_path ? xstrdup(config_path) : NULL;
	d->collector = collector_new(&d->cfg);
	collector_set_loop(d->collector, d->base, on_collector_update, d);
	r = http_open(d, d->cfg.listen, &d->http);
	if (r < 0)
		goto fail;
	r = notify_new(d->base, &d->notify);
	if (r < 0) {
		log_err("systemd notification: %s", strerror(-r));
		goto fail;
	}
	/* The timer repeats on the loop's monotonic clock; interval changes re-arm it. */
	d->timer = event_new(d->base, -1, EV_PERSIST, on_timer, d);
	d->sig_term = evsignal_new(d->base, SIGTERM, on_stop, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_stop, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
	if (!d->timer || !d->sig_term || !d->sig_int || !d->sig_hup) {
		r = -ENOMEM;
		goto fail;
	}
	evsignal_add(d->sig_term, NULL);
	evsignal_add(d->sig_int, NULL);
	evsignal_add(d->sig_hup, NULL);
	*ret = d;
	return 0;
fail:
	daemon_free(d);
	return r;
}

int daemon_run(struct daemon *d)
{
	char status[320];

	/* The first sample is the baseline of every counter: take it before saying READY (waiting
	 * for it a bounded time: a source that hangs is served as down). */
	collector_tick(d->collector, now_monotonic_ns());
	timer_arm(d);
	collector_status(d->collector, status, sizeof(status));
	log_info("listening on %s, sampling %s every %llu ms",
		d->cfg.listen[0] ? d->cfg.listen : "systemd sockets", d->cfg.source,
		(unsigned long long)d->cfg.interval_ms);
	notify_ready("%s", status);
	if (event_base_dispatch(d->base) < 0)
		return 1;
	return d->exit_code;
}

void daemon_free(struct daemon *d)
{
	if (!d)
		return;
	if (d->timer)
		event_free(d->timer);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	http_server_free(d->http);
	notify_free(d->notify);
	collector_free(d->collector);
	guest_config_free(&d->cfg);
	free(d->config_path);
	event_base_free(d->base);
	free(d);
}

int daemon_once(const struct guest_config *cfg)
{
	struct collector *c = collector_new(cfg);
	struct timespec ts = {
		.tv_sec = (time_t)(cfg->interval_ms / 1000),
		.tv_nsec = (long)((cfg->interval_ms % 1000) * NSEC_PER_MSEC),
	};
	int r;

	collector_tick(c, now_monotonic_ns());
	/* A one-shot run has no loop to wait in: sleeping is the interval itself. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	r = collector_tick(c, now_monotonic_ns());
	if (write_all(STDOUT_FILENO, c->exposition.buf, c->exposition.len) < 0)
		r = -EIO;
	collector_free(c);
	return r < 0 ? 1 : 0;
}
