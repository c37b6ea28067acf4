/* The hook's entry point (see prepare.h). The running daemon adopts what this makes; both hold
 * the share's flock while they touch the mounts, and this lays out a tree only in a share it has
 * just mounted itself, under the same flock. */
#include "hostd/prepare.h"

#include "common/log.h"
#include "hostd/accounting.h"
#include "hostd/daemon.h"
#include "hostd/mounts.h"

static int prepare_tracked(const struct host_config *cfg, const char *domain)
{
	struct accounting *acct = NULL;
	struct acct_domain *ad;
	struct mounts *m = NULL;
	enum mount_state ms;
	int r, fd = -1;

	r = mounts_new(cfg->share_dir, cfg->tmpfs_size, &m);
	if (r < 0)
		return r;
	/* Mount and layout under one flock: the daemon cannot adopt a share half made. */
	mounts_lock(m);
	/* qemu has not started yet: the share may be mounted. */
	r = mounts_prepare(m, domain, false, &fd, &ms);
	if (r < 0)
		goto out;
	if (!mounts_last_made(m)) {
		/* A share that already existed is the daemon's: its tree is written by it (or
		 * will be, adopted, when it comes back). Writing it here could put back an
		 * energy_uj older than the daemon's. */
		log_info("domain %s: share already there, its tree left to the daemon", domain);
		goto out;
	}
	/* The tree in the daemon's own layout, zones as the host sensor reports them. */
	r = accounting_new(cfg, &acct);
	if (r < 0) {
		log_err("domain %s: cannot read the host sensor: %s", domain, strerror(-r));
		goto out;
	}
	r = accounting_add_domain(acct, domain, fd, &ad);
	if (r < 0) {
		log_err("domain %s: cannot write its tree: %s", domain, strerror(-r));
		goto out;
	}
	accounting_remove_domain(acct, ad);
	log_info("domain %s: share prepared", domain);
out:
	closep(&fd);
	accounting_free(acct);
	mounts_unlock(m);
	mounts_free(m);
	return r;
}

int prepare_main(const char *config_path, bool is_default_path, const char *domain)
{
	struct host_config cfg;
	int r;

	if (daemon_load_config(config_path, is_default_path, &cfg) < 0)
		return 2;
	if (!host_config_tracks(&cfg, domain)) {
		log_debug("domain %s is not tracked (domains.include/exclude)", domain);
		host_config_free(&cfg);
		return 0;
	}
	r = prepare_tracked(&cfg, domain);
	host_config_free(&cfg);
	return r < 0 ? 1 : 0;
}
