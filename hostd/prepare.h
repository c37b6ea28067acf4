/* `powerd-host --prepare DOMAIN`: what the libvirt hook runs on "prepare begin", synchronously
 * before qemu starts: make (or adopt) the domain's share and an initial tree, so that the mount
 * exists before qemu opens the exported directory. Makes no libvirt call (a hook must not). */
#pragma once

#include <stdbool.h>

/* Returns the exit status: 0 also when the domain is not tracked; 1 (message on stderr) when
 * the share or tree cannot be made; 2 for a bad config. */
int prepare_main(const char *config_path, bool is_default_path, const char *domain);
