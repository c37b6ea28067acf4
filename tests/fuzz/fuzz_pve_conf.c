/* libFuzzer target: a Proxmox VE VM's config, qemu-server's <vmid>.conf (hostd/pve_conf.c),
 * parsed from a buffer and read from a file as the Proxmox manager and the hook read it. Whatever
 * the bytes:
 *   - the result is 0 or -EINVAL, and an error message is set iff it is not 0: a refusal says
 *     "line N: …" in printable ASCII, bounded by err_size; a success leaves err and nothing else
 *     written, a refusal leaves the result untouched;
 *   - a parsed name, hookscript and uuid are NUL-terminated within their bounds, free of control
 *     characters; the name a DNS name, the uuid 36 lower-case hex digits and dashes;
 *   - the file read gives the same result as the buffer, its error the parse's prefixed with the
 *     path, and no descriptor leaks;
 *   - what follows a section header ([snapshot], [PENDING]) changes nothing, and neither do CRLF
 *     line ends (for an input that has no CR of its own). */
#include <ctype.h>
#include <fcntl.h>

#include "common/util.h"
#include "hostd/pve_conf.h"
#include "tests/fuzz/fuzz.h"

#define ERR_SIZE 192 /* as pve_conf_read's own buffer for the parse's message */
#define VMID 100

static char *conf_dir;

static void conf_dir_remove(void)
{
	_cleanup_free_ char *path = xasprintf("%s/%u.conf", conf_dir, VMID);

	unlink(path);
	rmdir(conf_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	fuzz_quiet();
	conf_dir = xasprintf("%s/powerd-fuzz-pve-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(conf_dir))
		abort();
	atexit(conf_dir_remove);
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), l = strlen(suffix);

	return n >= l && streq(s + n - l, suffix);
}

static bool is_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static void check_conf(const struct pve_conf *c)
{
	size_t n = strnlen(c->name, sizeof(c->name));
	size_t h = strnlen(c->hookscript, sizeof(c->hookscript));
	size_t u = strnlen(c->uuid, sizeof(c->uuid));

	if (n > PVE_NAME_MAX || h > PVE_HOOKSCRIPT_MAX || (u != 0 && u != 36))
		abort();
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)c->name[i]) && !strchr("-._", c->name[i]))
			abort();
	if (has_control(c->hookscript))
		abort();
	for (size_t i = 0; i < u; i++) {
		bool is_dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (is_dash ? c->uuid[i] != '-'
			    : !isdigit((unsigned char)c->uuid[i]) && !strchr("abcdef", c->uuid[i]))
			abort();
	}
	if (pve_hookscript_is_powerd(c->hookscript) &&
		!ends_with(c->hookscript, ":snippets/" PVE_HOOK_FILE))
		abort();
}

static bool same_conf(const struct pve_conf *a, const struct pve_conf *b)
{
	return streq(a->name, b->name) && streq(a->hookscript, b->hookscript) &&
	       a->has_agent_bus == b->has_agent_bus && streq(a->uuid, b->uuid);
}

struct result {
	int r;
	struct pve_conf conf;
	char err[ERR_SIZE];
};

/* Parse, checking what is written where. */
static void parse(const char *buf, size_t len, struct result *ret)
{
	struct pve_conf canary;

	memset(&ret->conf, 0xa5, sizeof(ret->conf));
	canary = ret->conf;
	memset(ret->err, 'X', sizeof(ret->err));
	ret->r = pve_conf_parse(buf, len, &ret->conf, ret->err, sizeof(ret->err));
	if (ret->r == 0) {
		for (size_t i = 0; i < sizeof(ret->err); i++)
			if (ret->err[i] != 'X')
				abort();
		ret->err[0] = '\0';
		check_conf(&ret->conf);
		return;
	}
	if (ret->r != -EINVAL || memcmp(&ret->conf, &canary, sizeof(canary)) != 0)
		abort();
	if (strnlen(ret->err, sizeof(ret->err)) == sizeof(ret->err) ||
		!startswith(ret->err, "line ") || !is_printable(ret->err))
		abort();
}

static bool same_result(const struct result *a, const struct result *b)
{
	return a->r == b->r && streq(a->err, b->err) && (a->r < 0 || same_conf(&a->conf, &b->conf));
}

/* The same bytes as a file in conf_dir, read by pve_conf_read. */
static void check_read(const uint8_t *data, size_t size, const struct result *want)
{
	_cleanup_free_ char *path = xasprintf("%s/%u.conf", conf_dir, VMID);
	unsigned fds = fuzz_fd_count();
	struct pve_conf c;
	char err[512];
	int r;

	{
		_cleanup_close_ int fd =
			open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0 || write_all(fd, data, size) < 0)
			abort();
	}
	err[0] = '\0';
	r = pve_conf_read(conf_dir, VMID, &c, err, sizeof(err));
	if (r != want->r || fuzz_fd_count() != fds)
		abort();
	if (r == 0) {
		if (!same_conf(&c, &want->conf))
			abort();
		return;
	}
	_cleanup_free_ char *want_err = xasprintf("%s: %s", path, want->err);
	if (!streq(err, want_err))
		abort();
	/* a short buffer: cut, still terminated, nothing written past it */
	char small[12];
	memset(small, 'X', sizeof(small));
	if (pve_conf_read(conf_dir, VMID, &c, small, 8) != r || strnlen(small, 8) != 7 ||
		small[8] != 'X' || small[11] != 'X')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char section[] = "\n[PENDING]\nname: not/a-name\nagent: 2\n";
	const char *s = (const char *)data;
	struct result res, other;

	if (size > PVE_CONF_MAX)
		return 0;
	parse(s, size, &res);
	check_read(data, size, &res);

	/* a section after it: not the running VM, not parsed */
	_cleanup_free_ char *tail = xmalloc(size + sizeof(section));
	memcpy(tail, s, size);
	memcpy(tail + size, section, sizeof(section) - 1);
	parse(tail, size + sizeof(section) - 1, &other);
	if (!same_result(&res, &other))
		abort();

	/* CRLF line ends */
	if (!memchr(s, '\r', size)) {
		_cleanup_free_ char *crlf = xmalloc(2 * size + 1);
		size_t n = 0;

		for (size_t i = 0; i < size; i++) {
			if (s[i] == '\n')
				crlf[n++] = '\r';
			crlf[n++] = s[i];
		}
		parse(crlf, n, &other);
		if (!same_result(&res, &other))
			abort();
	}
	return 0;
}
