/* The channel publisher (hostd/channel.c) against real unix sockets standing in for qemu's
 * chardev: records arrive whole and parse, a peer that does not read costs nothing but drops, a
 * closed peer is reconnected, a new path is taken at once. And the host instance id
 * (hostd/instance.c) kept beside its boot_id. */
#include "tests/testutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/socket.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "common/channel_record.h"
#include "hostd/channel.h"
#include "hostd/instance.h"
#include "hostd/mounts.h"

#define INSTANCE "00112233445566778899aabbccddeeff"

struct fx {
	char *dir;
	struct event_base *base;
	struct channel *c;
	struct heartbeat hb;
	uint64_t total_uj[3];
};

static const char *const zone_names[3] = { "package-0", "core", "dram" };

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	return fd;
}

/* The connection the channel made, once it is there. */
static int accept_one(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, 5000), 1);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->dir = tu_mkdtemp("powerd-channel");
	f->base = event_base_new();
	assert_non_null(f->base);
	assert_int_equal(channel_new(f->base, "vm0", &f->c), 0);
	f->hb = (struct heartbeat){ .seq = 1, .interval_ms = 1000, .time_ms = 5 };
	strcpy(f->hb.instance, INSTANCE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	publisher_free(channel_publisher(f->c));
	event_base_free(f->base);
	tu_rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* One tick's worth: seq and energy go up. */
static int publish(struct fx *f)
{
	const struct publish_tick tick = { .hb = &f->hb, .zone_names = zone_names, .n_zones = 3 };

	f->hb.seq++;
	f->total_uj[0] += 1000003;
	f->total_uj[1] += 500001;
	f->total_uj[2] += 7;
	return publisher_publish(channel_publisher(f->c), "vm0", &tick, f->total_uj);
}

/* Read what is there (without waiting past timeout_ms for the first byte) and check that it is
 * whole lines that parse, with seq strictly increasing; returns the number of records. */
static size_t read_records(int fd, int timeout_ms, struct channel_record *last)
{
	static char buf[1 << 20];
	size_t len = 0, n = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t prev_seq = 0;

	while (len < sizeof(buf) && poll(&p, 1, len ? 0 : timeout_ms) == 1) {
		ssize_t k = read(fd, buf + len, sizeof(buf) - len);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	for (size_t pos = 0; pos < len;) {
		char *nl = memchr(buf + pos, '\n', len - pos);
		assert_non_null(nl); /* never a broken last line */
		struct channel_record r;
		assert_int_equal(channel_record_parse(buf + pos, (size_t)(nl - buf - pos), &r), 0);
		assert_true(r.seq > prev_seq);
		prev_seq = r.seq;
		*last = r;
		n++;
		pos = (size_t)(nl - buf) + 1;
	}
	return n;
}

static void run_until_connected(struct fx *f, int timeout_ms)
{
	uint64_t end = now_monotonic_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;

	while (channel_get_state(f->c) != CHANNEL_CONNECTED && now_monotonic_ns() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static void test_records(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *path = xasprintf("%s/sock", f->dir);
	_cleanup_close_ int lfd = listen_at(path);
	struct channel_record r;

	assert_int_equal(channel_get_state(f->c), CHANNEL_OFF);
	assert_string_equal(channel_state_name(CHANNEL_OFF), "off");
	/* not connected: nothing published, nothing counted as a failure */
	assert_int_equal(publish(f), 0);
	assert_int_equal(channel_records_sent(f->c), 0);

	channel_connect_to(f->c, path);
	assert_int_equal(channel_get_state(f->c), CHANNEL_CONNECTED);
	assert_string_equal(channel_path(f->c), path);
	_cleanup_close_ int cfd = accept_one(lfd);
	assert_int_equal(publish(f), 0);
	assert_int_equal(read_records(cfd, 2000, &r), 1);
	assert_int_equal(publish(f), 0);
	assert_int_equal(read_records(cfd, 2000, &r), 1);
	assert_int_equal(r.seq, f->hb.seq);
	assert_string_equal(r.instance, INSTANCE);
	assert_int_equal(r.interval_ms, 1000);
	assert_int_equal(r.n_zones, 3);
	for (size_t z = 0; z < 3; z++) {
		assert_string_equal(r.zones[z].name, zone_names[z]);
		assert_int_equal(r.zones[z].energy_uj, f->total_uj[z]);
	}
	assert_int_equal(channel_records_sent(f->c), 2);
	/* the same path again keeps the connection */
	channel_connect_to(f->c, path);
	assert_int_equal(publish(f), 0);
	assert_int_equal(read_records(cfd, 2000, &r), 1);
}

/* A guest that never reads: every publish returns at once, records are dropped whole while the
 * last one waits unread, and once it reads it finds only that one and then the newest. */
static void test_no_reader(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *path = xasprintf("%s/sock", f->dir);
	_cleanup_close_ int lfd = listen_at(path);
	struct channel_record r;

	channel_connect_to(f->c, path);
	_cleanup_close_ int cfd = accept_one(lfd);
	uint64_t t0 = now_monotonic_ns();
	for (int i = 0; i < 20000; i++)
		assert_int_equal(publish(f), 0);
	uint64_t dt_ms = (now_monotonic_ns() - t0) / NSEC_PER_MSEC;
	print_message("20000 publishes to a full socket: %" PRIu64 " ms\n", dt_ms);
	assert_true(dt_ms < 5000);
	uint64_t sent = channel_records_sent(f->c), dropped = channel_records_dropped(f->c);
	assert_true(dropped > 0);
	assert_int_equal(sent + dropped, 20000);
	/* one record waits for a late reader, never a backlog */
	assert_int_equal(sent, 1);
	assert_int_equal(read_records(cfd, 2000, &r), 1);
	assert_int_equal(r.seq, 2); /* the first one, kept while it waited */
	/* room again: the next one goes through */
	assert_int_equal(publish(f), 0);
	assert_int_equal(read_records(cfd, 2000, &r), 1);
	assert_int_equal(r.seq, f->hb.seq);
	assert_int_equal(channel_get_state(f->c), CHANNEL_CONNECTED);
}

/* qemu closes its end (save, migration): the channel notices at the next write and reconnects
 * from its retry timer; a new path (restore: a new domain id) is taken at once. */
static void test_reconnect(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *path = xasprintf("%s/sock", f->dir);
	_cleanup_free_ char *path2 = xasprintf("%s/sock2", f->dir);
	_cleanup_close_ int lfd = listen_at(path);
	struct channel_record r;

	channel_connect_to(f->c, path);
	int cfd = accept_one(lfd);
	close(cfd);
	assert_int_equal(publish(f), 0);
	/* EPIPE may take a second write to show on an already-closed peer */
	if (channel_get_state(f->c) == CHANNEL_CONNECTED)
		assert_int_equal(publish(f), 0);
	assert_int_equal(channel_get_state(f->c), CHANNEL_CONNECTING);
	run_until_connected(f, 5000);
	assert_int_equal(channel_get_state(f->c), CHANNEL_CONNECTED);
	cfd = accept_one(lfd);
	assert_int_equal(publish(f), 0);
	assert_int_equal(read_records(cfd, 2000, &r), 1);
	assert_int_equal(r.seq, f->hb.seq);
	close(cfd);

	/* the socket is gone for good (qemu exited): retried with backoff, state connecting */
	close(TAKE_FD(lfd));
	unlink(path);
	assert_int_equal(publish(f), 0);
	if (channel_get_state(f->c) == CHANNEL_CONNECTED)
		assert_int_equal(publish(f), 0);
	assert_int_equal(channel_get_state(f->c), CHANNEL_CONNECTING);
	event_base_loop(f->base, EVLOOP_ONCE); /* the retry, failing: ENOENT */
	assert_int_equal(channel_get_state(f->c), CHANNEL_CONNECTING);
	assert_int_equal(publish(f), 0);

	/* a new path: connected at once */
	_cleanup_close_ int lfd2 = listen_at(path2);
	channel_connect_to(f->c, path2);
	assert_int_equal(channel_get_state(f->c), CHANNEL_CONNECTED);
	_cleanup_close_ int cfd2 = accept_one(lfd2);
	assert_int_equal(publish(f), 0);
	assert_int_equal(read_records(cfd2, 2000, &r), 1);

	/* not served: closed, with the reason kept */
	channel_set_unserved(f->c, CHANNEL_HOTPLUG_REFUSED, "no virtio-serial controllers");
	assert_int_equal(channel_get_state(f->c), CHANNEL_HOTPLUG_REFUSED);
	assert_string_equal(channel_reason(f->c), "no virtio-serial controllers");
	assert_string_equal(channel_state_name(channel_get_state(f->c)), "hotplug_refused");
	char c;
	assert_int_equal(read(cfd2, &c, 1), 0); /* the host's end is closed */
}

/* libvirt's socket paths can be longer than sun_path: connected through the directory. */
static void test_long_path(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *deep = xasprintf("%s/%0120d", f->dir, 0);
	_cleanup_free_ char *path = xasprintf("%s/" CHANNEL_PORT_NAME, deep);
	struct channel_record r;

	assert_int_equal(mkdir(deep, 0755), 0);
	assert_true(strlen(path) > 108);
	_cleanup_close_ int dfd = open(deep, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	/* bind through the same trick */
	_cleanup_free_ char *via = xasprintf("/proc/self/fd/%d/" CHANNEL_PORT_NAME, dfd);
	_cleanup_close_ int lfd = listen_at(via);
	channel_connect_to(f->c, path);
	assert_int_equal(channel_get_state(f->c), CHANNEL_CONNECTED);
	_cleanup_close_ int cfd = accept_one(lfd);
	assert_int_equal(publish(f), 0);
	assert_int_equal(read_records(cfd, 2000, &r), 1);
}

/* Drop CAP_DAC_OVERRIDE (as powerd-host.service does) and CAP_DAC_READ_SEARCH from this
 * process's effective and permitted sets. */
static void drop_dac_override(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	assert_int_equal(syscall(SYS_capget, &h, d), 0);
	d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
	d[0].permitted &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
	assert_int_equal(syscall(SYS_capset, &h, d), 0);
}

/* qemu's socket belongs to the qemu user, writable by its group only: powerd-host, root without
 * CAP_DAC_OVERRIDE, connects with that group as its filesystem gid. */
static void test_socket_group(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *path = xasprintf("%s/sock", f->dir);
	_cleanup_close_ int lfd = listen_at(path);

	assert_int_equal(chown(path, 4242, 4242), 0);
	assert_int_equal(chmod(path, 0770), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct event_base *b = event_base_new();
		struct channel *c;
		drop_dac_override();
		/* a plain connect is refused: the test is about the case that needs the group */
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		strcpy(sa.sun_path, path);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != EACCES)
			_exit(2);
		close(fd);
		if (!b || channel_new(b, "vm0", &c) < 0)
			_exit(3);
		channel_connect_to(c, path);
		_exit(channel_get_state(c) == CHANNEL_CONNECTED ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* the connection the child made is there to take */
	close(accept_one(lfd));
}

static void test_instance(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *share = xasprintf("%s/share", f->dir);
	_cleanup_free_ char *proc = xasprintf("%s/proc", f->dir);
	char a[CHANNEL_INSTANCE_LEN + 1], b[CHANNEL_INSTANCE_LEN + 1];

	tu_write(proc, "sys/kernel/random/boot_id", "11111111-2222-3333-4444-555555555555\n");
	/* no .powerd yet: the daemon's mounts_new makes it */
	assert_int_equal(host_instance_load(share, proc, a), -ENOENT);
	tu_write(share, MOUNTS_PRIVATE_DIR "/x", "");
	assert_int_equal(host_instance_load(share, proc, a), 0);
	assert_true(channel_instance_is_valid(a, strlen(a)));
	_cleanup_free_ char *content = tu_read(share, MOUNTS_PRIVATE_DIR "/" HOST_INSTANCE_FILE);
	_cleanup_free_ char *want =
		xasprintf("boot_id 11111111-2222-3333-4444-555555555555\ninstance %s\n", a);
	assert_string_equal(content, want);
	/* the same boot: the same instance */
	assert_int_equal(host_instance_load(share, proc, b), 0);
	assert_string_equal(a, b);
	/* another boot: a new one */
	tu_write(proc, "sys/kernel/random/boot_id", "99999999-2222-3333-4444-555555555555\n");
	assert_int_equal(host_instance_load(share, proc, b), 0);
	assert_string_not_equal(a, b);
	/* a damaged file: remade */
	tu_write(share, MOUNTS_PRIVATE_DIR "/" HOST_INSTANCE_FILE,
		"boot_id 99999999-2222-3333-4444-555555555555\ninstance XYZ\n");
	assert_int_equal(host_instance_load(share, proc, a), 0);
	assert_true(channel_instance_is_valid(a, strlen(a)));
	assert_string_not_equal(a, b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instance, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
