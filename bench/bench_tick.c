/* The CPU cost of powerd-host's real tick (accounting_tick: sensor read, host and domain CPU
 * time, attribution, every domain's publishers) against a fixture of N domains on tmpfs.
 *   bench_tick N [RUNS] [--publish tree|channel|both|none]
 * tree (bench=tick): each domain's tree written, as powerd-host does for a share; channel
 * (bench=tick_channel): one record a domain into a connected unix socket, drained between ticks
 * as qemu would (not timed); both (bench=tick_both); none
 * (bench=tick_none): neither, the cost the publishers add to. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "bench/harness.h"
#include "common/log.h"
#include "common/util.h"
#include <event2/event.h>

#include "hostd/accounting.h"
#include "hostd/channel.h"
#include "hostd/host_config.h"

/* The qemu side of every domain's channel: listening sockets, then the accepted connections. */
struct qemu_side {
	char *dir;
	int *listen_fds, *conn_fds;
	size_t n;
};

static void qemu_listen(struct qemu_side *q, size_t i, char *path, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(path, size, "%s/c%zu", q->dir, i);
	if (strlen(path) >= sizeof(sa.sun_path))
		bench_die(path, ENAMETOOLONG);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	q->listen_fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->listen_fds[i] < 0 ||
		bind(q->listen_fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		listen(q->listen_fds[i], 1) < 0)
		bench_die("listen", errno);
}

static void qemu_accept(struct qemu_side *q, size_t i)
{
	q->conn_fds[i] = accept4(q->listen_fds[i], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (q->conn_fds[i] < 0)
		bench_die("accept", errno);
	close(q->listen_fds[i]);
	q->listen_fds[i] = -1;
}

struct bench_arg {
	struct accounting *a;
	struct qemu_side *q;
};

static int tick(void *arg)
{
	return accounting_tick(((struct bench_arg *)arg)->a);
}

/* What qemu does between two ticks: take every record (not timed). */
static void drain(void *arg)
{
	struct qemu_side *q = ((struct bench_arg *)arg)->q;
	char buf[4096];

	for (size_t i = 0; i < q->n; i++)
		while (read(q->conn_fds[i], buf, sizeof(buf)) > 0)
			;
}

static void qemu_stop(struct qemu_side *q)
{
	for (size_t i = 0; i < q->n; i++) {
		close(q->conn_fds[i]);
		char path[128];
		snprintf(path, sizeof(path), "%s/c%zu", q->dir, i);
		unlink(path);
	}
	rmdir(q->dir);
	free(q->listen_fds);
	free(q->conn_fds);
}

static void set_str(char **field, const char *value)
{
	free(*field);
	*field = xstrdup(value);
}

int main(int argc, char **argv)
{
	struct host_config cfg;
	struct accounting *a;
	struct fixture *f;
	struct bench_result res;
	unsigned runs = 5;
	size_t n;
	char path[64];
	const char *publish = "tree";
	int r;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_tick N [RUNS] [--publish tree|channel|both|none]\n");
		return 2;
	}
	n = strtoul(argv[1], NULL, 10);
	for (int i = 2; i < argc; i++) {
		if (streq(argv[i], "--publish") && i + 1 < argc)
			publish = argv[++i];
		else
			runs = (unsigned)strtoul(argv[i], NULL, 10);
	}
	bool has_tree = streq(publish, "tree") || streq(publish, "both");
	bool has_channel = streq(publish, "channel") || streq(publish, "both");
	if (!has_tree && !has_channel && !streq(publish, "none")) {
		fprintf(stderr, "bench_tick: --publish tree|channel|both|none\n");
		return 2;
	}
	struct event_base *base = event_base_new();
	struct qemu_side q = { .n = has_channel ? n : 0 };
	struct channel **channels = xcalloc(n ? n : 1, sizeof(*channels));
	if (has_channel) {
		char tmpl[] = "/tmp/powerd-bench-chan.XXXXXX";
		if (!base || !mkdtemp(tmpl))
			bench_die("channel set-up", errno);
		q.dir = xstrdup(tmpl);
		q.listen_fds = xcalloc(n, sizeof(int));
		q.conn_fds = xcalloc(n, sizeof(int));
	}
	bench_raise_nofile();
	log_set_max_level(LOG_WARNING);
	fixture_new(n, &f);

	host_config_init(&cfg);
	set_str(&cfg.powercap_root, f->powercap_root);
	set_str(&cfg.proc_root, f->proc_root);
	set_str(&cfg.cgroup_root, f->cgroup_root);
	r = accounting_new(&cfg, &a);
	if (r < 0)
		bench_die("accounting_new", -r);
	struct acct_domain *last = NULL;
	for (size_t i = 0; i < n; i++) {
		struct acct_domain *d;

		snprintf(path, sizeof(path), "vm%zu", i);
		_cleanup_close_ int fd =
			openat(f->trees_fd, path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			bench_die(path, errno);
		r = accounting_add_domain(a, path, has_tree ? fd : -1, &d);
		if (r < 0)
			bench_die(path, -r);
		if (has_channel) {
			char sock[128];
			qemu_listen(&q, i, sock, sizeof(sock));
			if (channel_new(base, path, &channels[i]) < 0)
				bench_die("channel_new", ENOMEM);
			channel_connect_to(channels[i], sock);
			if (channel_get_state(channels[i]) != CHANNEL_CONNECTED)
				bench_die(sock, ECONNREFUSED);
			qemu_accept(&q, i);
			accounting_domain_set_publisher(
				d, PUBLISH_CHANNEL, channel_publisher(channels[i]));
		}
		r = accounting_domain_set_pid(a, d, (pid_t)(FIXTURE_PID_BASE + i));
		if (r < 0)
			bench_die(path, -r);
		last = d;
	}

	struct bench_arg arg = { .a = a, .q = &q };
	bench_measure_prepared(f, tick, has_channel ? drain : NULL, &arg, runs, 0, &res);
	uint64_t sent = 0, dropped = 0;
	for (size_t i = 0; has_channel && i < n; i++) {
		sent += channel_records_sent(channels[i]);
		dropped += channel_records_dropped(channels[i]);
	}
	/* a dropped record costs less than a sent one: say so if any was */
	if (dropped > 0)
		fprintf(stderr, "bench_tick: %" PRIu64 " records dropped, %" PRIu64 " sent\n",
			dropped, sent);

	/* a tick that attributed nothing would be cheap for the wrong reason */
	if (last && accounting_domain_energy_uj(last, 0) == 0)
		fprintf(stderr, "bench_tick: domain %s got no energy: check the fixture\n",
			accounting_domain_name(last));
	bench_print(has_tree && has_channel ? "tick_both"
		    : has_channel	    ? "tick_channel"
		    : has_tree		    ? "tick"
					    : "tick_none",
		n, &res);

	accounting_free(a);
	if (has_channel)
		qemu_stop(&q);
	free(channels);
	event_base_free(base);
	host_config_free(&cfg);
	fixture_free(f);
	return 0;
}
