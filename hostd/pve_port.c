/* Plugging the energy channel's port over QMP (pve_port.h). One QMP session per call: connect,
 * look, plug, close. */
#include "hostd/pve_port.h"

#include <stdio.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/util.h"
#include "hostd/channel.h"
#include "hostd/qmp.h"

char *pve_port_qmp_path(const char *run_dir, uint32_t vmid)
{
	return xasprintf("%s/%u.qmp", run_dir, vmid);
}

char *pve_port_socket_path(const char *run_dir, uint32_t vmid)
{
	return xasprintf("%s/%u.powerd", run_dir, vmid);
}

static int open_session(const char *run_dir, uint32_t vmid, unsigned timeout_ms, struct qmp **ret,
	char *err, size_t err_size)
{
	_cleanup_free_ char *path = pve_port_qmp_path(run_dir, vmid);
	int r = qmp_open(path, timeout_ms, ret);

	if (r < 0)
		snprintf(err, err_size, "QMP %s: %s", path,
			r == -ETIMEDOUT ? "no answer in time (another client holds it?)"
					: strerror(-r));
	return r;
}

/* Whether the device is there already, with our port name. */
static bool has_port(struct qmp *q)
{
	struct json_object *args = json_object_new_object();
	struct json_object *v = NULL;
	bool is_ours;

	json_object_object_add(
		args, "path", json_object_new_string("/machine/peripheral/" PVE_PORT_DEVICE_ID));
	json_object_object_add(args, "property", json_object_new_string("name"));
	is_ours = qmp_execute(q, "qom-get", args, &v) == 0 &&
		  json_object_is_type(v, json_type_string) &&
		  streq(json_object_get_string(v), CHANNEL_PORT_NAME);
	json_object_put(v);
	json_object_put(args);
	return is_ours;
}

static int chardev_add(struct qmp *q, const char *socket_path, bool *ret_added)
{
	struct json_object *args = json_object_new_object();
	struct json_object *backend = json_object_new_object();
	struct json_object *data = json_object_new_object();
	struct json_object *addr = json_object_new_object();
	struct json_object *unix_data = json_object_new_object();
	int r;

	json_object_object_add(unix_data, "path", json_object_new_string(socket_path));
	json_object_object_add(addr, "type", json_object_new_string("unix"));
	json_object_object_add(addr, "data", unix_data);
	json_object_object_add(data, "addr", addr);
	json_object_object_add(data, "server", json_object_new_boolean(1));
	json_object_object_add(data, "wait", json_object_new_boolean(0));
	json_object_object_add(backend, "type", json_object_new_string("socket"));
	json_object_object_add(backend, "data", data);
	json_object_object_add(args, "id", json_object_new_string(PVE_PORT_CHARDEV_ID));
	json_object_object_add(args, "backend", backend);
	r = qmp_execute(q, "chardev-add", args, NULL);
	json_object_put(args);
	*ret_added = r == 0;
	/* left by an earlier attempt whose device_add failed: use it */
	if (r == -EREMOTEIO && strstr(qmp_error(q), "already exists"))
		return 0;
	return r;
}

static int device_add(struct qmp *q)
{
	struct json_object *args = json_object_new_object();
	int r;

	json_object_object_add(args, "driver", json_object_new_string("virtserialport"));
	json_object_object_add(args, "id", json_object_new_string(PVE_PORT_DEVICE_ID));
	json_object_object_add(args, "bus", json_object_new_string(PVE_PORT_BUS));
	json_object_object_add(args, "nr", json_object_new_int(PVE_PORT_NR));
	json_object_object_add(args, "chardev", json_object_new_string(PVE_PORT_CHARDEV_ID));
	json_object_object_add(args, "name", json_object_new_string(CHANNEL_PORT_NAME));
	r = qmp_execute(q, "device_add", args, NULL);
	json_object_put(args);
	return r;
}

static int remove_by_id(struct qmp *q, const char *command, const char *id)
{
	struct json_object *args = json_object_new_object();
	int r;

	json_object_object_add(args, "id", json_object_new_string(id));
	r = qmp_execute(q, command, args, NULL);
	json_object_put(args);
	return r;
}

/* Whether qemu waits for an incoming migration's state (started with -incoming). */
static int is_incoming(struct qmp *q, bool *ret)
{
	struct json_object *v = NULL, *status;
	int r = qmp_execute(q, "query-status", NULL, &v);

	if (r == 0 && json_object_object_get_ex(v, "status", &status))
		*ret = streq(json_object_get_string(status), "inmigrate");
	else if (r == 0)
		r = -EBADMSG;
	json_object_put(v);
	return r;
}

int pve_port_plug(const char *run_dir, uint32_t vmid, unsigned timeout_ms, bool is_incoming_ok,
	enum pve_port_result *ret, char *err, size_t err_size)
{
	_cleanup_free_ char *socket_path = pve_port_socket_path(run_dir, vmid);
	struct qmp *q = NULL;
	bool is_added = false, is_in = false;
	int r;

	err[0] = '\0';
	r = open_session(run_dir, vmid, timeout_ms, &q, err, err_size);
	if (r < 0)
		return r;
	if (has_port(q)) {
		*ret = PVE_PORT_WAS_PLUGGED;
		goto out;
	}
	/* Only the hook matches a migration's target to its source: anyone else's port there
	 * would fail the migration after the source finished. */
	if (!is_incoming_ok) {
		r = is_incoming(q, &is_in);
		if (r == 0 && is_in)
			r = -EAGAIN;
		if (r < 0) {
			snprintf(err, err_size, "query-status: %s",
				r == -EAGAIN	  ? "waiting for an incoming migration"
				: r == -EREMOTEIO ? qmp_error(q)
						  : strerror(-r));
			goto out;
		}
	}
	r = chardev_add(q, socket_path, &is_added);
	if (r < 0) {
		snprintf(err, err_size, "chardev-add %s: %s", socket_path,
			r == -EREMOTEIO ? qmp_error(q) : strerror(-r));
		goto out;
	}
	r = device_add(q);
	if (r == -EREMOTEIO && strstr(qmp_error(q), "Duplicate device ID")) {
		*ret = PVE_PORT_WAS_PLUGGED;
		r = 0;
		goto out;
	}
	if (r < 0) {
		if (r == -EREMOTEIO && strstr(qmp_error(q), "Bus '" PVE_PORT_BUS "' not found"))
			snprintf(err, err_size,
				"no virtio-serial bus " PVE_PORT_BUS
				" (the guest agent's, agent: 1)");
		else
			snprintf(err, err_size, "device_add: %s",
				r == -EREMOTEIO ? qmp_error(q) : strerror(-r));
		if (r == -EREMOTEIO && strstr(qmp_error(q), "Bus '" PVE_PORT_BUS "' not found"))
			r = -ENODEV;
		if (is_added)
			remove_by_id(q, "chardev-remove", PVE_PORT_CHARDEV_ID);
		goto out;
	}
	*ret = PVE_PORT_PLUGGED;
out:
	qmp_close(q);
	return r;
}

int pve_port_unplug(
	const char *run_dir, uint32_t vmid, unsigned timeout_ms, char *err, size_t err_size)
{
	struct qmp *q = NULL;
	int r;

	err[0] = '\0';
	r = open_session(run_dir, vmid, timeout_ms, &q, err, err_size);
	if (r < 0)
		return r;
	r = remove_by_id(q, "device_del", PVE_PORT_DEVICE_ID);
	if (r < 0 && !(r == -EREMOTEIO && strstr(qmp_error(q), "not found"))) {
		snprintf(err, err_size, "device_del: %s",
			r == -EREMOTEIO ? qmp_error(q) : strerror(-r));
		goto out;
	}
	/* device_del completes asynchronously (the port is finalised after an RCU grace
	 * period): the chardev stays busy until then */
	r = remove_by_id(q, "chardev-remove", PVE_PORT_CHARDEV_ID);
	for (int i = 0; i < 100 && r == -EREMOTEIO && strstr(qmp_error(q), "busy"); i++) {
		usleep(10 * 1000);
		r = remove_by_id(q, "chardev-remove", PVE_PORT_CHARDEV_ID);
	}
	if (r < 0 && !(r == -EREMOTEIO && strstr(qmp_error(q), "not found"))) {
		snprintf(err, err_size, "chardev-remove: %s",
			r == -EREMOTEIO ? qmp_error(q) : strerror(-r));
		goto out;
	}
	r = 0;
out:
	qmp_close(q);
	return r;
}

int pve_port_has_bus(const char *run_dir, uint32_t vmid, unsigned timeout_ms, bool *ret, char *err,
	size_t err_size)
{
	struct json_object *args = json_object_new_object();
	struct qmp *q = NULL;
	int r;

	err[0] = '\0';
	r = open_session(run_dir, vmid, timeout_ms, &q, err, err_size);
	if (r < 0) {
		json_object_put(args);
		return r;
	}
	json_object_object_add(args, "path", json_object_new_string("/machine/peripheral/qga0"));
	json_object_object_add(args, "property", json_object_new_string("type"));
	r = qmp_execute(q, "qom-get", args, NULL);
	*ret = r == 0;
	if (r == -EREMOTEIO && strstr(qmp_error(q), "not found"))
		r = 0;
	else if (r < 0)
		snprintf(err, err_size, "qom-get qga0: %s",
			r == -EREMOTEIO ? qmp_error(q) : strerror(-r));
	json_object_put(args);
	qmp_close(q);
	return r;
}

int pve_port_quit(const char *run_dir, uint32_t vmid, unsigned timeout_ms)
{
	struct qmp *q = NULL;
	char err[256];
	int r = open_session(run_dir, vmid, timeout_ms, &q, err, sizeof(err));

	if (r < 0)
		return r;
	r = qmp_execute(q, "quit", NULL, NULL);
	qmp_close(q);
	/* qemu may be gone before its reply is read */
	return r == -ECONNRESET || r == -EPIPE ? 0 : r;
}
