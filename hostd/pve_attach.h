/* `powerd-host attach VMID --channel` and `detach VMID [--channel]` on Proxmox VE: set (or
 * remove) powerd's hookscript through `qm set` (found on PATH; it locks the config in pmxcfs), and
 * plug (or unplug) the energy channel's port into the running VM at once. A VM that has another
 * hookscript is refused with how to chain powerd's from it. */
#pragma once

/* argv[0] is "attach" or "detach"; cfg is the loaded configuration. The exit status (0 ok,
 * 1 failure, 2 usage). */
struct host_config;
int pve_attach_main(int argc, char **argv, const struct host_config *cfg);
