/* The QMP client (qmp.h): a blocking unix socket with a poll() deadline per session, one reply
 * line at a time (qemu ends each JSON object with a newline). */
#include "hostd/qmp.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "common/util.h"

struct qmp {
	int fd;
	uint64_t deadline_ns;
	char *buf; /* QMP_REPLY_MAX + 1 */
	size_t len;
	char error[QMP_ERROR_MAX];
};

static int remaining_ms(const struct qmp *q)
{
	uint64_t now = now_monotonic_ns();

	if (now >= q->deadline_ns)
		return 0;
	return (int)((q->deadline_ns - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
}

static int wait_for(struct qmp *q, short events)
{
	struct pollfd p = { .fd = q->fd, .events = events };

	for (;;) {
		int ms = remaining_ms(q);
		if (ms == 0)
			return -ETIMEDOUT;
		int r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		return 0;
	}
}

/* The next line qemu sends, parsed; events are skipped by the caller. */
static int read_object(struct qmp *q, struct json_object **ret)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			size_t n = (size_t)(nl - q->buf);
			*nl = '\0';
			struct json_tokener *tok = json_tokener_new();
			struct json_object *o = json_tokener_parse_ex(tok, q->buf, (int)n);
			bool is_ok = o && json_tokener_get_error(tok) == json_tokener_success &&
				     json_object_is_type(o, json_type_object);
			json_tokener_free(tok);
			memmove(q->buf, nl + 1, q->len - n - 1);
			q->len -= n + 1;
			if (!is_ok) {
				json_object_put(o);
				return -EPROTO;
			}
			*ret = o;
			return 0;
		}
		if (q->len == QMP_REPLY_MAX)
			return -EMSGSIZE;
		int r = wait_for(q, POLLIN);
		if (r < 0)
			return r;
		ssize_t got = recv(q->fd, q->buf + q->len, QMP_REPLY_MAX - q->len, MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -ECONNRESET;
		q->len += (size_t)got;
	}
}

static int send_all(struct qmp *q, const char *s, size_t len)
{
	while (len > 0) {
		int r = wait_for(q, POLLOUT);
		if (r < 0)
			return r;
		ssize_t n = send(q->fd, s, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return -errno;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int qmp_execute(
	struct qmp *q, const char *command, struct json_object *args, struct json_object **ret)
{
	struct json_object *req = json_object_new_object();
	struct json_object *reply = NULL, *v;
	int r;

	q->error[0] = '\0';
	json_object_object_add(req, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(req, "arguments", json_object_get(args));
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	_cleanup_free_ char *line = xasprintf("%s\n", text);
	json_object_put(req);
	r = send_all(q, line, strlen(line));
	if (r < 0)
		return r;
	for (;;) {
		r = read_object(q, &reply);
		if (r < 0)
			return r;
		if (!json_object_object_get_ex(reply, "event", NULL))
			break;
		json_object_put(reply);
	}
	if (json_object_object_get_ex(reply, "return", &v)) {
		if (ret)
			*ret = json_object_get(v);
		json_object_put(reply);
		return 0;
	}
	r = -EPROTO;
	if (json_object_object_get_ex(reply, "error", &v)) {
		struct json_object *desc;
		const char *s = json_object_object_get_ex(v, "desc", &desc) &&
						json_object_is_type(desc, json_type_string)
					? json_object_get_string(desc)
					: "unknown error";
		snprintf(q->error, sizeof(q->error), "%s", s);
		/* one line, printable: it ends up in status and logs */
		for (char *c = q->error; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = ' ';
		r = -EREMOTEIO;
	}
	json_object_put(reply);
	return r;
}

const char *qmp_error(const struct qmp *q)
{
	return q->error;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	free(q->buf);
	free(q);
}

static int qmp_connect(struct qmp *q, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (q->fd < 0)
		return -errno;
	if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN)
		return -errno;
	int r = wait_for(q, POLLOUT);
	if (r < 0)
		return r;
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(q->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

int qmp_open(const char *path, unsigned timeout_ms, struct qmp **ret)
{
	struct qmp *q = xcalloc(1, sizeof(*q));
	struct json_object *greeting = NULL;
	int r;

	q->fd = -1;
	q->buf = xmalloc(QMP_REPLY_MAX + 1);
	q->deadline_ns = now_monotonic_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
	r = qmp_connect(q, path);
	if (r == 0)
		r = read_object(q, &greeting);
	if (r == 0 && !json_object_object_get_ex(greeting, "QMP", NULL))
		r = -EPROTO;
	json_object_put(greeting);
	if (r == 0)
		r = qmp_execute(q, "qmp_capabilities", NULL, NULL);
	if (r < 0) {
		qmp_close(q);
		return r;
	}
	*ret = q;
	return 0;
}
