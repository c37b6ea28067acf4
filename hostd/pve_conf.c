/* Proxmox VE VM configs (pve_conf.h). The format: "key: value" lines, "#" lines (the VM's
 * description), blank lines, then optional sections "[name]" (snapshots, pending changes) that
 * do not describe the running VM. */
#include "hostd/pve_conf.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/util.h"

bool pve_vmid_parse(const char *s, size_t len, uint32_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > 9 || s[0] == '0')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < PVE_VMID_MIN || v > PVE_VMID_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

bool pve_storage_is_valid(const char *storage)
{
	size_t n = strlen(storage);

	if (n == 0 || n > 64 || !islower((unsigned char)storage[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = storage[i];
		if (!islower((unsigned char)c) && !isdigit((unsigned char)c) && c != '-' &&
			c != '_' && c != '.')
			return false;
	}
	return true;
}

bool pve_hookscript_is_powerd(const char *value)
{
	const char *colon = strchr(value, ':');

	if (!colon || !streq(colon + 1, "snippets/" PVE_HOOK_FILE))
		return false;
	_cleanup_free_ char *storage = xstrndup(value, (size_t)(colon - value));
	return pve_storage_is_valid(storage);
}

static bool is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* agent: [enabled=]<0|1>[,fstrim_cloned_disks=<0|1>][,freeze-fs-on-backup=..][,type=<virtio|isa>]
 */
static int parse_agent(const char *v, bool *ret)
{
	bool is_enabled = false, is_virtio = true;
	_cleanup_free_ char *copy = xstrdup(v);
	bool first = true;

	for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
		t = strtok_r(NULL, ",", &save), first = false) {
		char *eq = strchr(t, '=');
		const char *key = eq ? t : first ? "enabled" : NULL;
		const char *val = eq ? eq + 1 : t;
		if (eq)
			*eq = '\0';
		if (!key)
			return -EINVAL;
		if (streq(key, "enabled")) {
			if (!streq(val, "0") && !streq(val, "1"))
				return -EINVAL;
			is_enabled = streq(val, "1");
		} else if (streq(key, "type")) {
			if (!streq(val, "virtio") && !streq(val, "isa"))
				return -EINVAL;
			is_virtio = streq(val, "virtio");
		}
	}
	*ret = is_enabled && is_virtio;
	return 0;
}

static bool is_uuid(const char *s, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool is_dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (is_dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* smbios1: [base64=1][,family=..][,uuid=<UUID>]…: only uuid is taken. */
static int parse_smbios1(const char *v, char *uuid)
{
	for (const char *p = v; *p;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n > 5 && strncmp(p, "uuid=", 5) == 0) {
			if (!is_uuid(p + 5, n - 5))
				return -EINVAL;
			for (size_t i = 0; i < 36; i++)
				uuid[i] = (char)tolower((unsigned char)p[5 + i]);
			uuid[36] = '\0';
		}
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

static int fail(char *err, size_t size, unsigned line, const char *key, const char *what)
{
	snprintf(err, size, "line %u: %s%s%s", line, key ? key : "", key ? ": " : "", what);
	return -EINVAL;
}

int pve_conf_parse(const char *buf, size_t len, struct pve_conf *ret, char *err, size_t err_size)
{
	struct pve_conf c = { 0 };
	unsigned line = 0;

	if (memchr(buf, '\0', len))
		return fail(err, err_size, 1, NULL, "a NUL byte: not a config");
	for (size_t i = 0; i < len;) {
		const char *l = buf + i;
		const char *nl = memchr(l, '\n', len - i);
		size_t n = nl ? (size_t)(nl - l) : len - i;
		i += n + 1;
		line++;
		if (n > 0 && l[n - 1] == '\r')
			n--;
		if (n == 0 || l[0] == '#')
			continue;
		if (l[0] == '[')
			break; /* a snapshot or pending section: not the running VM */
		size_t k = 0;
		while (k < n && (islower((unsigned char)l[k]) || isdigit((unsigned char)l[k]) ||
					l[k] == '_' || l[k] == '-'))
			k++;
		if (k == 0 || k > 64 || k + 1 >= n + 1 || l[k] != ':')
			return fail(err, err_size, line, NULL, "not a \"key: value\" line");
		_cleanup_free_ char *key = xstrndup(l, k);
		const char *v = l + k + 1;
		size_t vn = n - k - 1;
		while (vn > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vn--;
		}
		while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
			vn--;
		for (size_t j = 0; j < vn; j++)
			if ((unsigned char)v[j] < 0x20 || v[j] == 0x7f)
				return fail(err, err_size, line, key, "a control character");
		_cleanup_free_ char *val = xstrndup(v, vn);
		if (streq(key, "name")) {
			if (vn == 0 || vn > PVE_NAME_MAX)
				return fail(err, err_size, line, key, "empty or too long");
			for (size_t j = 0; j < vn; j++)
				if (!is_name_char(val[j]))
					return fail(err, err_size, line, key, "not a DNS name");
			memcpy(c.name, val, vn + 1);
		} else if (streq(key, "hookscript")) {
			if (vn == 0 || vn > PVE_HOOKSCRIPT_MAX)
				return fail(err, err_size, line, key, "empty or too long");
			memcpy(c.hookscript, val, vn + 1);
		} else if (streq(key, "agent")) {
			if (parse_agent(val, &c.has_agent_bus) < 0)
				return fail(err, err_size, line, key, "not an agent setting");
		} else if (streq(key, "lock")) {
			/* qemu-server's lock names: lower case words joined by '-' */
			if (vn == 0 || vn > PVE_LOCK_NAME_MAX)
				return fail(err, err_size, line, key, "empty or too long");
			for (size_t j = 0; j < vn; j++)
				if (!islower((unsigned char)val[j]) && val[j] != '-')
					return fail(err, err_size, line, key, "not a lock name");
			memcpy(c.lock, val, vn + 1);
		} else if (streq(key, "smbios1")) {
			if (parse_smbios1(val, c.uuid) < 0)
				return fail(err, err_size, line, key, "uuid is not a UUID");
		}
	}
	*ret = c;
	return 0;
}

int pve_conf_read(
	const char *config_dir, uint32_t vmid, struct pve_conf *ret, char *err, size_t err_size)
{
	_cleanup_free_ char *path = xasprintf("%s/%u.conf", config_dir, vmid);
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	struct stat st;
	size_t len = 0;
	char why[192];
	int r;

	if (fd < 0) {
		r = -errno;
		snprintf(err, err_size, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, err_size, "%s: not a regular file", path);
		return -EINVAL;
	}
	buf = xmalloc(PVE_CONF_MAX + 1);
	for (;;) {
		ssize_t n = read(fd, buf + len, PVE_CONF_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, err_size, "%s: %s", path, strerror(-r));
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > PVE_CONF_MAX) {
			snprintf(err, err_size, "%s: larger than %u bytes", path, PVE_CONF_MAX);
			return -EFBIG;
		}
	}
	r = pve_conf_parse(buf, len, ret, why, sizeof(why));
	if (r < 0)
		snprintf(err, err_size, "%s: %s", path, why);
	return r;
}
