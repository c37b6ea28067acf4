/* Proxmox VE's domain manager (manager.h, DESIGN.md §5): qemu-server starts qemu itself, so there
 * is no connection to follow. A VM is a qemu process whose command line has -pidfile
 * <run_dir>/<vmid>.pid and whose pid file names it; one whose config (<config_dir>/<vmid>.conf)
 * is on this node is tracked while shut off too. Its name is the vmid (names are not unique).
 *
 * What runs is noticed from inotify on run_dir (and on config_dir, where the file system gives
 * events), from a pidfd per running qemu that turns readable when it exits, and from a rescan
 * every PVE_RESCAN_INTERVALS intervals as a backstop; each of them leads to one full listing
 * (domains_apply), coalesced on the loop. A listing reads a pid file and a command line only for
 * a qemu it does not know yet, and a config only when its stat changed. run_dir's entries are read
 * again only when its watch saw a pid file come, go or change, overflowed, or is not live: with a
 * live watch nothing can appear there unseen. config_dir is listed and every config's stat taken
 * at every listing: pmxcfs gives no events for what other nodes write (a migration moving a
 * config in, qm set from another node).
 *
 * CPU time comes from the VM's own scope, qemu.slice/<vmid>.scope, accepted only if qemu runs in
 * it. The energy channel is plugged over QMP (pve_port.h) only into VMs whose config has powerd's
 * hookscript, which plugs it on a migration target before the state arrives; any other VM is left
 * alone and its channel state says why and how to fix it. A port is plugged or unplugged, and
 * its mark written or removed, only under qemu-server's lock on the VM and while its config has
 * no lock: line (pve_lock.h), so never in the middle of a migration; a busy VM is served later. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "hostd/accounting.h"
#include "hostd/channel.h"
#include "hostd/domain_info.h"
#include "hostd/domains.h"
#include "hostd/host_config.h"
#include "hostd/manager.h"
#include "hostd/pve_conf.h"
#include "hostd/pve_lock.h"
#include "hostd/pve_mark.h"
#include "hostd/pve_port.h"
#include "hostd/pve_proc.h"

#define PVE_RESCAN_INTERVALS 2
#define PVE_RETRY_MIN_MS 1000
#define PVE_RETRY_MAX_MS 30000

/* What a listing found of one vmid (the ref of manager_entry). conf and conf_error are filled
 * only when is_conf_changed, or when there is no config (zeroed). */
struct pve_seen {
	uint32_t vmid;
	pid_t pid; /* 0: not running */
	bool has_conf;
	bool is_conf_changed; /* read anew in this listing */
	struct stat conf_st;
	struct pve_conf conf;
	char conf_error[256];
};

/* The mark of an exited qemu, left while qemu-server's lock on its VM was held. */
struct stale_mark {
	uint32_t vmid;
	pid_t pid;
};

struct vmid_set {
	uint32_t *v;
	size_t n, cap;
};

/* A tracked VM (struct domain's priv). */
struct pve_vm {
	struct manager *m;
	struct domain *dm;
	uint32_t vmid;
	int pidfd;	  /* of dm->pid; -1 */
	bool is_pid_gone; /* its pidfd turned readable: dm->pid exited (a zombie maybe) */
	struct event *exit_ev;
	struct event *retry_ev; /* the next channel check after QMP did not answer */
	unsigned retry_ms;
	pid_t listed_pid;     /* what the last listing found */
	pid_t plugged_pid;    /* the qemu the port is known to be in; 0 */
	pid_t marked_pid;     /* the qemu this node's port mark names (pve_mark.h); 0 */
	bool is_mark_failing; /* said once until a mark is written again */
	bool is_lock_wait;    /* the last plug found qemu-server's lock taken: a config change
				 (lock: gone) checks again at once */
	bool needs_unplug; /* powerd's hookscript was taken off while it ran: take the port out */
	bool has_conf;
	struct stat conf_st;
	struct pve_conf conf;
	char conf_error[256];
};

struct manager {
	struct domains *d;
	int inotify_fd;
	int run_wd, conf_wd;
	struct event *inotify_ev;
	struct event *rescan_ev; /* the periodic backstop */
	struct event *soon_ev;	 /* a coalesced listing after an event */
	bool is_started;
	bool is_run_dir_missing_logged;
	/* run_ids are run_dir's pid files: listed while its watch was live, nothing seen since */
	bool is_run_listed;
	dev_t run_dev;
	ino_t run_ino;
	struct vmid_set run_ids;
	/* exited qemus' marks, tried again at each listing (unmark_exited) */
	struct stale_mark *stale;
	size_t n_stale, stale_cap;
	/* a listing's arrays, kept for the next one */
	struct vmid_set ids;
	struct pve_seen *seen;
	struct manager_entry *entries;
	char (*names)[16];
	size_t listing_cap;
};

static const struct host_config *cfg(const struct manager *m)
{
	return domains_config(m->d);
}

static struct pve_vm *vm_of(const struct domain *dm)
{
	return dm->priv;
}

static int pidfd_open_pid(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void listing_soon(struct manager *m)
{
	static const struct timeval zero = { 0, 0 };

	evtimer_add(m->soon_ev, &zero);
}

/* --- discovery --------------------------------------------------------------------------- */

/* The vmid of a directory entry "<vmid><suffix>". */
static bool entry_vmid(const char *name, const char *suffix, uint32_t *ret)
{
	size_t n = strlen(name), l = strlen(suffix);

	return n > l && streq(name + n - l, suffix) && pve_vmid_parse(name, n - l, ret);
}

/* The pid of vmid's qemu, 0 if it does not run; dm: the tracked VM, NULL. A tracked qemu whose
 * pidfd has not fired is still the same process: nothing is read for it. */
static pid_t probe_pid(
	struct manager *m, const struct domain *dm, uint32_t vmid, const struct stat *run_st)
{
	pid_t pid;

	if (dm && dm->pid > 0 && vm_of(dm)->pidfd >= 0)
		return dm->pid;
	if (pve_proc_read_pid(cfg(m)->pve_run_dir, vmid, &pid) < 0)
		return 0;
	if (dm && dm->pid == pid && vm_of(dm)->pidfd < 0 && kill(pid, 0) == 0)
		return pid; /* no pidfd (an old kernel): the pid file is trusted as before */
	return pve_proc_is_vm(cfg(m)->proc_root, pid, run_st, vmid) ? pid : 0;
}

/* "<vmid><suffix>" into buf (of at least 11 bytes more than suffix): a rescan formats two names
 * per VM, and snprintf was a tenth of its CPU (perf, 1000 VMs). */
static void vmid_format(char *buf, uint32_t vmid, const char *suffix)
{
	char digits[10];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + vmid % 10);
		vmid /= 10;
	} while (vmid);
	while (n > 0)
		*buf++ = digits[--n];
	strcpy(buf, suffix);
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The config of vmid (conf_fd: config_dir), read again only if it changed since the tracked VM
 * dm (NULL: none) read it. */
static void probe_conf(struct manager *m, int conf_fd, const struct domain *dm, struct pve_seen *s)
{
	char file[32];

	s->has_conf = false;
	s->is_conf_changed = false;
	vmid_format(file, s->vmid, ".conf");
	if (conf_fd < 0 || fstatat(conf_fd, file, &s->conf_st, AT_SYMLINK_NOFOLLOW) < 0) {
		memset(&s->conf, 0, sizeof(s->conf));
		s->conf_error[0] = '\0';
		return;
	}
	s->has_conf = true;
	if (dm && vm_of(dm)->has_conf && same_stat(&vm_of(dm)->conf_st, &s->conf_st))
		return; /* the tracked VM's conf stands */
	s->is_conf_changed = true;
	if (pve_conf_read(cfg(m)->pve_config_dir, s->vmid, &s->conf, s->conf_error,
		    sizeof(s->conf_error)) < 0)
		memset(&s->conf, 0, sizeof(s->conf));
	else
		s->conf_error[0] = '\0';
}

static void vmid_add(struct vmid_set *s, uint32_t vmid)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	s->v[s->n++] = vmid;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void list_entries(DIR *dp, const char *suffix, struct vmid_set *s)
{
	struct dirent *e;
	uint32_t vmid;

	while ((e = readdir(dp)))
		if (entry_vmid(e->d_name, suffix, &vmid))
			vmid_add(s, vmid);
}

/* Watch run_dir (and config_dir where its file system has events); run_dir may appear later
 * (qemu-server makes it at its first start): tried again at every listing. */
static void add_watches(struct manager *m)
{
	const uint32_t mask = IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
			      IN_DELETE | IN_ONLYDIR;

	if (m->inotify_fd < 0)
		return;
	if (m->run_wd < 0) {
		m->run_wd = inotify_add_watch(m->inotify_fd, cfg(m)->pve_run_dir, mask);
		if (m->run_wd < 0 && !m->is_run_dir_missing_logged)
			log_warn("proxmox: cannot watch %s: %s; looking every %u intervals",
				cfg(m)->pve_run_dir, strerror(errno), PVE_RESCAN_INTERVALS);
		m->is_run_dir_missing_logged = m->run_wd < 0;
		m->is_run_listed = false; /* what came before the watch was not seen */
	}
	if (m->conf_wd < 0)
		m->conf_wd = inotify_add_watch(m->inotify_fd, cfg(m)->pve_config_dir, mask);
}

static bool inotify_drain(struct manager *m);
static void stale_retry(struct manager *m);

/* Whether the tracked VM dm is as the listing s found it: the same qemu, still watched by its
 * pidfd (or still shut off), the same config, already applied, its port's mark written if it
 * has the port. Its update would change nothing (pve_domain_update, pve_set_cpu): the listing
 * leaves it alone, so that a rescan costs little and does not look at every channel again
 * (events do: a new qemu, a changed config, a retry). */
static bool is_unchanged(const struct domain *dm, const struct pve_seen *s)
{
	const struct pve_vm *vm = vm_of(dm);
	bool is_mark_due = s->pid > 0 && vm->plugged_pid == s->pid && vm->marked_pid != s->pid;

	return s->pid == dm->pid && s->pid == vm->listed_pid && dm->is_running == (s->pid > 0) &&
	       (s->pid == 0 || vm->pidfd >= 0) && !s->is_conf_changed &&
	       s->has_conf == vm->has_conf && s->has_conf == dm->is_persistent && !is_mark_due;
}

/* run_dir's pid files into ids: from run_ids while the watch vouches for them, else read. */
static void list_run_dir(struct manager *m, const struct stat *run_st, struct vmid_set *ids)
{
	if (m->run_wd >= 0 && m->is_run_listed &&
		(run_st->st_dev != m->run_dev || run_st->st_ino != m->run_ino)) {
		/* another directory at run_dir's path (the watch follows the old one) */
		inotify_rm_watch(m->inotify_fd, m->run_wd);
		m->run_wd = -1;
		add_watches(m);
	}
	if (!m->is_run_listed || m->run_wd < 0) {
		DIR *dp = opendir(cfg(m)->pve_run_dir);
		m->run_ids.n = 0;
		m->is_run_listed = false;
		if (!dp)
			return;
		list_entries(dp, ".pid", &m->run_ids);
		closedir(dp);
		m->is_run_listed = m->run_wd >= 0;
		m->run_dev = run_st->st_dev;
		m->run_ino = run_st->st_ino;
	}
	for (size_t i = 0; i < m->run_ids.n; i++)
		vmid_add(ids, m->run_ids.v[i]);
}

static void listing_reserve(struct manager *m, size_t n)
{
	if (n <= m->listing_cap)
		return;
	m->listing_cap = MAX(n, 2 * m->listing_cap);
	free(m->seen);
	free(m->entries);
	free(m->names);
	m->seen = xcalloc(m->listing_cap, sizeof(*m->seen));
	m->entries = xcalloc(m->listing_cap, sizeof(*m->entries));
	m->names = xcalloc(m->listing_cap, sizeof(*m->names));
}

static int pve_reconcile(struct manager *m)
{
	struct vmid_set *ids = &m->ids;
	struct stat run_st;
	bool has_run_dir;

	if (!m->is_started)
		return -ENOTCONN;
	inotify_drain(m); /* what run_dir's watch saw so far counts for this listing */
	stale_retry(m);
	add_watches(m);
	ids->n = 0;
	has_run_dir = stat(cfg(m)->pve_run_dir, &run_st) == 0;
	if (has_run_dir)
		list_run_dir(m, &run_st, ids);
	else
		m->is_run_listed = false;
	DIR *conf_dp = opendir(cfg(m)->pve_config_dir);
	if (conf_dp)
		list_entries(conf_dp, ".conf", ids);
	/* tracked ones too: a VM whose files went must be listed as gone */
	size_t n_dom;
	struct domain *const *doms = domains_all(m->d, &n_dom);
	for (size_t i = 0; i < n_dom; i++)
		vmid_add(ids, vm_of(doms[i])->vmid);
	if (ids->n > 1)
		qsort(ids->v, ids->n, sizeof(*ids->v), cmp_u32);

	listing_reserve(m, ids->n + 1);
	size_t n = 0;
	for (size_t i = 0; i < ids->n; i++) {
		if (i > 0 && ids->v[i] == ids->v[i - 1])
			continue;
		struct pve_seen *s = &m->seen[n];
		char *name = m->names[n];
		vmid_format(name, ids->v[i], "");
		const struct domain *dm = domains_find(m->d, name);
		s->vmid = ids->v[i];
		s->pid = has_run_dir ? probe_pid(m, dm, s->vmid, &run_st) : 0;
		probe_conf(m, conf_dp ? dirfd(conf_dp) : -1, dm, s);
		if (!s->pid && !s->has_conf)
			continue; /* gone: left out of the listing, so dropped */
		/* its name: as read now, or the tracked VM's (its config unchanged) */
		const char *title = s->is_conf_changed || !dm ? s->conf.name : vm_of(dm)->conf.name;
		m->entries[n] = (struct manager_entry){ .name = name,
			.title = title[0] ? title : NULL,
			.is_persistent = s->has_conf,
			.is_running = s->pid > 0,
			.is_unchanged = dm && is_unchanged(dm, s),
			.ref = s };
		n++;
	}
	if (conf_dp)
		closedir(conf_dp);
	domains_apply(m->d, m->entries, n);
	return 0;
}

static void rescan_arm(struct manager *m)
{
	uint64_t ms = cfg(m)->interval_ms * PVE_RESCAN_INTERVALS;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(m->rescan_ev, &tv);
}

static void rescan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct manager *m = arg;

	pve_reconcile(m);
	rescan_arm(m);
}

static void soon_cb(evutil_socket_t fd, short what, void *arg)
{
	pve_reconcile(arg);
}

/* Read what the watches saw; whether it calls for a listing: only names that mean a VM started,
 * stopped or changed (<vmid>.pid, <vmid>.conf), an overflow, or a watch gone. Anything of that
 * kind in run_dir makes the next listing read it again. */
static bool inotify_drain(struct manager *m)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool is_due = false;
	ssize_t n;

	if (m->inotify_fd < 0)
		return false;
	while ((n = read(m->inotify_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const struct inotify_event *)p;
			uint32_t vmid;
			p += sizeof(*e) + e->len;
			if (e->mask & (IN_Q_OVERFLOW | IN_IGNORED)) {
				if (e->wd == m->run_wd && (e->mask & IN_IGNORED))
					m->run_wd = -1;
				if (e->wd == m->conf_wd && (e->mask & IN_IGNORED))
					m->conf_wd = -1;
				m->is_run_listed = false;
				is_due = true;
			} else if (e->len > 0 && entry_vmid(e->name, ".pid", &vmid)) {
				if (e->wd == m->run_wd)
					m->is_run_listed = false;
				is_due = true;
			} else if (e->len > 0 && entry_vmid(e->name, ".conf", &vmid)) {
				is_due = true;
			}
		}
	}
	return is_due;
}

static void inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct manager *m = arg;

	if (inotify_drain(m))
		listing_soon(m);
}

/* --- a VM's own state -------------------------------------------------------------------- */

/* This node's mark says the VM's qemu has the port, so that its migration target plugs one.
 * Only under qemu-server's lock. */
static int mark_port(struct pve_vm *vm, pid_t pid)
{
	int r;

	if (vm->marked_pid == pid)
		return 0;
	r = pve_mark_set(cfg(vm->m)->pve_config_dir, vm->vmid, pid);
	if (r < 0)
		return r;
	if (vm->is_mark_failing)
		log_info("domain %u: its port is marked again", vm->vmid);
	vm->is_mark_failing = false;
	vm->marked_pid = pid;
	return 0;
}

/* A mark that could not be written (r) while the port stays in: said once until one is. */
static void mark_failed(struct pve_vm *vm, int r)
{
	if (!vm->is_mark_failing)
		log_warn("domain %u: cannot mark its port in %s (tried again at each listing): %s",
			vm->vmid, cfg(vm->m)->pve_config_dir, strerror(-r));
	vm->is_mark_failing = true;
}

/* A mark not written with its plug, the port left in (mark_unplugged), tried again under
 * qemu-server's lock so that it cannot land in the middle of a migration; a lock taken: at the
 * next listing. */
static void mark_port_again(struct pve_vm *vm, pid_t pid)
{
	char err[CHANNEL_REASON_MAX];
	int r;

	if (vm->marked_pid == pid)
		return;
	_cleanup_close_ int fd =
		pve_lock_try(cfg(vm->m)->pve_lock_dir, vm->vmid, 0, err, sizeof(err));
	if (fd < 0) {
		log_debug("domain %u: its port mark waits: %s", vm->vmid, err);
		return;
	}
	r = mark_port(vm, pid);
	if (r < 0)
		mark_failed(vm, r);
}

/* vmid's mark removed (pid 0: whatever it names; else only one of pid), said if it cannot be. */
static int clear_mark(struct manager *m, uint32_t vmid, pid_t pid)
{
	int r = pve_mark_clear(cfg(m)->pve_config_dir, vmid, pid);

	if (r < 0)
		log_warn("domain %u: cannot remove its port mark in %s: %s", vmid,
			cfg(m)->pve_config_dir, strerror(-r));
	return r;
}

/* The mark goes before the port does (pid 0: whatever it names), under qemu-server's lock. */
static int unmark_port(struct pve_vm *vm, pid_t pid)
{
	int r = clear_mark(vm->m, vm->vmid, pid);

	if (r == 0 && (pid == 0 || vm->marked_pid == pid))
		vm->marked_pid = 0;
	return r;
}

/* The mark of pid, an exited qemu of vmid, read and removed under qemu-server's lock, not
 * waited for: 0, or < 0 with the mark left. */
static int unmark_locked(struct manager *m, uint32_t vmid, pid_t pid)
{
	char err[CHANNEL_REASON_MAX];
	_cleanup_close_ int fd = pve_lock_try(cfg(m)->pve_lock_dir, vmid, 0, err, sizeof(err));

	if (fd < 0) {
		log_debug("domain %u: the port mark of its exited qemu (pid %d) waits: %s", vmid,
			(int)pid, err);
		return fd;
	}
	return clear_mark(m, vmid, pid);
}

/* An exited qemu's mark left while qemu-server's lock was held: tried again at each listing. */
static void stale_add(struct manager *m, uint32_t vmid, pid_t pid)
{
	for (size_t i = 0; i < m->n_stale; i++)
		if (m->stale[i].vmid == vmid && m->stale[i].pid == pid)
			return;
	if (m->n_stale == m->stale_cap) {
		m->stale_cap = m->stale_cap ? m->stale_cap * 2 : 4;
		m->stale = xreallocarray(m->stale, m->stale_cap, sizeof(*m->stale));
	}
	m->stale[m->n_stale++] = (struct stale_mark){ vmid, pid };
}

/* The mark of pid, an exited qemu of vmid, is stale, and goes only under qemu-server's lock.
 * Without it, the read and the removal could frame a new qemu's hook writing its fresh mark
 * (qm start: pre-start removes the mark, post-start plugs and marks, both under the lock),
 * which would go and leave that qemu's port unmarked. Held, the mark stays and each listing
 * tries again (stale_retry), whether or not the VM is still tracked (a migration holds the
 * lock on its source until the config has moved away); meanwhile the holder owns the mark (a
 * start's pre-start removes it, its post-start marks anew), and a mark of pid only is removed,
 * never a newer one. */
static void unmark_exited(struct manager *m, uint32_t vmid, pid_t pid)
{
	if (unmark_locked(m, vmid, pid) < 0)
		stale_add(m, vmid, pid);
}

static void stale_retry(struct manager *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n_stale; i++)
		if (unmark_locked(m, m->stale[i].vmid, m->stale[i].pid) < 0)
			m->stale[n++] = m->stale[i];
	m->n_stale = n;
}

static void exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pve_vm *vm = arg;

	/* qemu exited: forget the pidfd (a listing would otherwise trust it), list soon */
	event_del(vm->exit_ev);
	close(vm->pidfd);
	vm->pidfd = -1;
	vm->is_pid_gone = true;
	listing_soon(vm->m);
}

static void vm_watch_pid(struct pve_vm *vm, pid_t pid)
{
	if (vm->exit_ev) {
		event_free(vm->exit_ev);
		vm->exit_ev = NULL;
	}
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->pidfd = -1;
	vm->is_pid_gone = false;
	if (pid <= 0)
		return;
	vm->pidfd = pidfd_open_pid(pid);
	if (vm->pidfd < 0) /* gone already (the listing sees it next), or no pidfd: rescans */
		return;
	vm->exit_ev = event_new(domains_base(vm->m->d), vm->pidfd, EV_READ, exit_cb, vm);
	if (!vm->exit_ev || event_add(vm->exit_ev, NULL) < 0) {
		close(vm->pidfd);
		vm->pidfd = -1;
	}
}

static void vm_set_conf(struct domain *dm, const struct pve_seen *s)
{
	struct pve_vm *vm = vm_of(dm);

	if (s->is_conf_changed && s->conf_error[0] && !streq(s->conf_error, vm->conf_error))
		log_warn("domain %u: %s", vm->vmid, s->conf_error);
	vm->has_conf = s->has_conf;
	vm->conf_st = s->conf_st;
	vm->conf = s->conf;
	snprintf(vm->conf_error, sizeof(vm->conf_error), "%s", s->conf_error);
	free(dm->title);
	dm->title = s->conf.name[0] ? xstrdup(s->conf.name) : NULL;
	/* powerd_domain_info: the VM's name, and its SMBIOS uuid (what the guest sees) */
	domain_info_set(dm->info, DOMAIN_INFO_INSTANCE_NAME, s->conf.name);
	domain_info_set(dm->info, DOMAIN_INFO_UUID, s->conf.uuid);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pve_vm *vm = arg;

	domains_channel_check_later(vm->m->d, vm->dm);
}

static void pve_domain_init(struct manager *m, struct domain *dm, void *ref)
{
	const struct pve_seen *s = ref;
	struct pve_vm *vm = xcalloc(1, sizeof(*vm));

	vm->m = m;
	vm->dm = dm;
	vm->vmid = s->vmid;
	vm->pidfd = -1;
	vm->retry_ms = PVE_RETRY_MIN_MS;
	vm->retry_ev = evtimer_new(domains_base(m->d), retry_cb, vm);
	dm->priv = vm;
	vm_set_conf(dm, s);
	vm_watch_pid(vm, s->pid);
	vm->listed_pid = s->pid;
	/* Marked by this node, so it has the port, but powerd's hookscript went while
	 * powerd-host was not running: take the port out as if it had seen it go. */
	pid_t marked;
	if (s->pid > 0 && pve_mark_get(cfg(m)->pve_config_dir, s->vmid, &marked) == 0 &&
		marked == s->pid) {
		vm->marked_pid = marked;
		vm->needs_unplug = s->has_conf && !s->conf_error[0] &&
				   !pve_hookscript_is_powerd(s->conf.hookscript);
	}
}

static void pve_domain_update(struct manager *m, struct domain *dm, void *ref)
{
	const struct pve_seen *s = ref;
	struct pve_vm *vm = vm_of(dm);
	bool was_hooked = pve_hookscript_is_powerd(vm->conf.hookscript);
	bool had_conf = vm->has_conf;

	if (s->is_conf_changed) {
		vm_set_conf(dm, s);
		/* the hookscript came (or went), or the config arrived after a migration */
		bool is_hooked = pve_hookscript_is_powerd(vm->conf.hookscript);
		if (is_hooked != was_hooked) {
			vm->plugged_pid = 0; /* detach may have unplugged it: look again */
			dm->is_unserved_logged = false;
		}
		/* Taken off by hand (qm set --delete hookscript) while the VM runs with the port:
		 * its migration target would get no port from a hook, and qemu fails a migration
		 * whose ports differ only after the source has finished. Not when the config
		 * itself went or broke (a migration moves it away). */
		vm->needs_unplug = was_hooked && !is_hooked && had_conf && vm->has_conf &&
				   !vm->conf_error[0] && dm->is_running;
		if (vm->is_lock_wait) { /* qemu-server may be done with it: look now */
			evtimer_del(vm->retry_ev);
			vm->retry_ms = PVE_RETRY_MIN_MS;
		}
		if (is_hooked != was_hooked || vm->plugged_pid == 0)
			domains_channel_check_later(m->d, dm);
	} else if (vm->has_conf != s->has_conf) {
		vm_set_conf(dm, s);
	}
	if (s->pid != dm->pid || (s->pid > 0 && vm->pidfd < 0))
		vm_watch_pid(vm, s->pid);
	/* its qemu stopped or was replaced: a mark of that one is stale */
	if (dm->pid > 0 && s->pid != dm->pid) {
		unmark_exited(m, vm->vmid, dm->pid);
		if (vm->marked_pid == dm->pid)
			vm->marked_pid = 0;
	}
	/* a mark that could not be written before */
	if (s->pid > 0 && s->pid == dm->pid && vm->plugged_pid == s->pid)
		mark_port_again(vm, s->pid);
	vm->listed_pid = s->pid;
}

/* Whether pid, the VM's qemu, has exited: its pidfd turned readable (now, or before: exit_cb),
 * or without one, no such process. A daemonized qemu may stay a zombie a while: kill(2) alone
 * would call it running. */
static bool has_exited(const struct pve_vm *vm, pid_t pid)
{
	struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };

	if (vm->is_pid_gone)
		return true;
	if (vm->pidfd >= 0)
		return poll(&p, 1, 0) > 0;
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static void pve_domain_done(struct manager *m, struct domain *dm)
{
	struct pve_vm *vm = vm_of(dm);

	if (!vm)
		return;
	/* A qemu that runs on keeps its port, so its mark stays too (powerd-host stopping, the VM
	 * no longer tracked): without it, a migration meanwhile would find no mark and plug no port
	 * on its target while the source has one. Only a gone qemu's mark is stale. */
	if (dm->pid > 0 && has_exited(vm, dm->pid))
		unmark_exited(m, vm->vmid, dm->pid);
	vm_watch_pid(vm, 0);
	if (vm->retry_ev)
		event_free(vm->retry_ev);
	free(vm);
	dm->priv = NULL;
}

static void pve_set_cpu(struct manager *m, struct domain *dm, bool was_running)
{
	struct pve_vm *vm = vm_of(dm);
	pid_t pid = vm->listed_pid;

	/* Re-resolving what did not change would cost the VM one interval's CPU delta. */
	if (was_running && pid == dm->pid)
		return;
	/* a new qemu (a restart between two listings) */
	if (was_running)
		domains_reshare(m->d, dm, true);
	_cleanup_free_ char *scope = xasprintf("/qemu.slice/%u.scope", vm->vmid);
	dm->pid = pid;
	dm->has_cpu_reader = false;
	vm->plugged_pid = 0;
	domains_set_pid(m->d, dm, pid, scope);
}

/* Not served, and why; said once per VM until it is served. */
static void unserved(struct domain *dm, enum channel_state st, const char *reason)
{
	channel_set_unserved(dm->channel, st, reason);
	if (dm->is_unserved_logged)
		return;
	dm->is_unserved_logged = true;
	log_warn("domain %s%s%s%s: no energy channel: %s", dm->name, dm->title ? " (" : "",
		dm->title ? dm->title : "", dm->title ? ")" : "", reason);
}

static void retry_later(struct pve_vm *vm)
{
	struct timeval tv = { vm->retry_ms / 1000, (vm->retry_ms % 1000) * 1000 };

	evtimer_add(vm->retry_ev, &tv);
	vm->retry_ms = MIN(vm->retry_ms * 2, PVE_RETRY_MAX_MS);
}

/* Whether the VM may take the port: only with powerd's hookscript, which gives it back on a
 * migration target; else the reason and the fix. */
static bool may_plug(struct manager *m, struct domain *dm)
{
	struct pve_vm *vm = vm_of(dm);
	_cleanup_free_ char *why = NULL;

	if (!vm->has_conf) {
		why = xasprintf("no config %s/%u.conf on this node (migrating here?): left alone",
			cfg(m)->pve_config_dir, vm->vmid);
		unserved(dm, CHANNEL_NO_HOOKSCRIPT, why);
		return false;
	}
	if (vm->conf_error[0]) {
		why = xasprintf("cannot use its config: %s", vm->conf_error);
		unserved(dm, CHANNEL_HOTPLUG_REFUSED, why);
		return false;
	}
	if (!pve_hookscript_is_powerd(vm->conf.hookscript)) {
		if (vm->conf.hookscript[0])
			why = xasprintf(
				"its hookscript is %s, not powerd's: call 'powerd-host pve-hook "
				"VMID PHASE' from it (see docs/proxmox.md)",
				vm->conf.hookscript);
		else
			why = xasprintf(
				"no hookscript, so a migration would lose the port: qm set %u "
				"--hookscript " PVE_HOOK_STORAGE_DEFAULT ":snippets/" PVE_HOOK_FILE,
				vm->vmid);
		unserved(dm, CHANNEL_NO_HOOKSCRIPT, why);
		return false;
	}
	if (!vm->conf.has_agent_bus) {
		why = xasprintf("no guest agent bus qga0: qm set %u --agent 1, then restart the VM",
			vm->vmid);
		unserved(dm, CHANNEL_NO_CONTROLLER, why);
		return false;
	}
	return true;
}

/* qemu-server's lock on the VM, taken around a change of its ports (is_plug: a plug, else an
 * unplug), and its config as read under it (pve_lock.h): the fd that holds it, or -1 with a
 * retry armed and, for a plug, the channel's state saying why. */
static int lock_ports(struct manager *m, struct domain *dm, bool is_plug, struct pve_conf *conf)
{
	struct pve_vm *vm = vm_of(dm);
	char err[CHANNEL_REASON_MAX - 16];
	bool was_lock_wait = vm->is_lock_wait;
	int fd = pve_lock_ports(
		cfg(m)->pve_lock_dir, cfg(m)->pve_config_dir, vm->vmid, 0, conf, err, sizeof(err));

	vm->is_lock_wait = fd == -EWOULDBLOCK || fd == -EBUSY;
	if (fd >= 0) {
		if (was_lock_wait)
			log_info("domain %s: qemu-server let go of its config", dm->name);
		return fd;
	}
	if (fd == -ENOENT) { /* its config went (a migration moved it): the listing sees that */
		listing_soon(m);
		return -1;
	}
	if (vm->is_lock_wait && !was_lock_wait)
		log_info("domain %s: energy channel %s waits: %s", dm->name,
			is_plug ? "plug" : "unplug", err);
	else if (!vm->is_lock_wait)
		log_warn("domain %s: energy channel %s: %s", dm->name, is_plug ? "plug" : "unplug",
			err);
	if (is_plug) {
		_cleanup_free_ char *why = xasprintf("%s: retried", err);
		channel_set_unserved(dm->channel,
			vm->is_lock_wait ? CHANNEL_CONNECTING : CHANNEL_HOTPLUG_REFUSED, why);
	}
	retry_later(vm);
	return -1;
}

/* The port of a VM whose hookscript is no longer powerd's comes out again (pve_domain_update),
 * so that it migrates as a VM powerd never touched. may_plug() has closed the connection. */
static void unplug_unhooked(struct manager *m, struct domain *dm)
{
	struct pve_vm *vm = vm_of(dm);
	char err[CHANNEL_REASON_MAX];

	if (evtimer_pending(vm->retry_ev, NULL))
		return;
	struct pve_conf conf;
	_cleanup_close_ int lock_fd = lock_ports(m, dm, false, &conf);
	if (lock_fd < 0)
		return;
	if (pve_hookscript_is_powerd(conf.hookscript)) { /* given back meanwhile */
		listing_soon(m);
		return;
	}
	/* a mark left behind would have a migration target plug a port the source lacks */
	if (unmark_port(vm, 0) < 0) {
		retry_later(vm);
		return;
	}
	if (pve_port_unplug(cfg(m)->pve_run_dir, vm->vmid, PVE_PORT_TIMEOUT_MS, err, sizeof(err)) <
		0) {
		log_debug("domain %s: cannot unplug the energy channel yet: %s", dm->name, err);
		retry_later(vm);
		return;
	}
	vm->needs_unplug = false;
	vm->retry_ms = PVE_RETRY_MIN_MS;
	log_info("domain %s: powerd's hookscript is gone: energy channel unplugged, so that its "
		 "migration target matches",
		dm->name);
}

/* dm's port is out because its mark could not be written (mr): the channel says so, said once
 * until a mark is written, and the plug is tried again later (once a mark can be written). */
static void wait_for_mark(struct domain *dm, int mr)
{
	struct pve_vm *vm = vm_of(dm);
	_cleanup_free_ char *why = xasprintf(
		"port mark not written (%s): port taken out again, retried", strerror(-mr));

	channel_set_unserved(dm->channel, CHANNEL_CONNECTING, why);
	if (!vm->is_mark_failing)
		log_warn("domain %s: energy channel %s", dm->name, why);
	vm->is_mark_failing = true;
	retry_later(vm);
}

/* The port is in dm's qemu and its mark could not be written (mr), under qemu-server's lock
 * still. A migration started once the lock is free (as quorum returns, before a retry of the
 * mark) would find no mark, and its target would plug no port while this qemu has one: qemu
 * fails that migration after its source finished, and Proxmox stops the source. So without a
 * mark the port comes out again before the lock goes, and the plug is tried again with backoff.
 * A mark there already (one of this qemu: the write only renewed it; one of a stale pid, or
 * unreadable) has a target plug the port or refuse: the port stays, the mark retried. Returns
 * whether the port stays in. */
static bool mark_unplugged(struct manager *m, struct domain *dm, int mr)
{
	struct pve_vm *vm = vm_of(dm);
	char err[CHANNEL_REASON_MAX - 96];
	pid_t marked;
	int r = pve_mark_get(cfg(m)->pve_config_dir, vm->vmid, &marked);

	if (r == 0 && marked == dm->pid) {
		vm->marked_pid = marked;
		return true;
	}
	if (r != -ENOENT) {
		mark_failed(vm, mr);
		return true;
	}
	if (pve_port_unplug(cfg(m)->pve_run_dir, vm->vmid, PVE_PORT_TIMEOUT_MS, err, sizeof(err)) <
		0) {
		log_err("domain %s: its port mark was not written (%s) and its port could not be "
			"taken out again (%s): migrating VM %u now would lose the guest; take the "
			"channel off with 'powerd-host detach %u --channel' (the mark is tried "
			"again at each listing)",
			dm->name, strerror(-mr), err, vm->vmid, vm->vmid);
		vm->is_mark_failing = true;
		return true;
	}
	vm->plugged_pid = 0;
	wait_for_mark(dm, mr);
	return false;
}

static void pve_channel_check(struct manager *m, struct domain *dm)
{
	struct pve_vm *vm = vm_of(dm);
	_cleanup_free_ char *sock = pve_port_socket_path(cfg(m)->pve_run_dir, vm->vmid);
	enum pve_port_result res;
	_cleanup_free_ char *why = NULL;
	char err[CHANNEL_REASON_MAX];
	int r;

	if (!dm->is_running || dm->pid <= 0)
		return;
	if (vm->plugged_pid == dm->pid) {
		mark_port_again(vm, dm->pid);
		channel_connect_to(dm->channel, sock);
		return;
	}
	if (!may_plug(m, dm)) {
		if (vm->needs_unplug)
			unplug_unhooked(m, dm);
		return;
	}
	vm->needs_unplug = false;
	if (evtimer_pending(vm->retry_ev, NULL))
		return; /* QMP did not answer or the VM was locked a moment ago: the retry comes */
	/* Under qemu-server's lock, from the plug to its mark: a migration cannot begin between
	 * them, nor be under way (its source holds the lock throughout, and its target runs the
	 * hook inside qm start, which holds it there); the config read again under it. */
	struct pve_conf conf;
	_cleanup_close_ int lock_fd = lock_ports(m, dm, true, &conf);
	if (lock_fd < 0)
		return;
	if (!pve_hookscript_is_powerd(conf.hookscript) || !conf.has_agent_bus) {
		listing_soon(m); /* changed since the listing read it: it decides again */
		return;
	}
	/* The last mark could not be written and its port came out again (mark_unplugged): the
	 * port goes in again only once a mark can be written, else the guest would see it come and
	 * go at every retry for as long as /etc/pve stays read-only */
	if (vm->is_mark_failing && (r = pve_mark_probe(cfg(m)->pve_config_dir)) < 0) {
		wait_for_mark(dm, r);
		return;
	}
	r = pve_port_plug(
		cfg(m)->pve_run_dir, vm->vmid, PVE_PORT_TIMEOUT_MS, false, &res, err, sizeof(err));
	if (r == 0) {
		if (res == PVE_PORT_PLUGGED)
			log_info("domain %s: energy channel plugged into qemu (pid %d) over QMP",
				dm->name, (int)dm->pid);
		vm->plugged_pid = dm->pid;
		/* written anew: since this daemon last marked it, detach may have taken the mark
		 * out with the port */
		vm->marked_pid = 0;
		r = mark_port(vm, dm->pid);
		if (r < 0 && !mark_unplugged(m, dm, r))
			return;
		vm->retry_ms = PVE_RETRY_MIN_MS;
		dm->is_unserved_logged = false;
		channel_connect_to(dm->channel, sock);
		return;
	}
	if (r == -ENODEV) {
		why = xasprintf("%s: qm set %u --agent 1, then restart the VM", err, vm->vmid);
		unserved(dm, CHANNEL_NO_CONTROLLER, why);
	} else if (r == -EREMOTEIO) {
		unserved(dm, CHANNEL_HOTPLUG_REFUSED, err);
	} else {
		/* QMP busy or not up yet: not an error of the VM's, tried again */
		why = xasprintf("%s; trying again", err);
		channel_set_unserved(dm->channel, CHANNEL_CONNECTING, why);
		log_debug("domain %s: %s", dm->name, why);
		retry_later(vm);
	}
}

/* A share with this name may belong to a VM that runs: a vmid whose pid file names a qemu. */
static bool pve_may_run(struct manager *m, const char *name)
{
	struct stat run_st;
	uint32_t vmid;
	pid_t pid;

	if (!pve_vmid_parse(name, strlen(name), &vmid))
		return false;
	if (stat(cfg(m)->pve_run_dir, &run_st) < 0 ||
		pve_proc_read_pid(cfg(m)->pve_run_dir, vmid, &pid) < 0)
		return false;
	return pve_proc_is_vm(cfg(m)->proc_root, pid, &run_st, vmid);
}

static void pve_destroy(struct manager *m)
{
	if (m->inotify_ev)
		event_free(m->inotify_ev);
	if (m->rescan_ev)
		event_free(m->rescan_ev);
	if (m->soon_ev)
		event_free(m->soon_ev);
	if (m->inotify_fd >= 0)
		close(m->inotify_fd);
	free(m->run_ids.v);
	free(m->stale);
	free(m->ids.v);
	free(m->seen);
	free(m->entries);
	free(m->names);
	free(m);
}

static int pve_create(struct domains *d, struct manager **ret)
{
	struct manager *m = xcalloc(1, sizeof(*m));
	struct event_base *base = domains_base(d);

	m->d = d;
	m->run_wd = m->conf_wd = -1;
	m->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (m->inotify_fd < 0)
		log_warn("proxmox: no inotify (%s): VMs are noticed by rescans only",
			strerror(errno));
	else
		m->inotify_ev = event_new(base, m->inotify_fd, EV_READ | EV_PERSIST, inotify_cb, m);
	m->rescan_ev = evtimer_new(base, rescan_cb, m);
	m->soon_ev = evtimer_new(base, soon_cb, m);
	if ((m->inotify_fd >= 0 && !m->inotify_ev) || !m->rescan_ev || !m->soon_ev) {
		pve_destroy(m);
		return -ENOMEM;
	}
	if (m->inotify_ev)
		event_add(m->inotify_ev, NULL);
	*ret = m;
	return 0;
}

/* A mark whose qemu is not the VM's running one is stale (powerd-host was not running when it
 * stopped). */
static void sweep_mark(uint32_t vmid, void *arg)
{
	struct manager *m = arg;
	char err[CHANNEL_REASON_MAX];
	char name[16];
	struct domain *dm;
	pid_t pid;

	snprintf(name, sizeof(name), "%u", vmid);
	dm = domains_find(m->d, name);
	/* read by pve_domain_init already, and naming its running qemu */
	if (dm && dm->pid > 0 && vm_of(dm)->marked_pid == dm->pid)
		return;
	/* read and removed under qemu-server's lock, as unmark_exited does. Held: a mark of a
	 * pid is tried again at each listing; one unreadable is left to the holder (a start's
	 * pre-start removes it) */
	_cleanup_close_ int fd = pve_lock_try(cfg(m)->pve_lock_dir, vmid, 0, err, sizeof(err));
	if (pve_mark_get(cfg(m)->pve_config_dir, vmid, &pid) < 0)
		pid = 0; /* unreadable: removed, whatever it holds */
	if (dm && dm->pid > 0 && dm->pid == pid)
		return;
	if (fd < 0) {
		if (pid > 0)
			stale_add(m, vmid, pid);
		log_debug("domain %u: stale port mark (pid %d) left: %s", vmid, (int)pid, err);
		return;
	}
	if (pve_mark_clear(cfg(m)->pve_config_dir, vmid, pid) == 0)
		log_debug("domain %u: stale port mark (pid %d) removed", vmid, (int)pid);
}

/* This node keeps marks (its directory says so to the others) and none is stale. */
static void marks_start(struct manager *m)
{
	struct stat st;
	int r;

	if (stat(cfg(m)->pve_config_dir, &st) < 0)
		return; /* not a Proxmox node (yet) */
	r = pve_mark_dir_make(cfg(m)->pve_config_dir);
	if (r == 0)
		r = pve_mark_each(cfg(m)->pve_config_dir, sweep_mark, m);
	if (r < 0)
		log_warn("proxmox: port marks next to %s: %s; a VM given powerd's hookscript while "
			 "its port is missing cannot migrate until they work",
			cfg(m)->pve_config_dir, strerror(-r));
}

static void pve_start(struct manager *m)
{
	m->is_started = true;
	log_info("proxmox: VMs from %s (pid files, QMP) and %s (configs)", cfg(m)->pve_run_dir,
		cfg(m)->pve_config_dir);
	pve_reconcile(m);
	marks_start(m);
	domains_sweep_orphans(m->d);
	rescan_arm(m);
	domains_attempt_done(m->d);
}

static void pve_reconnect(struct manager *m, unsigned delay_ms)
{
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	evtimer_add(m->soon_ev, &tv);
}

static bool pve_is_connected(const struct manager *m)
{
	return m->is_started;
}

static unsigned pve_backoff_ms(const struct manager *m)
{
	return 0;
}

const struct manager_ops manager_proxmox_ops = {
	.name = "proxmox",
	.is_title_filtered = true,
	.create = pve_create,
	.destroy = pve_destroy,
	.start = pve_start,
	.reconcile = pve_reconcile,
	.reconnect = pve_reconnect,
	.is_connected = pve_is_connected,
	.backoff_ms = pve_backoff_ms,
	.domain_init = pve_domain_init,
	.domain_update = pve_domain_update,
	.domain_done = pve_domain_done,
	.set_cpu = pve_set_cpu,
	.channel_check = pve_channel_check,
	.may_run = pve_may_run,
};
