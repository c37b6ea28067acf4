/* The per-domain shares under share_dir (DESIGN.md §1): a private writable tmpfs at
 * <share_dir>/.powerd/<domain> that powerd-host writes, exported as <share_dir>/<domain>, a
 * read-only bind of it, so that neither a 9p nor a virtiofs guest can write or grow it. Existing
 * mounts are adopted, a running domain's export is never mounted over, and every operation holds
 * an flock on <share_dir>/.powerd/.lock against other powerd-host processes (the libvirt hook). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOUNTS_NAME_MAX 200
#define MOUNTS_PRIVATE_DIR ".powerd"

enum mount_state {
	MOUNT_NONE,
	MOUNT_TMPFS,	/* private tmpfs + read-only export, ours */
	MOUNT_IN_PLACE, /* a running domain's plain export directory, written directly */
};

struct mounts;

/* Create (0755) share_dir and (0700) share_dir/.powerd if missing and open them. */
int mounts_new(const char *share_dir, uint64_t tmpfs_size, struct mounts **ret);
void mounts_free(struct mounts *m);
const char *mounts_share_dir(const struct mounts *m);

/* A domain name usable as one path component: not "", not starting with "." (".", "..",
 * ".powerd"), no "/", no control characters, at most MOUNTS_NAME_MAX bytes. */
bool mounts_name_is_safe(const char *name);

/* Make (or adopt) the domain's share; the directory to write its tree in comes back as an
 * O_DIRECTORY fd. is_running: the domain's qemu already runs (its export must not be mounted
 * over). -EINVAL for an unsafe name; errors are logged with the domain's name. */
int mounts_prepare(struct mounts *m, const char *name, bool is_running, int *ret_tree_fd,
	enum mount_state *ret_state);
/* Whether the last mounts_prepare mounted a fresh (empty) private tmpfs, rather than adopting
 * a share that already existed (whose tree is the daemon's). */
bool mounts_last_made(const struct mounts *m);
/* Hold the flock across several steps (the hook: mount and lay out the tree together); calls
 * made meanwhile do not take it again. */
void mounts_lock(struct mounts *m);
void mounts_unlock(struct mounts *m);
/* The names of the shares powerd-host made: a tmpfs mounted on share_dir/.powerd/<name> (its
 * export may be bound or gone). Freed by the caller (each name, then the array). */
int mounts_list(struct mounts *m, char ***ret_names, size_t *ret_n);
/* A share's age: seconds since its tree's top directory last changed (every write of the daemon,
 * the hook's layout, and the hook adopting it touch it). */
int mounts_age_s(struct mounts *m, const char *name, uint64_t *ret_s);
/* mounts_teardown, if the share is at least min_age_s old, checked under the flock (so a hook
 * preparing it meanwhile wins): -EBUSY when younger. */
int mounts_teardown_if_older(struct mounts *m, const char *name, uint64_t min_age_s);
/* Unmount and remove the domain's export and private tmpfs. A plain export directory that
 * powerd-host did not mount (MOUNT_IN_PLACE) is left alone. Missing pieces are fine. */
int mounts_teardown(struct mounts *m, const char *name);
