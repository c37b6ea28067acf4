/* The daemon object: wires the loop, signals, tick timer, HTTP server, notify and the domain
 * manager together; each callback hands its event to the object that owns it. */
#include "hostd/daemon.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/notify.h"
#include "common/strbuf.h"
#include "hostd/accounting.h"
#include "hostd/domains.h"
#include "hostd/instance.h"
#include "hostd/libvirt_loop.h"
#include "hostd/privsep.h"
#include "hostd/status.h"

struct daemon {
	struct event_base *base;
	struct host_config cfg; /* acct and domains borrow &cfg: a reload swaps its content */
	const char *config_path;
	bool is_default_path;
	bool is_once;
	bool is_ready;
	int once_ticks;
	struct accounting *acct;
	struct domains *domains;
	struct privsep *privsep; /* the HTTP server process; NULL with --once */
	struct notify *notify;
	struct event *tick_ev;
	struct event *sig_ev[3];
	struct strbuf metrics;
	struct strbuf status;
	struct status_state *status_state;
	uint64_t ticks;
	int exit_status;
};

int daemon_load_config(const char *path, bool is_default_path, struct host_config *cfg)
{
	char err[512] = "";
	int r;

	host_config_init(cfg);
	r = host_config_load(path, is_default_path, cfg, err, sizeof(err));
	if (r < 0) {
		log_err("%s", err[0] ? err : strerror(-r));
		host_config_free(cfg);
		return r;
	}
	log_set_max_level(cfg->log_level);
	return 0;
}

static void update_status(struct daemon *d)
{
	double w = accounting_n_zones(d->acct) > 0 ? accounting_host_power_w(d->acct, 0) : 0;
	bool is_connected = domains_is_connected(d->domains);

	notify_status("%zu domains, %.1f W host, %s %s", domains_count(d->domains), w,
		domains_manager_name(d->domains),
		is_connected ? "connected" : "disconnected (retrying)");
}

static void on_attempt(void *arg)
{
	struct daemon *d = arg;

	if (!d->is_ready && !d->is_once) {
		d->is_ready = true;
		notify_ready("%zu domains, %s %s", domains_count(d->domains),
			domains_manager_name(d->domains),
			domains_is_connected(d->domains) ? "connected" : "disconnected (retrying)");
	}
}

static void render(struct daemon *d)
{
	strbuf_reset(&d->metrics);
	accounting_render(d->acct, domains_is_connected(d->domains), &d->metrics);
	domains_render(d->domains, &d->metrics);
}

/* The document `powerd-host status` prints, handed over with the exposition. */
static void send_status(struct daemon *d)
{
	struct status_info info = { .pid = getpid(),
		.is_connected = domains_is_connected(d->domains),
		.interval_ms = d->cfg.interval_ms,
		.ticks = ++d->ticks,
		.server_restarts = privsep_restarts(d->privsep) };

	strbuf_reset(&d->status);
	status_render(&d->status_state, &info, d->domains, d->acct, &d->status);
	privsep_send(
		d->privsep, PRIVSEP_MSG_STATUS, d->status.buf ? d->status.buf : "", d->status.len);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	/* A failed host read is logged by accounting once per streak; the loop goes on. */
	accounting_tick(d->acct);
	if (d->is_once) {
		if (++d->once_ticks < 2)
			return;
		render(d);
		fwrite(d->metrics.buf ? d->metrics.buf : "", 1, d->metrics.len, stdout);
		fflush(stdout);
		event_base_loopbreak(d->base);
		return;
	}
	render(d);
	privsep_send(d->privsep, PRIVSEP_MSG_METRICS, d->metrics.buf ? d->metrics.buf : "",
		d->metrics.len);
	send_status(d);
	update_status(d);
}

static void arm_tick(struct daemon *d)
{
	struct timeval tv = { d->cfg.interval_ms / 1000, (d->cfg.interval_ms % 1000) * 1000 };

	event_del(d->tick_ev);
	event_add(d->tick_ev, &tv);
}

/* The metrics socket (and the status socket) are opened here, by the privileged part; what
 * listens on them is the unprivileged server process (privsep.h). */
static int open_http(struct daemon *d)
{
	return privsep_new(d->base, d->cfg.metrics_listen, d->cfg.status_socket, &d->privsep);
}

static void reload(struct daemon *d)
{
	struct host_config n, old;
	bool is_listen_changed;

	notify_reloading();
	log_info("reloading %s", d->config_path);
	if (daemon_load_config(d->config_path, d->is_default_path, &n) < 0) {
		log_err("reload failed, keeping the running configuration");
		log_set_max_level(d->cfg.log_level);
		notify_reload_done();
		return;
	}
	old = d->cfg;
	d->cfg = n;
	is_listen_changed = !streq(old.metrics_listen, d->cfg.metrics_listen);
	accounting_set_config(d->acct, &d->cfg);
	domains_set_config(d->domains, &d->cfg);
	if (old.interval_ms != d->cfg.interval_ms)
		arm_tick(d);
	if (is_listen_changed)
		privsep_set_listen(d->privsep, d->cfg.metrics_listen);
	host_config_free(&old);
	notify_reload_done();
	update_status(d);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		reload(d);
		return;
	}
	log_info("stopping on signal %d; shares stay mounted for the next start", (int)sig);
	notify_stopping();
	event_base_loopbreak(d->base);
}

static void daemon_free(struct daemon *d)
{
	for (size_t i = 0; i < ARRAY_SIZE(d->sig_ev); i++)
		if (d->sig_ev[i])
			event_free(d->sig_ev[i]);
	if (d->tick_ev)
		event_free(d->tick_ev);
	privsep_free(d->privsep);
	notify_free(d->notify);
	domains_free(d->domains);
	accounting_free(d->acct);
	libvirt_loop_flush();
	libvirt_loop_shutdown();
	strbuf_done(&d->metrics);
	strbuf_done(&d->status);
	status_state_free(d->status_state);
	host_config_free(&d->cfg);
	if (d->base)
		event_base_free(d->base);
}

/* Each domain keeps about five files open (its tree's directories, its CPU-time file), so a
 * hypervisor with a few hundred domains outgrows the usual soft limit of 1024: take the hard one
 * (systemd's default is 524288). The loop is epoll-based, so high fd numbers cost nothing. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open files limit: %s", strerror(errno));
	}
}

/* The counters' origin, kept in share_dir (which domains_new made) for this boot. */
static void set_instance(struct daemon *d)
{
	char instance[CHANNEL_INSTANCE_LEN + 1];
	int r = host_instance_load(d->cfg.share_dir, d->cfg.proc_root, instance);

	if (r < 0) {
		log_warn("cannot keep the host instance id in %s/" MOUNTS_PRIVATE_DIR
			 "/" HOST_INSTANCE_FILE
			 ": %s; guests will rebase their counters at every restart",
			d->cfg.share_dir, strerror(-r));
		return;
	}
	accounting_set_instance(d->acct, instance);
}

static int daemon_setup(struct daemon *d)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	struct event_config *ec;
	int r;

	raise_fd_limit();
	/* Timers on CLOCK_MONOTONIC whatever the wall clock does. */
	ec = event_config_new();
	if (!ec)
		return -ENOMEM;
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	d->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!d->base)
		return -ENOMEM;
	/* Before any connection: libvirt's event implementation is set once per process. */
	r = libvirt_loop_register(d->base);
	if (r < 0)
		return r;
	r = accounting_new(&d->cfg, &d->acct);
	if (r < 0) {
		log_err("cannot set up accounting: %s", strerror(-r));
		return r;
	}
	r = domains_new(d->base, &d->cfg, d->acct, &d->domains);
	if (r < 0)
		return r;
	set_instance(d);
	domains_set_attempt_cb(d->domains, on_attempt, d);
	d->tick_ev = event_new(d->base, -1, d->is_once ? 0 : EV_PERSIST, tick_cb, d);
	if (!d->tick_ev)
		return -ENOMEM;
	if (d->is_once)
		return 0;
	r = open_http(d);
	if (r < 0)
		return r;
	r = notify_new(d->base, &d->notify);
	if (r < 0)
		return r;
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		d->sig_ev[i] = evsignal_new(d->base, sigs[i], signal_cb, d);
		if (!d->sig_ev[i] || evsignal_add(d->sig_ev[i], NULL) < 0)
			return -ENOMEM;
	}
	return 0;
}

int daemon_run(const char *config_path, bool is_default_path, bool is_once)
{
	struct daemon d = {
		.config_path = config_path, .is_default_path = is_default_path, .is_once = is_once
	};
	int r;

	if (daemon_load_config(config_path, is_default_path, &d.cfg) < 0)
		return 2;
	if (host_config_check(&d.cfg, HOST_QEMU_CONF, false) < 0) {
		host_config_free(&d.cfg);
		return 2;
	}
	r = daemon_setup(&d);
	if (r < 0) {
		daemon_free(&d);
		return 1;
	}
	if (host_config_manager(&d.cfg) == MANAGER_PROXMOX)
		log_info("starting: proxmox %s, share_dir %s, interval %llu ms", d.cfg.pve_run_dir,
			d.cfg.share_dir, (unsigned long long)d.cfg.interval_ms);
	else
		log_info("starting: libvirt %s, share_dir %s, interval %llu ms", d.cfg.libvirt_uri,
			d.cfg.share_dir, (unsigned long long)d.cfg.interval_ms);
	domains_start(d.domains);
	if (is_once) {
		/* The first sample now, the second one interval later. */
		tick_cb(-1, 0, &d);
	}
	arm_tick(&d);
	event_base_dispatch(d.base);
	daemon_free(&d);
	return 0;
}
