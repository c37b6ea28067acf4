/* Reading powercap trees: the kernel's /sys/class/powercap, or a per-domain tree kept by
 * powerd-host (DESIGN.md §1). Zones are found by name, opened once, and their energy_uj read
 * on demand; plus the wrap-aware counter and the heartbeat file. */
#include "common/powercap.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "common/channel_record.h"
#include "common/util.h"

/* A counter is a few digits: anything longer than this is garbage, not a value to parse. */
#define POWERCAP_VALUE_MAX 64
#define HEARTBEAT_SIZE_MAX 512

static const char *const zone_prefixes[] = { "intel-rapl", "amd-rapl" };

static void set_err(char *err, size_t err_size, const char *fmt, ...) _printf_(3, 4);
static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (!err || err_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

/* "intel-rapl:3" -> prefix 0, n 3, no m; "intel-rapl:3:1" -> n 3, m 1. Anything else (the
 * control type "intel-rapl", "intel-rapl-mmio:0", stray files) is not a zone. */
static bool parse_zone_id(
	const char *id, size_t *ret_prefix, unsigned *ret_n, bool *ret_has_m, unsigned *ret_m)
{
	for (size_t i = 0; i < ARRAY_SIZE(zone_prefixes); i++) {
		size_t plen = strlen(zone_prefixes[i]);
		char nbuf[16], mbuf[16];
		uint64_t n, m = 0;

		if (strncmp(id, zone_prefixes[i], plen) != 0 || id[plen] != ':')
			continue;
		const char *rest = id + plen + 1;
		const char *colon = strchr(rest, ':');
		size_t nlen = colon ? (size_t)(colon - rest) : strlen(rest);
		if (nlen == 0 || nlen >= sizeof(nbuf))
			return false;
		memcpy(nbuf, rest, nlen);
		nbuf[nlen] = '\0';
		if (parse_u64(nbuf, &n) < 0 || n > 65535)
			return false;
		if (colon) {
			if (strlen(colon + 1) >= sizeof(mbuf))
				return false;
			strcpy(mbuf, colon + 1);
			if (parse_u64(mbuf, &m) < 0 || m > 65535)
				return false;
		}
		*ret_prefix = i;
		*ret_n = (unsigned)n;
		*ret_has_m = colon != NULL;
		*ret_m = (unsigned)m;
		return true;
	}
	return false;
}

struct zone_scan {
	struct powercap_zone z;
	size_t prefix;
	unsigned n, m;
	bool is_sub;
	bool is_nameless; /* a lenient tree's package without a name file: named package-N */
	bool is_skipped;  /* a lenient tree's subzone without name or energy_uj */
};

static void zone_scan_close(struct zone_scan *s)
{
	if (s->z.dir_fd >= 0)
		close(s->z.dir_fd);
	if (s->z.energy_fd >= 0)
		close(s->z.energy_fd);
	s->z.dir_fd = s->z.energy_fd = -1;
}

static int read_energy_fd(int fd, uint64_t *ret)
{
	char buf[POWERCAP_VALUE_MAX];
	size_t len;

	int r = pread_all(fd, buf, sizeof(buf), &len);
	if (r == -EFBIG)
		return -EINVAL;
	if (r < 0)
		return r;
	r = parse_u64_content(buf, len, ret);
	return r < 0 ? -EINVAL : 0;
}

static int open_energy(int dir_fd)
{
	int fd = openat(
		dir_fd, "energy_uj", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* Quote content for a message: printable ASCII only, bounded. */
static void quote_content(const char *buf, size_t len, char *out, size_t size)
{
	size_t o = 0;

	if (len > 0 && buf[len - 1] == '\n')
		len--;
	for (size_t i = 0; i < len && o + 5 < size; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c >= 0x20 && c < 0x7f)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

/* Open one zone directory (dirfd/id, following a final symlink only when asked) and read what
 * does not change: name and max_energy_range_uj. energy_uj is read once to show it is there. */
static int zone_open(struct powercap_tree *t, int dirfd, const char *id, const char *where,
	bool follow, struct zone_scan *s, char *err, size_t err_size)
{
	char buf[POWERCAP_VALUE_MAX];
	char quoted[POWERCAP_VALUE_MAX * 4];
	size_t len;
	uint64_t v;
	int r;

	snprintf(s->z.id, sizeof(s->z.id), "%s", id);
	s->z.dir_fd = s->z.energy_fd = -1;
	s->z.parent = -1;
	s->z.dir_fd =
		openat(dirfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
	if (s->z.dir_fd < 0) {
		r = -errno;
		set_err(err, err_size, "%s%s: %s", where, id, strerror(-r));
		return r;
	}

	r = read_file_at(s->z.dir_fd, "name", buf, POWERCAP_NAME_MAX, &len);
	if (r == -ENOENT && t->is_lenient) {
		/* Scaphandre's qemu exporter writes intel-rapl:0/energy_uj and an empty
		 * intel-rapl:0:0/, nothing else: its reader skips a subzone without a name. */
		if (s->is_sub) {
			s->is_skipped = true;
			return 0;
		}
		len = (size_t)snprintf(buf, sizeof(buf), "package-%u", s->n);
		s->is_nameless = true;
		r = 0;
	}
	if (r < 0) {
		set_err(err, err_size, "%s%s/name: %s", where, id,
			r == -EFBIG ? "name too long" : strerror(-r));
		return r == -EFBIG ? -EINVAL : r;
	}
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	bool is_name_ok = len > 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f || buf[i] == '/')
			is_name_ok = false;
	if (!is_name_ok) {
		quote_content(buf, len, quoted, sizeof(quoted));
		set_err(err, err_size, "%s%s/name: invalid content '%s'", where, id, quoted);
		return -EINVAL;
	}
	memcpy(s->z.name, buf, len + 1);

	r = read_file_at(s->z.dir_fd, "max_energy_range_uj", buf, sizeof(buf), &len);
	if (r >= 0) {
		if (parse_u64_content(buf, len, &v) < 0) {
			quote_content(buf, len, quoted, sizeof(quoted));
			set_err(err, err_size, "%s%s/max_energy_range_uj: invalid content '%s'",
				where, id, quoted);
			return -EINVAL;
		}
		s->z.max_energy_range_uj = v;
		s->z.has_max_energy_range = true;
	} else if (r == -EFBIG) {
		set_err(err, err_size, "%s%s/max_energy_range_uj: invalid content (too long)",
			where, id);
		return -EINVAL;
	}
	/* Missing or unreadable: the zone still counts, without wrap correction. */

	_cleanup_close_ int fd = open_energy(s->z.dir_fd);
	if (fd == -ENOENT && t->is_lenient && s->is_sub) {
		s->is_skipped = true;
		return 0;
	}
	if (fd < 0) {
		set_err(err, err_size, "%s%s/energy_uj: %s", where, id, strerror(-fd));
		return fd;
	}
	r = pread_all(fd, buf, sizeof(buf), &len);
	if (r == 0)
		r = parse_u64_content(buf, len, &v) < 0 ? -EINVAL : 0;
	else if (r == -EFBIG)
		len = sizeof(buf) - 1, r = -EINVAL;
	if (r == -EINVAL) {
		quote_content(buf, len, quoted, sizeof(quoted));
		set_err(err, err_size, "%s%s/energy_uj: invalid content '%s'", where, id, quoted);
		return r;
	}
	if (r < 0) {
		set_err(err, err_size, "%s%s/energy_uj: %s", where, id, strerror(-r));
		return r;
	}
	/* sysfs attributes produce a fresh value at every read from offset 0; files elsewhere are
	 * replaced by rename, so an open descriptor would keep seeing the old one. */
	if (t->is_sysfs)
		s->z.energy_fd = TAKE_FD(fd);
	return 0;
}

static int zone_scan_cmp(const void *a, const void *b)
{
	const struct zone_scan *x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	if (x->is_sub != y->is_sub)
		return x->is_sub ? 1 : -1;
	if (x->m != y->m)
		return x->m < y->m ? -1 : 1;
	return 0;
}

struct scan_list {
	struct zone_scan *v;
	size_t n;
};

static void scan_list_done(struct scan_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		zone_scan_close(&l->v[i]);
	free(l->v);
	*l = (struct scan_list){ 0 };
}

static bool scan_list_has(const struct scan_list *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->v[i].z.id, id))
			return true;
	return false;
}

static int scan_list_add(struct scan_list *l, struct zone_scan *s, char *err, size_t err_size)
{
	if (l->n >= POWERCAP_ZONES_MAX) {
		set_err(err, err_size, "more than %d zones", POWERCAP_ZONES_MAX);
		zone_scan_close(s);
		return -E2BIG;
	}
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = *s;
	return 0;
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* Entries of dirfd (not consumed) whose names are zone ids; calls back for each. */
static int scan_dir(int dirfd, char ***ret_names, size_t *ret_n)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	_cleanup_(closedirp) DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t prefix;
		unsigned zn, zm;
		bool has_m;

		if (!parse_zone_id(de->d_name, &prefix, &zn, &has_m, &zm))
			continue;
		if (strlen(de->d_name) >= POWERCAP_NAME_MAX)
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(de->d_name);
		if (n > 4 * POWERCAP_ZONES_MAX)
			break;
	}
	*ret_names = names;
	*ret_n = n;
	return 0;
}

static void names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int tree_scan(struct powercap_tree *t, struct scan_list *pkgs, struct scan_list *subs,
	char *err, size_t err_size)
{
	char **names = NULL;
	size_t n_names = 0;
	int r;

	r = scan_dir(t->root_fd, &names, &n_names);
	if (r < 0) {
		set_err(err, err_size, "%s: %s", t->root, strerror(-r));
		return r;
	}
	/* Packages (and psys-like top-level zones) first, with their nested subzones. */
	for (size_t i = 0; i < n_names && r >= 0; i++) {
		struct zone_scan s = { 0 };
		char **sub_names = NULL;
		size_t n_sub = 0;
		bool has_m = false;

		parse_zone_id(names[i], &s.prefix, &s.n, &has_m, &s.m);
		if (has_m)
			continue;
		r = zone_open(t, t->root_fd, names[i], "", true, &s, err, err_size);
		if (r < 0) {
			zone_scan_close(&s);
			break;
		}
		if (s.is_nameless)
			t->layout = POWERCAP_LAYOUT_SCAPHANDRE_QEMU;
		s.z.package = s.n;
		r = scan_list_add(pkgs, &s, err, err_size);
		if (r < 0)
			break;
		int pkg_fd = pkgs->v[pkgs->n - 1].z.dir_fd;
		r = scan_dir(pkg_fd, &sub_names, &n_sub);
		if (r < 0) {
			set_err(err, err_size, "%s: %s", names[i], strerror(-r));
			break;
		}
		for (size_t j = 0; j < n_sub && r >= 0; j++) {
			struct zone_scan ss = { .is_sub = true };
			size_t prefix;
			unsigned zn;
			_cleanup_free_ char *where = xasprintf("%s/", names[i]);

			parse_zone_id(sub_names[j], &prefix, &zn, &has_m, &ss.m);
			/* Only this package's own subzones, as real directories. */
			if (!has_m || zn != s.n || prefix != s.prefix)
				continue;
			ss.prefix = prefix;
			ss.n = zn;
			r = zone_open(t, pkg_fd, sub_names[j], where, false, &ss, err, err_size);
			if (r < 0 || ss.is_skipped) {
				zone_scan_close(&ss);
				if (r < 0)
					break;
				continue;
			}
			ss.z.package = zn;
			r = scan_list_add(subs, &ss, err, err_size);
		}
		names_free(sub_names, n_sub);
	}
	/* Subzones listed only at the top level (as sysfs does alongside the nesting). */
	for (size_t i = 0; i < n_names && r >= 0; i++) {
		struct zone_scan s = { .is_sub = true };
		bool has_m = false;

		parse_zone_id(names[i], &s.prefix, &s.n, &has_m, &s.m);
		if (!has_m || scan_list_has(subs, names[i]))
			continue;
		r = zone_open(t, t->root_fd, names[i], "", true, &s, err, err_size);
		if (r < 0 || s.is_skipped) {
			zone_scan_close(&s);
			if (r < 0)
				break;
			continue;
		}
		s.z.package = s.n;
		r = scan_list_add(subs, &s, err, err_size);
	}
	names_free(names, n_names);
	return r < 0 ? r : 0;
}

const char *powercap_layout_name(enum powercap_layout layout)
{
	switch (layout) {
	case POWERCAP_LAYOUT_SYSFS:
		return "sysfs";
	case POWERCAP_LAYOUT_SCAPHANDRE_QEMU:
		return "scaphandre-qemu";
	case POWERCAP_LAYOUT_POWERD:
		break;
	}
	return "powerd";
}

/* The largest constraint_N_max_power_uw of the zone (sysfs lists constraints from 0 up), 0 when
 * it has none: a hint for telling wraps from resets, so an unreadable one is not an error. */
static uint64_t zone_max_power_uw(const struct powercap_zone *z)
{
	uint64_t max_uw = 0;

	for (unsigned n = 0; n < 8; n++) {
		char file[48], buf[POWERCAP_VALUE_MAX];
		size_t len;
		uint64_t v;

		snprintf(file, sizeof(file), "constraint_%u_max_power_uw", n);
		int r = read_file_at(z->dir_fd, file, buf, sizeof(buf), &len);
		if (r == -ENOENT)
			break;
		if (r == 0 && parse_u64_content(buf, len, &v) == 0)
			max_uw = MAX(max_uw, v);
	}
	return max_uw;
}

int powercap_tree_open(const char *root, struct powercap_tree **ret, char *err, size_t err_size)
{
	return powercap_tree_open_flags(root, 0, ret, err, err_size);
}

int powercap_tree_open_flags(
	const char *root, unsigned flags, struct powercap_tree **ret, char *err, size_t err_size)
{
	struct scan_list pkgs = { 0 }, subs = { 0 };
	struct statfs sfs;
	int r;

	if (err && err_size)
		err[0] = '\0';
	struct powercap_tree *t = xcalloc(1, sizeof(*t));
	t->root = xstrdup(root);
	t->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->root_fd < 0) {
		r = -errno;
		set_err(err, err_size, "%s: %s", root, strerror(-r));
		goto fail;
	}
	t->is_sysfs = fstatfs(t->root_fd, &sfs) == 0 && sfs.f_type == SYSFS_MAGIC;
	t->layout = t->is_sysfs ? POWERCAP_LAYOUT_SYSFS : POWERCAP_LAYOUT_POWERD;
	t->is_lenient = !t->is_sysfs && (flags & POWERCAP_OPEN_SCAPHANDRE_QEMU);

	r = tree_scan(t, &pkgs, &subs, err, err_size);
	if (r < 0)
		goto fail;
	if (pkgs.n == 0) {
		r = -ENODATA;
		set_err(err, err_size, "%s: no powercap zone", root);
		goto fail;
	}
	qsort(pkgs.v, pkgs.n, sizeof(*pkgs.v), zone_scan_cmp);
	if (subs.n > 0)
		qsort(subs.v, subs.n, sizeof(*subs.v), zone_scan_cmp);

	t->zones = xcalloc(pkgs.n + subs.n, sizeof(*t->zones));
	for (size_t i = 0; i < pkgs.n; i++) {
		int parent = (int)t->n_zones;

		t->zones[t->n_zones++] = pkgs.v[i].z;
		pkgs.v[i].z.dir_fd = pkgs.v[i].z.energy_fd = -1;
		for (size_t j = 0; j < subs.n; j++) {
			if (subs.v[j].n != pkgs.v[i].n || subs.v[j].prefix != pkgs.v[i].prefix ||
				subs.v[j].z.dir_fd < 0)
				continue;
			subs.v[j].z.parent = parent;
			t->zones[t->n_zones++] = subs.v[j].z;
			subs.v[j].z.dir_fd = subs.v[j].z.energy_fd = -1;
		}
	}
	for (size_t i = 0; i < t->n_zones; i++)
		t->zones[i].max_power_uw = zone_max_power_uw(&t->zones[i]);
	/* Subzones whose package does not exist are left out (closed with the lists). */
	scan_list_done(&pkgs);
	scan_list_done(&subs);
	*ret = t;
	return 0;

fail:
	scan_list_done(&pkgs);
	scan_list_done(&subs);
	powercap_tree_free(t);
	return r;
}

void powercap_tree_free(struct powercap_tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_zones; i++) {
		if (t->zones[i].dir_fd >= 0)
			close(t->zones[i].dir_fd);
		if (t->zones[i].energy_fd >= 0)
			close(t->zones[i].energy_fd);
	}
	if (t->root_fd >= 0)
		close(t->root_fd);
	free(t->zones);
	free(t->root);
	free(t);
}

int powercap_zone_read(
	const struct powercap_tree *t, const struct powercap_zone *z, uint64_t *ret_energy_uj)
{
	if (z->energy_fd >= 0)
		return read_energy_fd(z->energy_fd, ret_energy_uj);
	_cleanup_close_ int fd = open_energy(z->dir_fd);
	if (fd < 0)
		return fd;
	return read_energy_fd(fd, ret_energy_uj);
}

void powercap_zone_limits(
	const struct powercap_zone *z, enum counter_kind kind, struct counter_limits *ret)
{
	*ret = (struct counter_limits){
		.kind = kind,
		.max_range_uj = z->has_max_energy_range ? z->max_energy_range_uj : 0,
		.max_power_uw = COUNTER_MAX_POWER_UW_DEFAULT,
	};
	if (z->max_power_uw > 0 && z->max_power_uw <= UINT64_MAX / COUNTER_CONSTRAINT_FACTOR)
		ret->max_power_uw = z->max_power_uw * COUNTER_CONSTRAINT_FACTOR;
}

typedef unsigned __int128 u128;

#define RAPL_STATUS_MASK UINT64_C(0xffffffff)

/* Where the counter wraps, in nJ: RAPL's (max / 0xffffffff units, the unit in whole nJ as the
 * kernel keeps it) when max is what the kernel's formula gives for that unit, else max itself. */
static u128 wrap_modulus_nj(const struct counter_limits *lim)
{
	u128 max_nj = (u128)lim->max_range_uj * 1000;

	if (lim->kind == COUNTER_RAPL) {
		u128 unit_nj = (max_nj + RAPL_STATUS_MASK - 1) / RAPL_STATUS_MASK;
		if (unit_nj > 0 && unit_nj * RAPL_STATUS_MASK / 1000 == lim->max_range_uj)
			return unit_nj << 32;
	}
	return max_nj;
}

/* The energy a wrap from last to raw means, in nJ (frac carried in); 0 when it cannot be one. */
static u128 wrap_delta_nj(
	const struct energy_counter *c, uint64_t raw, const struct counter_limits *lim)
{
	if (lim->max_range_uj == 0 || c->last_raw > lim->max_range_uj)
		return 0;
	u128 modulus = wrap_modulus_nj(lim);
	u128 last_nj = (u128)c->last_raw * 1000;
	if (last_nj >= modulus)
		return 0;
	return modulus - last_nj + (u128)raw * 1000 + c->frac_nj;
}

static bool is_plausible(u128 delta_nj, const struct counter_limits *lim, uint64_t dt_ns)
{
	uint64_t max_uw = lim->max_power_uw ? lim->max_power_uw : COUNTER_MAX_POWER_UW_DEFAULT;

	/* µW × ns = 1e-15 J = 1e-6 nJ */
	return delta_nj * 1000000 <= (u128)max_uw * dt_ns;
}

uint64_t energy_counter_update(struct energy_counter *c, uint64_t raw,
	const struct counter_limits *lim, uint64_t dt_ns, enum counter_step *ret_step)
{
	enum counter_step step;
	uint64_t delta = 0;

	if (!c->has_last) {
		step = COUNTER_FIRST;
		c->has_last = true;
	} else if (raw >= c->last_raw) {
		step = COUNTER_OK;
		delta = raw - c->last_raw;
	} else {
		u128 d_nj = wrap_delta_nj(c, raw, lim);
		if (d_nj > 0 && is_plausible(d_nj, lim, dt_ns)) {
			step = COUNTER_WRAPPED;
			delta = (uint64_t)(d_nj / 1000);
			c->frac_nj = (uint32_t)(d_nj % 1000);
		} else {
			/* The source restarted (a new tree, a host daemon that lost its state, a
			 * package reset): count nothing for this interval, follow the new value. */
			step = COUNTER_RESET;
		}
	}
	c->last_raw = raw;
	c->total_uj += delta;
	if (ret_step)
		*ret_step = step;
	return delta;
}

int heartbeat_parse(const char *buf, size_t len, struct heartbeat *ret)
{
	struct heartbeat hb = { 0 };
	bool has_seq = false, has_interval = false, has_version = false, has_time = false,
	     has_estimated = false;
	size_t pos = 0;

	if (len > HEARTBEAT_SIZE_MAX || memchr(buf, '\0', len))
		return -EINVAL;
	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos;
		char key[32], val[32];

		pos += llen + (nl ? 1 : 0);
		if (llen == 0)
			continue;
		const char *sp = memchr(line, ' ', llen);
		if (!sp || sp == line)
			return -EINVAL;
		size_t klen = (size_t)(sp - line), vlen = llen - klen - 1;
		if (klen >= sizeof(key))
			continue; /* an unknown key, from a later version */
		memcpy(key, line, klen);
		key[klen] = '\0';

		if (streq(key, "instance")) {
			/* the counter's origin (DESIGN.md §4): 32 lowercase hex digits */
			if (hb.instance[0] || !channel_instance_is_valid(sp + 1, vlen))
				return -EINVAL;
			memcpy(hb.instance, sp + 1, vlen);
			continue;
		}
		bool *seen = NULL;
		if (streq(key, "version"))
			seen = &has_version;
		else if (streq(key, "seq"))
			seen = &has_seq;
		else if (streq(key, "interval_ms"))
			seen = &has_interval;
		else if (streq(key, "time_ms"))
			seen = &has_time;
		else if (streq(key, "estimated"))
			seen = &has_estimated;
		else
			continue;
		uint64_t v;
		if (*seen || vlen == 0 || vlen >= sizeof(val))
			return -EINVAL;
		memcpy(val, sp + 1, vlen);
		val[vlen] = '\0';
		if (parse_u64(val, &v) < 0)
			return -EINVAL;
		*seen = true;
		if (seen == &has_version && v != 1)
			return -EINVAL;
		else if (seen == &has_seq)
			hb.seq = v;
		else if (seen == &has_interval)
			hb.interval_ms = v;
		else if (seen == &has_time)
			hb.time_ms = v;
		else if (seen == &has_estimated) {
			if (v > 1)
				return -EINVAL;
			hb.is_estimated = v == 1;
		}
	}
	if (!has_seq || !has_interval)
		return -EINVAL;
	*ret = hb;
	return 0;
}

size_t heartbeat_format(const struct heartbeat *hb, char *buf, size_t size)
{
	int n = snprintf(buf, size,
		"version 1\nseq %" PRIu64 "\ninterval_ms %" PRIu64 "\ntime_ms %" PRIu64
		"\nestimated %d\n",
		hb->seq, hb->interval_ms, hb->time_ms, hb->is_estimated ? 1 : 0);
	if (n >= 0 && (size_t)n < size && hb->instance[0])
		n += snprintf(buf + n, size - (size_t)n, "instance %s\n", hb->instance);
	if (n < 0)
		return 0;
	return MIN((size_t)n, size > 0 ? size - 1 : 0);
}

int powercap_heartbeat_read(const struct powercap_tree *t, struct heartbeat *ret)
{
	char buf[HEARTBEAT_SIZE_MAX + 1];
	size_t len;

	int r = read_file_at(t->root_fd, POWERCAP_HEARTBEAT_FILE, buf, sizeof(buf), &len);
	if (r == -EFBIG)
		return -EINVAL;
	if (r < 0)
		return r;
	return heartbeat_parse(buf, len, ret);
}
