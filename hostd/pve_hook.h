/* `powerd-host [-c FILE] pve-hook VMID PHASE`: the body of powerd's Proxmox VE hookscript
 * (/usr/share/powerd/powerd-hook execs it; qemu-server runs it as `<file> <vmid> <phase>`). On
 * post-start it plugs the energy channel's port (pve_port.h) into the VM's qemu before it returns
 * and marks it (pve_mark.h). On a migration target (PVE_MIGRATED_FROM set, qemu waiting with
 * -incoming) the port must match the source's before the state arrives, since qemu compares the
 * ports of source and target after the source has finished: it plugs only if the source node's
 * mark says its qemu has the port, plugs nothing if that node keeps marks and has none for the
 * VM, and refuses if it cannot tell (also for an incoming qemu without PVE_MIGRATED_FROM: a
 * remote migration from another cluster). Refusing, or failing to plug, it stops the incoming qemu
 * so that the migration fails before the source is touched, and exits non-zero. pre-start and
 * post-stop (no qemu of the VM runs) remove this node's mark. It needs no running powerd-host and
 * reads no VM config (on a target it is still under the source node). Every other phase:
 * nothing, exit 0. */
#pragma once

/* argv: "pve-hook", VMID, PHASE. The exit status. */
int pve_hook_main(int argc, char **argv, const char *config_path);
