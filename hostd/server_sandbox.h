/* The confinement of powerd-host's HTTP server process (server.c): entered once, as root, after
 * its sockets and its loop are set up and before it reads a byte from the network. */
#pragma once

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#define SANDBOX_USER "powerd"
#define SANDBOX_NOBODY 65534

struct sandbox_user {
	uid_t uid;
	gid_t gid;
	char name[32];
};

/* The user SANDBOX_USER if it exists (the Debian package creates it), else nobody (65534:65534).
 * Looked up by the privileged part, once: the server process never touches NSS. */
void sandbox_lookup_user(struct sandbox_user *ret);

/* Resource limits (no files written, no processes, at most max_files open), the capability
 * bounding set emptied, groups, gid and uid set to u's (which clears every capability), no new
 * privileges, SIGKILL when parent dies (-ESRCH if it already has), then the syscall filter.
 * Returns 0 or -errno; on error the process must exit. */
int sandbox_enter(const struct sandbox_user *u, rlim_t max_files, pid_t parent);

/* The syscall filter alone (sandbox_enter ends with it): anything outside what serving the
 * handed expositions takes kills the process; open() and its kind fail with EACCES. */
int sandbox_seccomp(void);
