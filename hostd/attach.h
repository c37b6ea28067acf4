/* `powerd-host attach DOMAIN [--virtiofs]` and `detach DOMAIN`: add (or remove) the scaphandre
 * share, and for virtiofs the shared memory backing, in a domain's persistent XML through
 * libvirt, idempotently. */
#pragma once

/* argv[0] is "attach" or "detach"; returns the process exit status (0 ok, 1 failure, 2 usage). */
int attach_main(int argc, char **argv, const char *config_path);
