#!/usr/bin/env bash
# End-to-end test of powerd-host on Proxmox VE (DESIGN.md §5), on two emulated nodes:
#
#   e2e-proxmox.sh --host BIN --guest BIN --raplsim BIN [--source DIR] [--keep]
#
# Proxmox VE is not in Debian, so each node is emulated around the real qemu (TCG): a mount, UTS
# and cgroup namespace of its own (hostname pve1 / pve2), its own /run (run dir
# /var/run/qemu-server), the cgroup v2 hierarchy alone at /sys/fs/cgroup seen from the node's own
# cgroup (so both nodes can hold VM 100 during a migration), its own "local" storage (snippets),
# and a stand-in `qm` (tests/e2e/pve-qm.py) that starts qemu as qemu-server does: /usr/bin/kvm,
# the QMP and qmeventd monitors, -pidfile, -daemonize, the pci bridges, the agent's virtio-serial
# qga0, born in qemu.slice/<vmid>.scope; hookscripts run as qemu-server runs them; a live
# migration as QemuMigrate drives it. The cluster file system (/etc/pve) is one directory both
# see, nodes/<node>/qemu-server/<vmid>.conf, with each node's local/ bound to its nodes/<node>.
#
# First the emulation is checked on its own (no powerd): qemu as qemu-server starts it, in its
# scope; a port hot-plugged over QMP into the waiting target before `migrate` makes the migration
# work; no port on the target makes the target die after the stream (DESIGN.md §5, measured).
# Then a powerd-host on each node (manager: proxmox) and the checks of issue 16: the channel
# only into a VM with the hookscript, the guest metered, QMP free, migrations A -> B -> A, a hook
# that cannot plug failing the migration with the source running, VM stop/start/reboot/kill -9,
# kill -9 of powerd-host, attribution by the scopes' CPU time.
#
# Shared set-up in tests/e2e/lib.sh; every wait is bounded; exit 1 if any assertion failed, 77
# where it cannot run.
set -uo pipefail
# within ctest's 600 s (lib.sh's deadline kills what is left and cleans up)
export POWERD_E2E_DEADLINE_S=${POWERD_E2E_DEADLINE_S:-540}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init "$@"

PY=/usr/bin/python3
QMP_PY=$HERE/qmp.py
A=pve1
B=pve2
export E2E_LOGS="powerd-host-$A.log powerd-host-$B.log qm.log"
PENDING=()
e2e_timings() {
	echo "guest booted ${BOOT_S:-?}s after qm start; emulation migrations ${EMU_MIG_S:-?}s;" \
		"channel connected ${CONNECT_S:-?}s after qm start; QMP greeting ${QMP_PROBE:-?};" \
		"migration A->B ${MIG_AB_S:-?}s (target start + hook ${MIG_AB_HOOK_S:-?}s), B->A ${MIG_BA_S:-?}s;" \
		"hot-plug by the hook ${HOOK_PLUG_S:-?}s; migration failed by the hook (QMP held)" \
		"${MIG_FAIL_S:-?}s; attribution: ${ATTR:-?}; "
}

# ---------------------------------------------------------------------------------------------
# the emulated cluster

# The cgroup v2 hierarchy in this (private) mount namespace, and a subtree for the two nodes.
step_cluster() {
	log "an emulated Proxmox VE cluster: nodes $A and $B"
	[ -x $PY ] || { echo "SKIP: no $PY"; exit 77; }
	command -v nsenter >/dev/null || { echo "SKIP: no nsenter"; exit 77; }
	unshare -C true 2>/dev/null || { echo "SKIP: cannot unshare a cgroup namespace"; exit 77; }
	CG2=$W/cgroup2
	mkdir -p "$CG2"
	mount -t cgroup2 cgroup2 "$CG2" 2>/dev/null || { echo "SKIP: cannot mount cgroup2"; exit 77; }
	CGBASE=$CG2/powerd-e2e-pve.$$
	mkdir "$CGBASE" || { echo "SKIP: cannot make a cgroup under $CG2"; exit 77; }
	# the cluster file system; each node binds its nodes/<node> over local/ (/etc/pve/local)
	mkdir -p "$W/pve/local" "$W/vz" "$W/vz-qmpheld/snippets" "$W/bin" "$W/nodes"
	printf 'dir: %s\n\tpath %s\n\tcontent snippets\n\n' local "$W/vz" qmpheld "$W/vz-qmpheld" \
		>"$W/pve/storage.cfg"
	cat >"$W/bin/qm" <<-EOF
	#!/bin/sh
	# the emulation's qm (tests/e2e/pve-qm.py), logged
	echo "\$(date +%s.%N) \$(hostname) qm \$*" >>$W/qm.log
	PVE_ETC=$W/pve PVE_E2E_NODES=$W/nodes exec $PY $HERE/pve-qm.py "\$@"
	EOF
	cp "$HOST_BIN" "$W/bin/powerd-host"
	# powerd-host with the config of the node it runs on (what /etc/powerd/host.yaml is there)
	cat >"$W/bin/powerd-host-node" <<-EOF
	#!/bin/sh
	exec $W/bin/powerd-host -c $W/\$(hostname)/host.yaml "\$@"
	EOF
	chmod 755 "$W/bin/qm" "$W/bin/powerd-host-node"
	node_create $A || return 1
	node_create $B || return 1
}

# A node: a holder process in the node's cgroup that unshared mount, UTS and cgroup namespaces;
# $W/nodes/<node> runs a command there (the emulation's ssh).
node_create() { # name
	local n=$1 holder
	mkdir -p "$CGBASE/$n" "$W/$n/vz/snippets" "$W/$n/share" "$W/pve/nodes/$n/qemu-server"
	start_bg "$W/$n-ns.log" sh -c 'echo $$ >"$0/cgroup.procs" && exec unshare -m -u -C --propagation private sleep 100000' \
		"$CGBASE/$n"
	holder=$LAST_PID
	disown "$holder" # killed with its cgroup at exit, without bash's "Killed" line
	if ! wait_for 10 ns_ready "$holder"; then
		not_ok "node $n: namespaces ($(tr '\n' ' ' <"$W/$n-ns.log"))"
		return 1
	fi
	cat >"$W/nodes/$n" <<-EOF
	#!/bin/sh
	# run a command on node $n: into its cgroup, then its namespaces
	echo \$\$ >$CGBASE/$n/cgroup.procs || exit 255
	exec nsenter -t $holder -m -u -C -- env PATH=$W/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		POWERD_HOST=$W/bin/powerd-host-node "\$@"
	EOF
	chmod 755 "$W/nodes/$n"
	# its own /run, the v2 hierarchy from its cgroup, /etc/pve/local and the local storage
	if ! on "$n" sh -c "hostname $n && mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/qemu-server /run/lock &&
		{ umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 cgroup2 /sys/fs/cgroup; } &&
		mount --bind $W/pve/nodes/$n $W/pve/local && mount --bind $W/$n/vz $W/vz" >"$W/$n-setup.log" 2>&1; then
		not_ok "node $n: set up ($(tr '\n' ' ' <"$W/$n-setup.log"))"
		return 1
	fi
	# qmeventd's stand-in, which every qemu's second monitor connects to
	start_bg "$W/$n-qmeventd.log" "$W/nodes/$n" $PY "$QMP_PY" /var/run/qmeventd.sock eventd
	disown "$LAST_PID"
	local view
	view=$(on "$n" sh -c 'grep "^0::" /proc/self/cgroup; stat -fc %T /sys/fs/cgroup; hostname' | tr '\n' ' ')
	check "node $n: hostname, cgroup v2 alone at /sys/fs/cgroup, rooted at its own cgroup ($view)" \
		test "$view" = "0::/ cgroup2fs $n "
}
ns_ready() {
	[ "$(readlink "/proc/$1/ns/cgroup")" != "$(readlink /proc/self/ns/cgroup)" ] &&
		[ "$(cat "/proc/$1/comm" 2>/dev/null)" = sleep ]
}
on() { "$W/nodes/$1" "${@:2}"; }
qm_on() { on "$1" qm "${@:2}"; }

# Every process of both nodes (qemu daemonizes out of our sight) and their cgroups.
e2e_cleanup() {
	[ -n "${CGBASE:-}" ] || return 0
	if [ ! -d "$CGBASE" ]; then
		# the cgroup2 mount went with $W (removed under us): mount it again elsewhere
		CG2=$(mktemp -d /tmp/powerd-e2e-cg.XXXXXX) && mount -t cgroup2 cgroup2 "$CG2" || return 0
		CGBASE=$CG2/${CGBASE##*/}
		[ -d "$CGBASE" ] || { umount "$CG2"; rmdir "$CG2"; return 0; }
	fi
	local d
	for d in "$CGBASE"/*/; do
		[ -f "${d}cgroup.kill" ] && echo 1 >"${d}cgroup.kill"
	done
	for _ in $(seq 50); do
		[ -z "$(find "$CGBASE" -name cgroup.procs -exec cat {} + 2>/dev/null)" ] && break
		sleep 0.1
	done
	find "$CGBASE" -depth -type d -exec rmdir {} \; 2>/dev/null
	[ -d "$CGBASE" ] && log "cgroup $CGBASE left behind"
	umount "$CG2" 2>/dev/null
	[ "${CG2#/tmp/powerd-e2e-cg.}" != "$CG2" ] && rmdir "$CG2"
}

# A VM's config in qemu-server's format, in a node's directory.
vm_conf() { # node vmid name hook|- agent(0|1) burn [port_wait]
	local node=$1 vmid=$2 name=$3 hook=$4 agent=$5 burn=$6 wait=${7:-120} f
	f=$W/pve/nodes/$node/qemu-server/$vmid.conf
	# a guest that will get no port does not wait for one: its console shows it alive at once
	[ "$hook" = - ] || [ "$agent" = 0 ] && [ $# -lt 7 ] && wait=0
	{
		[ "$agent" = 1 ] && echo "agent: 1"
		echo "args: -kernel $KERNEL -initrd $W/initrd-chan.gz -append 'console=ttyS0 quiet loglevel=1 panic=-1 powerd_e2e.burn=$burn powerd_e2e.port_wait=$wait' -chardev file,id=e2econ,path=$W/vm$vmid.serial,append=on -serial chardev:e2econ"
		echo "balloon: 0"
		echo "cores: 1"
		[ "$hook" != - ] && echo "hookscript: $hook"
		echo "kvm: 0" # TCG (this machine has no working KVM)
		echo "memory: 128"
		echo "name: $name"
		echo "ostype: l26"
		echo "smbios1: uuid=$(cat /proc/sys/kernel/random/uuid)"
		echo "vmgenid: $(cat /proc/sys/kernel/random/uuid)"
	} >"$f"
}
vm_pid() { qm_on "$1" pid "$2" 2>/dev/null; }
vm_alive() { local p; p=$(vm_pid "$1" "$2") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
qmp() { # node vmid command [args-json]... : run over the node's QMP socket
	on "$1" $PY "$QMP_PY" "/var/run/qemu-server/$2.qmp" run "${@:3}"
}
serial_lines() { wc -l <"$W/vm$1.serial" 2>/dev/null || echo 0; }
# The guest still runs: its console grows (channel-init.sh prints a TREE line each second).
guest_alive() { # vmid
	local n
	n=$(serial_lines "$1")
	wait_for 10 sh -c "[ \$(wc -l <'$W/vm$1.serial') -gt $n ]"
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
vm_start() { # node vmid: qm start, then the guest's BOOTED line
	: >>"$W/vm$2.serial"
	local t n
	t=$(date +%s.%N)
	n=$(grep -ac '=== BOOTED' "$W/vm$2.serial")
	qm_on "$1" start "$2" >>"$W/qm.log" 2>&1 || { not_ok "$1: qm start $2 ($(tail -3 "$W/qm.log" | tr '\n' ' '))"; return 1; }
	if wait_for 90 sh -c "[ \$(grep -ac '=== BOOTED' '$W/vm$2.serial') -gt $n ]"; then
		BOOT_S=$(since "$t")
	else
		not_ok "$1: VM $2's guest booted within 90s of qm start"
		return 1
	fi
}

# The guest's initramfs: lib.sh's, with the channel guest's /init.
step_channel_initrd() {
	local r=$W/initramfs-chan
	rm -rf "$r"
	cp -a "$W/initramfs" "$r"
	cp "$HERE/channel-init.sh" "$r/init" && chmod 755 "$r/init"
	(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd-chan.gz"
	check "channel guest initramfs built" test -s "$W/initrd-chan.gz"
}

# ---------------------------------------------------------------------------------------------
# the emulation on its own, before any powerd

# A raw hot-plug of the energy port over QMP, as DESIGN.md §5 measured it (not powerd's code).
raw_plug() { # node vmid
	qmp "$1" "$2" chardev-add "{\"id\": \"e2e-raw\", \"backend\": {\"type\": \"socket\", \"data\": {\"addr\": {\"type\": \"unix\", \"data\": {\"path\": \"/var/run/qemu-server/$2.e2e-raw\"}}, \"server\": true, \"wait\": false}}}" \
		device_add '{"driver": "virtserialport", "id": "e2e-raw", "bus": "qga0.0", "nr": 2, "chardev": "e2e-raw", "name": "org.powerd.energy.0"}' >/dev/null
}

step_emulation() {
	local vm=900 pid cmd cg t
	log "the emulation on its own: VM $vm, raw hot-plug, migrations"
	cat >"$W/vz-qmpheld/snippets/raw-plug" <<-EOF
	#!/bin/sh
	# an emulation check's hookscript: the port plugged raw into a migration's target
	echo "\$(date +%s.%N) \$(hostname) raw-plug \$* PVE_MIGRATED_FROM=\${PVE_MIGRATED_FROM:-}" >>$W/hooks.log
	[ "\$2" = post-start ] && [ -n "\${PVE_MIGRATED_FROM:-}" ] || exit 0
	$PY $QMP_PY /var/run/qemu-server/\$1.qmp run chardev-add '{"id": "e2e-raw", "backend": {"type": "socket", "data": {"addr": {"type": "unix", "data": {"path": "/var/run/qemu-server/'\$1'.e2e-raw"}}, "server": true, "wait": false}}}' device_add '{"driver": "virtserialport", "id": "e2e-raw", "bus": "qga0.0", "nr": 2, "chardev": "e2e-raw", "name": "org.powerd.energy.0"}' >/dev/null
	EOF
	chmod 755 "$W/vz-qmpheld/snippets/raw-plug"
	vm_conf $A $vm emu qmpheld:snippets/raw-plug 1 6 120
	vm_start $A $vm || return 1
	ok "$A: VM $vm started by qm, its guest booted ${BOOT_S}s after qm start"
	pid=$(vm_pid $A $vm)
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
	check "$A: VM $vm's qemu is /usr/bin/kvm as qemu-server starts it (-name emu,debug-threads=on, QMP and qmeventd monitors, -pidfile, -daemonize, pci bridges, qga0)" \
		grep -qE "^/usr/bin/kvm -name emu,debug-threads=on -no-shutdown -chardev socket,id=qmp,path=/var/run/qemu-server/$vm.qmp,server=on,wait=off -mon chardev=qmp,mode=control -chardev socket,id=qmp-event,path=/var/run/qmeventd.sock,reconnect=5 -mon chardev=qmp-event,mode=control -pidfile /var/run/qemu-server/$vm.pid -daemonize .*pci-bridge,id=pci.1,chassis_nr=1,bus=pci.0,addr=0x1e .*pci-bridge,id=pci.2,chassis_nr=2,bus=pci.0,addr=0x1f .*virtio-serial,id=qga0,bus=pci.0,addr=0x8 -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0" <<<"$cmd"
	cg=$(sed -n 's/^0:://p' "/proc/"$pid"/cgroup")
	check "VM $vm's qemu is in $CGBASE/$A/qemu.slice/$vm.scope (seen from $A: $(on $A cat /proc/"$pid"/cgroup | sed -n 's/^0:://p'))" \
		test "$CG2$cg" = "$CGBASE/$A/qemu.slice/$vm.scope" -a "$(on $A grep '^0::' /proc/"$pid"/cgroup)" = "0::/qemu.slice/$vm.scope"
	check "VM $vm's qemu connected its second monitor to $A's qmeventd.sock" wait_for 10 grep -q "^connect $pid " "$W/$A-qmeventd.log"
	check "$B does not see VM $vm's run dir (its own /run)" on $B test ! -e /var/run/qemu-server/$vm.pid

	# port on the source, raw-plugged into the waiting target by the hookscript: works
	raw_plug $A $vm || { not_ok "raw hot-plug into VM $vm on $A"; return 1; }
	check "VM $vm's guest sees the raw-plugged port" wait_for 30 grep -aq '^=== PORT vport' "$W/vm$vm.serial"
	t=$(date +%s.%N)
	if qm_on $A migrate $vm $B >"$W/emu-mig1.log" 2>&1; then
		EMU_MIG_S=$(since "$t")
		ok "VM $vm ($A -> $B, port plugged on both sides before the state): the migration works (${EMU_MIG_S}s)"
	else
		not_ok "VM $vm ($A -> $B, port plugged on both sides): migration ($(tr '\n' ' ' <"$W/emu-mig1.log"))"
		return 1
	fi
	check "VM $vm runs on $B, its config in nodes/$B, gone from $A" \
		sh -c "$W/nodes/$B qm pid $vm >/dev/null && test -f $W/pve/nodes/$B/qemu-server/$vm.conf -a ! -e $W/pve/nodes/$A/qemu-server/$vm.conf && ! $W/nodes/$A qm pid $vm >/dev/null"
	check "VM $vm's guest lives on $B" guest_alive $vm
	check "the target's hookscript ran with PVE_MIGRATED_FROM=$A" grep -q "$B raw-plug $vm post-start PVE_MIGRATED_FROM=$A" "$W/hooks.log"

	# back without the hookscript: no port on the target, which dies after the stream
	qm_on $B set $vm --delete hookscript
	t=$(date +%s.%N)
	if qm_on $B migrate $vm $A >"$W/emu-mig2.log" 2>&1; then
		not_ok "VM $vm ($B -> $A, no port on the target): the migration fails (it worked)"
	else
		check "VM $vm ($B -> $A, no port on the target): the source reported completed, then the target died ($(since "$t")s)" \
			sh -c "grep -q 'migration status completed' $W/emu-mig2.log && grep -q 'failed to resume' $W/emu-mig2.log"
		check "... and the guest is lost (qemu runs on neither node)" \
			sh -c "! $W/nodes/$A qm pid $vm >/dev/null && ! $W/nodes/$B qm pid $vm >/dev/null"
	fi
	rm -f "$W/pve/nodes/$A/qemu-server/$vm.conf" "$W/pve/nodes/$B/qemu-server/$vm.conf"
}

# ---------------------------------------------------------------------------------------------
# powerd-host on each node (manager: proxmox)

node_port() { [ "$1" = $A ] && echo "$PORT_A" || echo "$PORT_B"; }
node_metrics() { curl -s --max-time 5 "http://127.0.0.1:$(node_port "$1")/metrics"; }
node_serves() { node_metrics "$1" | grep -q '^powerd_host_energy_joules_total'; }
dom_j() { # node vmid: the host's counter of the VM's package energy
	node_metrics "$1" | metric "powerd_domain_energy_joules_total\\{domain=\"$2\",zone=\"package-0\"\\}"
}
transport_is() { # node vmid state
	node_metrics "$1" | grep -q "^powerd_domain_transport{domain=\"$2\",transport=\"channel\",state=\"$3\"} 1"
}
transport_of() { # node vmid: the channel's state(s) at 1
	node_metrics "$1" | sed -n "s/^powerd_domain_transport{domain=\"$2\",transport=\"channel\",state=\"\\([^\"]*\\)\"} 1\$/\\1/p" | tr '\n' ' '
}
node_status() { on "$1" powerd-host-node status 2>&1; }
transport_not() { ! transport_is "$@"; }
info_has() { # node vmid uuid name
	node_metrics "$1" | grep -E "^powerd_domain_info\{domain=\"$2\"," | grep -F "uuid=\"$3\"" | grep -qF "instance_name=\"$4\""
}
new_qemu_connected() { # node vmid old-pid
	[ "$(vm_pid "$1" "$2")" != "$3" ] && wait_for 30 transport_is "$1" "$2" connected
}
no_port_alive() { # node vmid
	guest_alive "$2" && ! qmp "$1" "$2" query-chardev | grep -q powerd
}
source_stayed() { # vmid pid: on A with that pid, config on A, nothing on B
	[ "$(vm_pid $A "$1")" = "$2" ] && [ -f "$W/pve/nodes/$A/qemu-server/$1.conf" ] && ! vm_pid $B "$1" >/dev/null
}

host_yaml_node() { # node
	cat <<-EOF
	manager: proxmox
	proxmox: { config_dir: $W/pve/local/qemu-server, run_dir: /run/qemu-server }
	interval: 1s
	share_dir: $W/$1/share
	powercap_root: $W/powercap
	proc_root: /proc
	cgroup_root: /sys/fs/cgroup
	channel: auto
	metrics_listen: 127.0.0.1:$(node_port "$1")
	status_socket: $W/$1/status.sock
	log_level: debug
	EOF
}

start_host_on() { # node
	local n=$1
	# (the node's script execs nsenter, env, powerd-host: one pid)
	start_bg "$W/powerd-host-$n.log" "$W/nodes/$n" powerd-host-node
	eval "HOST_PID_$n=\$LAST_PID"
	if wait_for 20 node_serves "$n"; then
		ok "$n: powerd-host (manager: proxmox) serves its metrics on 127.0.0.1:$(node_port "$n")"
	else
		not_ok "$n: powerd-host serves its metrics within 20s"
		return 1
	fi
}

# The package's hookscript in each node's local storage (the pve helper's file once the source
# tree has it; until then what it is specified to be), and a variant in storage "qmpheld" that
# runs it with the VM's QMP held by another client on a migration target (so it cannot plug).
install_hooks() {
	local hook n
	# (units/powerd-pve-hook, installed as /usr/share/powerd/powerd-hook)
	hook=$SOURCE/units/powerd-pve-hook
	[ -f "$hook" ] || hook=
	for n in $A $B; do
		if [ -n "$hook" ]; then
			cp "$hook" "$W/$n/vz/snippets/powerd-hook"
		else
			printf '#!/bin/sh\nexec "${POWERD_HOST:-/usr/sbin/powerd-host}" pve-hook "$@"\n' >"$W/$n/vz/snippets/powerd-hook"
		fi
		chmod 755 "$W/$n/vz/snippets/powerd-hook"
	done
	HOOK_SRC=${hook:-"a stand-in (no powerd-hook in the source tree yet)"}
	cat >"$W/vz-qmpheld/snippets/powerd-hook" <<-EOF
	#!/bin/sh
	# powerd-hook with the VM's QMP held by another client while it runs on a migration target
	if [ "\$2" = post-start ] && [ -n "\${PVE_MIGRATED_FROM:-}" ]; then
		rm -f $W/qmp-held
		$PY $QMP_PY /var/run/qemu-server/\$1.qmp hold 60 $W/qmp-held &
		holder=\$!
		i=0
		while [ ! -e $W/qmp-held ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
		$W/vz/snippets/powerd-hook "\$@"
		rc=\$?
		kill \$holder 2>/dev/null
		echo "\$(date +%s.%N) \$(hostname) qmpheld-hook \$* rc=\$rc" >>$W/hooks.log
		exit \$rc
	fi
	exec $W/vz/snippets/powerd-hook "\$@"
	EOF
	chmod 755 "$W/vz-qmpheld/snippets/powerd-hook"
}

step_hosts() {
	log "powerd-host on $A and $B"
	PORT_A=$(free_port)
	PORT_B=$(free_port)
	while [ "$PORT_B" = "$PORT_A" ]; do PORT_B=$(free_port); done
	host_yaml_node $A >"$W/$A/host.yaml"
	host_yaml_node $B >"$W/$B/host.yaml"
	install_hooks
	if ! on $A powerd-host-node --check-config >"$W/check-config.log" 2>&1; then
		if ! grep -q "unknown key 'manager'" "$W/check-config.log"; then
			not_ok "powerd-host --check-config of $A's config ($(head -1 "$W/check-config.log"))"
			return 1
		fi
		PENDING+=("powerd-host has no Proxmox manager yet: $(head -1 "$W/check-config.log")")
		log "pending: powerd-host does not take manager: proxmox ($(head -1 "$W/check-config.log")); the checks that need it are left out"
		return 1
	fi
	log "hookscript: $HOOK_SRC"
	start_host_on $A || return 1
	start_host_on $B || return 1
}

# The chardevs and the ids of /machine/peripheral of a VM, sorted, one line
vm_devices() { # node vmid
	local c p
	c=$(qmp "$1" "$2" query-chardev | $PY -c 'import json,sys; print(" ".join(sorted(c["label"] for c in json.load(sys.stdin))))')
	p=$(qmp "$1" "$2" qom-list '{"path": "/machine/peripheral"}' | $PY -c 'import json,sys; print(" ".join(sorted(p["name"] for p in json.load(sys.stdin) if p["type"].startswith("child<"))))')
	echo "chardevs: $c; devices: $p"
}

# What the guest's powerd-guest serves: "uptime energy_uj" per TREE line of its console.
tree_series() { tr -d '\r' <"$W/vm$1.serial" | awk '$1 == "TREE" && $3 ~ /^[0-9]+$/ { print $2, $3 }'; }
tree_n() { tree_series "$1" | wc -l; }
tree_beyond() { [ "$(tree_n "$1")" -gt "$2" ]; }
# "" if the guest's counter never went back over its console, else the first step back; a new
# boot of the guest (its uptime starts again) starts a new counter, as a machine's RAPL does.
tree_back() {
	tree_series "$1" | awk '{ if (n && $1 < u) n = 0; if (n && $2 < p) { print "back at up=" $1 ": " p " -> " $2; exit } p = $2; u = $1; n++ }'
}
tree_boots() { tree_series "$1" | awk '{ if (!n || $1 < u) b++; u = $1; n++ } END { print b + 0 }'; }

# After a migration the guest's counter goes on from what it had (it rebased), the host's starts
# afresh: what both count over the same few seconds agrees within two intervals' energy (the
# guest reads each end up to an interval late), at least 1 J.
assert_metered_delta() { # node vmid what
	local n g0 h0 g1 h1 res
	n=$(tree_n "$2")
	wait_for 5 tree_beyond "$2" "$n"
	h0=$(dom_j "$1" "$2")
	g0=$(tree_series "$2" | tail -1 | awk '{ print $2 }')
	sleep 4
	n=$(tree_n "$2")
	wait_for 5 tree_beyond "$2" "$n"
	h1=$(dom_j "$1" "$2")
	g1=$(tree_series "$2" | tail -1 | awk '{ print $2 }')
	res=$(tree_series "$2" | tail -6 | awk -v g0="$g0" -v g1="$g1" -v h0="${h0:-0}" -v h1="${h1:-0}" '
		{ if (n && $1 > t) { e = ($2 - p) / 1e6 / ($1 - t); if (e > m) m = e } p = $2; t = $1; n++ }
		END { b = 2 * m * 1.5; if (b < 1) b = 1; dg = (g1 - g0) / 1e6; dh = h1 - h0; d = dg - dh; if (d < 0) d = -d
			printf "%.3f %.3f %.3f %.3f\n", dg, dh, d, b }')
	# shellcheck disable=SC2086
	set -- "$1" "$2" "$3" $res
	check "VM $2 $3: over 4 s the guest counted $4 J, $1's counter $5 J (|diff| $6 J <= $7 J)" \
		sh -c "[ -n '$h0' ] && [ -n '$h1' ] && awk -v d=$6 -v b=$7 -v g=$4 'BEGIN { exit !(d <= b && g > 0) }'"
}

# The guest's energy next to the host's counter: within one interval's energy at most (the
# largest rate between the last samples, half as much again, at least 0.5 J).
assert_metered() { # node vmid what
	local n h g diff bound
	n=$(tree_n "$2")
	h=$(dom_j "$1" "$2")
	wait_for 5 tree_beyond "$2" "$n"
	g=$(tree_series "$2" | tail -1 | awk '{ printf "%.6f", $2 / 1e6 }')
	# (not the first samples of a boot: the first record carries the boot's energy at once)
	bound=$(tree_series "$2" | tail -n +3 | tail -6 | awk '{ if (n && $1 > t) { e = ($2 - p) / 1e6 / ($1 - t); if (e > m) m = e } p = $2; t = $1; n++ }
		END { b = m * 1.5; if (b < 0.5) b = 0.5; printf "%.3f", b }')
	diff=$(awk -v a="$g" -v b="${h:-0}" 'BEGIN { d = a - b; if (d < 0) d = -d; printf "%.3f", d }')
	check "VM $2 $3: the guest's energy ${g} J = $1's counter ${h:-none} J within one interval (|diff| $diff J <= $bound J)" \
		sh -c "[ -n '$h' ] && awk -v d=$diff -v b=$bound 'BEGIN { exit !(d <= b) }'"
}

# The channel into the VM with the hookscript only; the guest metered; QMP free.
step_channel() {
	log "VMs 100 (hookscript), 101 (no hookscript), 102 (hookscript, no agent) on $A"
	vm_conf $A 100 web local:snippets/powerd-hook 1 6
	vm_conf $A 101 db - 1 0
	vm_conf $A 102 noagent local:snippets/powerd-hook 0 0
	: >"$W/vm100.serial"
	local t
	t=$(date +%s.%N)
	# QMP stays free: greetings every 0.2 s from the first moment powerd-host can see the VM
	qm_on $A start 100 >>"$W/qm.log" 2>&1 || { not_ok "$A: qm start 100"; return 1; }
	on $A $PY "$QMP_PY" -t 5 /var/run/qemu-server/100.qmp probe 8 0.2 >"$W/probe-start.log" 2>&1 &
	local probe=$!
	if wait_for 30 transport_is $A 100 connected; then
		CONNECT_S=$(since "$t")
		ok "VM 100: powerd-host hot-plugged the channel and connected ${CONNECT_S}s after qm start"
	else
		not_ok "VM 100: channel connected within 30s of qm start (state: $(transport_of $A 100))"
	fi
	wait "$probe"
	check "VM 100: QMP stayed free while powerd-host plugged the channel: greeting every 0.2 s for 8 s, each within 1 s ($(cat "$W/probe-start.log" | tr '\n' ' '))" \
		awk '/^n=/ { split($2, m, "="); split($4, f, "="); ok = (m[2] < 1.0 && f[2] == 0) } END { exit !ok }' "$W/probe-start.log"
	qm_on $A start 101 >>"$W/qm.log" 2>&1 || not_ok "$A: qm start 101"
	qm_on $A start 102 >>"$W/qm.log" 2>&1 || not_ok "$A: qm start 102"
	local d100 d101
	d100=$(vm_devices $A 100)
	check "VM 100: the port is in qemu: chardev powerd-energy, device powerd-energy0 ($d100)" \
		sh -c "echo '$d100' | grep -q 'chardevs:.* powerd-energy' && echo '$d100' | grep -q 'devices:.* powerd-energy0'"
	check "VM 100: device powerd-energy0 is port org.powerd.energy.0" \
		sh -c "$W/nodes/$A $PY $QMP_PY /var/run/qemu-server/100.qmp run qom-get '{\"path\": \"/machine/peripheral/powerd-energy0\", \"property\": \"name\"}' | grep -q org.powerd.energy.0"
	if wait_for 90 grep -aq '^=== PORT vport' "$W/vm100.serial"; then
		ok "VM 100: the guest found the port ($(grep -a -m1 '^=== PORT' "$W/vm100.serial" | tr -d '\r'))"
	else
		not_ok "VM 100: the guest found port org.powerd.energy.0 within 90s"
	fi
	check "VM 100: powerd-guest reads the channel (tree_out)" wait_for 30 tree_beyond 100 6
	assert_metered $A 100 "on $A"

	# the VMs without the hookscript / without the agent's bus: untouched, and status says why
	sleep 2 # (two intervals: time enough for powerd-host to have plugged them, were it wrong)
	d101=$(vm_devices $A 101)
	check "VM 101 (no hookscript): untouched: no port, only the command line's chardevs and devices ($d101)" \
		test "$d101" = "chardevs: e2econ qga0 qmp qmp-event; devices: pci.1 pci.2 qga0"
	check "VM 101: the channel's state is not connected ($(transport_of $A 101))" transport_not $A 101 connected
	node_status $A >"$W/status-$A.txt"
	local uuid
	uuid=$(sed -n 's/^smbios1: uuid=//p' "$W/pve/nodes/$A/qemu-server/100.conf")
	check "VM 100: the info series carries its name and smbios1 uuid (powerd_domain_info{domain=\"100\",uuid=\"$uuid\",instance_name=\"web\"...})" \
		info_has $A 100 "$uuid" web
	check "powerd-host status on $A names VM 100 by vmid and name (web)" grep -qE '(^|[^0-9])100([^0-9]|$).*web|web.*(^|[^0-9])100([^0-9]|$)' "$W/status-$A.txt"
	check "powerd-host status on $A names VM 101 (db) and the fix: qm set 101 --hookscript local:snippets/powerd-hook" \
		sh -c "grep -q '101' $W/status-$A.txt && grep -q 'db' $W/status-$A.txt && grep -q 'qm set 101 --hookscript' $W/status-$A.txt"
	check "powerd-host status on $A says VM 102 (noagent) lacks the agent's bus (agent: 1)" \
		sh -c "grep -q '102' $W/status-$A.txt && grep -qi 'agent' $W/status-$A.txt"
	check "VM 102 (no agent): untouched ($(vm_devices $A 102))" sh -c "! $W/nodes/$A $PY $QMP_PY /var/run/qemu-server/102.qmp run query-chardev | grep -q powerd"
	qm_on $A stop 102 >>"$W/qm.log" 2>&1

	# QMP stays free while powerd-host runs, channel connected
	on $A $PY "$QMP_PY" -t 5 /var/run/qemu-server/100.qmp probe 5 0.2 >"$W/probe-steady.log" 2>&1
	QMP_PROBE="at hot-plug $(cat "$W/probe-start.log"), steady $(cat "$W/probe-steady.log")"
	check "VM 100: QMP free while the channel runs: greeting every 0.2 s for 5 s, each within 1 s ($(cat "$W/probe-steady.log"))" \
		awk '/^n=/ { split($2, m, "="); split($4, f, "="); ok = (m[2] < 1.0 && f[2] == 0) } END { exit !ok }' "$W/probe-steady.log"
}

hook_took() { # log vmid phase: seconds the hookscript took, from the qm stand-in's line
	awk -v v="$2" -v p="$3" '$1 == "hookscript" && $3 == v && $4 == p":" { t = $(NF - 1) } END { print t }' "$1"
}

# Proxmox VE's default migration type is secure: the target's qemu listens on
# <run_dir>/<vmid>.migrate (-incoming unix:), reached from the source through an ssh tunnel (here
# a relay through the node runner); insecure is tcp (-incoming defer, then migrate-incoming).
migrate_vm() { # vmid from to label [secure|insecure]: qm migrate, then the channel on the other side
	local vm=$1 from=$2 to=$3 type=${5:-secure} t
	t=$(date +%s.%N)
	if qm_on "$from" migrate "$vm" "$to" --migration_type "$type" >"$W/mig-$vm-$4.log" 2>&1; then
		eval "MIG_${4}_S=$(since "$t")"
		ok "VM $vm: qm migrate $from -> $to, $type ($(since "$t")s; $(grep -E '^(target started|migration listens|migration status)' "$W/mig-$vm-$4.log" | tr '\n' ';'))"
	else
		not_ok "VM $vm: qm migrate $from -> $to ($(tail -4 "$W/mig-$vm-$4.log" | tr '\n' ' '))"
		return 1
	fi
}

step_migrate() {
	log "live migrations of VM 100 $A -> $B -> $A, VM 101 $A -> $B"
	local n up0
	up0=$(tree_series 100 | tail -1 | awk '{ print $1 }')
	n=$(tree_n 100)
	migrate_vm 100 $A $B AB || return 1
	check "VM 100: a secure migration, as Proxmox VE's default: the target's qemu listened on its unix socket, reached through the tunnel" \
		grep -q "^tunnel /var/run/qemu-server/100.migrate -> $B:/var/run/qemu-server/100.migrate" "$W/mig-100-AB.log"
	MIG_AB_HOOK_S=$(hook_took "$W/mig-100-AB.log" 100 post-start)
	HOOK_PLUG_S=$MIG_AB_HOOK_S
	check "VM 100: the hookscript ran on $B's target with PVE_MIGRATED_FROM=$A and plugged the port before the state came (post-start ${MIG_AB_HOOK_S:-?}s)" \
		grep -q "hookscript local:snippets/powerd-hook 100 post-start: exit 0" "$W/mig-100-AB.log"
	check "VM 100: the channel is connected on $B" wait_for 30 transport_is $B 100 connected
	check "VM 100: its qemu on $A is gone, $A's channel state leaves connected" wait_for 10 transport_not $A 100 connected
	check "VM 100: its port is marked on $B (pid of its qemu there) and no longer on $A" \
		wait_for 10 moved_mark 100 $B $A
	check "VM 100: the guest reads records from $B" wait_for 30 tree_beyond 100 $((n + 3))
	assert_metered_delta $B 100 "on $B"
	n=$(tree_n 100)
	migrate_vm 100 $B $A BA || return 1
	check "VM 100: the channel is connected on $A again" wait_for 30 transport_is $A 100 connected
	check "VM 100: the guest reads records from $A again" wait_for 30 tree_beyond 100 $((n + 3))
	assert_metered_delta $A 100 "back on $A"
	local bad
	bad=$(tree_back 100)
	check "VM 100: the guest's counter never went back across both migrations ($(tree_n 100) samples${bad:+; $bad})" test -z "$bad"

	# a VM without the hookscript migrates unharmed
	migrate_vm 101 $A $B 101 insecure &&
		check "VM 101 (no hookscript) runs on $B, its guest alive, still no port ($(vm_devices $B 101))" \
			no_port_alive $B 101
	step_attach
	step_unplugged_source
	qm_on $A stop 101 >>"$W/qm.log" 2>&1
}

# The port marks in the cluster file system (hostd/pve_mark.h): nodes/<node>/powerd/<vmid>.port
# names the qemu that has the port.
marked_pid() { # node vmid
	sed -n 's/^pid \([0-9]*\)$/\1/p' "$W/pve/nodes/$1/powerd/$2.port" 2>/dev/null
}
is_marked() { # node vmid: marked, with the pid of the VM's qemu there
	local p
	p=$(vm_pid "$1" "$2") && [ -n "$p" ] && [ "$(marked_pid "$1" "$2")" = "$p" ]
}
not_marked() { [ ! -e "$W/pve/nodes/$1/powerd/$2.port" ]; }
moved_mark() { is_marked "$2" "$1" && not_marked "$3" "$1"; } # vmid to from

# The guest-loss case the marks close: VM 101, running on B without the port, is given powerd's
# hookscript while B's powerd-host is stopped (so nothing plugs it). Its migration target's hook
# must not plug a port (qemu would fail the migration after the source finished, and the guest
# would be lost): B has no mark for 101, so A's hook plugs none, the migration works, and A's
# powerd-host plugs the port once the VM runs there.
unplugged_unmarked() { # node vmid
	! qmp "$1" "$2" query-chardev | grep -q powerd && not_marked "$1" "$2" && [ -d "$W/pve/nodes/$1/powerd" ]
}
step_unplugged_source() {
	log "VM 101 given the hookscript on $B while its powerd-host is stopped, then migrated to $A"
	local old
	eval "old=\$HOST_PID_$B"
	kill -TERM "$old"
	wait "$old" 2>/dev/null
	check "powerd-host on $B stopped (pid $old gone)" wait_for 10 sh -c "! kill -0 $old 2>/dev/null"
	qm_on $B set 101 --hookscript local:snippets/powerd-hook >>"$W/qm.log" 2>&1 ||
		not_ok "qm set 101 --hookscript local:snippets/powerd-hook on $B"
	check "VM 101 on $B: the hookscript set, no port, no mark, and $B keeps marks ($(vm_devices $B 101))" \
		unplugged_unmarked $B 101
	if migrate_vm 101 $B $A unplugged; then
		check "VM 101: $A's hook saw no mark on $B and plugged no port before the state came" \
			grep -q "runs on $B without powerd's port" "$W/mig-101-unplugged.log"
		check "VM 101 runs on $A, its guest alive" guest_alive 101
		check "VM 101: $A's powerd-host plugs the port once the VM runs there, and connects" \
			wait_for 30 transport_is $A 101 connected
		check "VM 101: marked on $A with its qemu's pid" wait_for 5 is_marked $A 101
	fi
	start_host_on $B
}

# powerd-host attach / detach VMID --channel (through qm set) on VM 101, now on B.
conf_has() { grep -qx "$2" "$W/pve/nodes/$B/qemu-server/$1.conf"; }
conf_lacks() { ! grep -q "^$2" "$W/pve/nodes/$B/qemu-server/$1.conf"; }
refused_kept() { # vmid message: the other hookscript stays, the message names the hookscript
	conf_has "$1" "hookscript: local:snippets/other" && grep -q hookscript <<<"$2"
}
has_port() { vm_devices "$1" "$2" | grep -q 'devices:.* powerd-energy0'; }
devices_are() { [ "$(vm_devices "$1" "$2")" = "$3" ]; }
step_attach() {
	log "powerd-host attach / detach 101 --channel on $B"
	local out base
	base=$(vm_devices $B 101)
	printf '#!/bin/sh\nexit 0\n' >"$W/$B/vz/snippets/other" && chmod 755 "$W/$B/vz/snippets/other"
	qm_on $B set 101 --hookscript local:snippets/other >>"$W/qm.log" 2>&1
	if out=$(on $B powerd-host-node attach 101 --channel 2>&1); then
		not_ok "attach 101 --channel refuses while VM 101 has another hookscript (it succeeded: $out)"
	else
		check "attach 101 --channel refuses while VM 101 has another hookscript, and says so ($(echo "$out" | tr '\n' ' '))" \
			refused_kept 101 "$out"
	fi
	qm_on $B set 101 --delete hookscript >>"$W/qm.log" 2>&1
	if out=$(on $B powerd-host-node attach 101 --channel 2>&1); then
		ok "attach 101 --channel on $B ($(echo "$out" | tr '\n' ' '))"
	else
		not_ok "attach 101 --channel on $B ($(echo "$out" | tr '\n' ' '))"
	fi
	check "VM 101's config has hookscript: local:snippets/powerd-hook (qm set)" conf_has 101 "hookscript: local:snippets/powerd-hook"
	check "VM 101: the port is plugged at once" has_port $B 101
	check "VM 101: the channel connects" wait_for 20 transport_is $B 101 connected
	if out=$(on $B powerd-host-node detach 101 --channel 2>&1); then
		ok "detach 101 --channel on $B ($(echo "$out" | tr '\n' ' '))"
	else
		not_ok "detach 101 --channel on $B ($(echo "$out" | tr '\n' ' '))"
	fi
	check "VM 101's config has no hookscript again" conf_lacks 101 "hookscript:"
	check "VM 101: the port is gone, qemu's chardevs and devices as before attach ($base)" wait_for 5 devices_are $B 101 "$base"
	step_locked
}

# The race qemu-server's lock closes (hostd/pve_lock.h): powerd's hookscript set on VM 101 just
# before a migration took the VM's lock. qm migrate holds lock-101.conf on its source from before
# its target's hook reads this node's marks until the end, so B's powerd-host must leave the port
# out while the lock is held (a port plugged now would be missing on the target, which fails the
# state after the source finished) and plug it once qemu-server lets go. The lock held here by a
# process on B, as qemu-server takes it.
reason_has() { # node vmid text: the channel's reason label starts with it
	node_metrics "$1" | grep -qF "powerd_domain_transport{domain=\"$2\",transport=\"channel\",state=\"connecting\",reason=\"$3"
}
no_port_unmarked() { ! has_port "$1" "$2" && not_marked "$1" "$2"; }
step_locked() {
	log "VM 101 on $B: powerd's hookscript set while qemu-server holds the VM's lock"
	local holder
	start_bg "$W/lock-101.log" "$W/nodes/$B" $PY -c 'import fcntl, os, sys, time
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)' /var/lock/qemu-server/lock-101.conf
	holder=$LAST_PID
	check "VM 101: its lock on $B (lock-101.conf) held by another process" wait_for 10 grep -q '^held$' "$W/lock-101.log"
	echo "hookscript: local:snippets/powerd-hook" >>"$W/pve/nodes/$B/qemu-server/101.conf"
	check "VM 101 locked: $B's powerd-host leaves the port out and says why (state connecting, reason config locked by qemu-server)" \
		wait_for 10 reason_has $B 101 "config locked by qemu-server ("
	check "VM 101 locked: no port in its qemu, no mark ($(vm_devices $B 101))" no_port_unmarked $B 101
	stop_pid "$holder"
	check "VM 101 unlocked: $B's powerd-host plugs the port and connects" wait_for 20 transport_is $B 101 connected
	check "VM 101: the port is in its qemu" has_port $B 101
	check "VM 101: marked on $B with its qemu's pid" wait_for 5 is_marked $B 101
	on $B powerd-host-node detach 101 --channel >>"$W/qm.log" 2>&1 || not_ok "detach 101 --channel on $B after the lock"
	check "VM 101: detached again, as before" conf_lacks 101 "hookscript:"
}

# A hook that cannot plug the port (the target's QMP held by another client) fails the
# migration before the source is touched: the source runs on, its guest alive and metered.
step_hook_failure() {
	log "VM 100 with its hook unable to plug on the target: the migration must fail, the source run on"
	qm_on $A set 100 --hookscript qmpheld:snippets/powerd-hook >>"$W/qm.log" 2>&1 ||
		{ not_ok "qm set 100 --hookscript qmpheld:snippets/powerd-hook"; return 1; }
	local pid0 n t
	pid0=$(vm_pid $A 100)
	n=$(tree_n 100)
	t=$(date +%s.%N)
	if qm_on $A migrate 100 $B >"$W/mig-100-held.log" 2>&1; then
		not_ok "VM 100: the migration with a hook that cannot plug fails (it succeeded)"
	else
		MIG_FAIL_S=$(since "$t")
		ok "VM 100: the migration with a hook that cannot plug fails (${MIG_FAIL_S}s; $(grep -E 'hookscript|migration' "$W/mig-100-held.log" | tail -3 | tr '\n' ';'))"
	fi
	check "VM 100: the hook exited non-zero on the target" grep -q "qmpheld-hook 100 post-start rc=[1-9]" "$W/hooks.log"
	check "VM 100: the source's qemu runs on (same pid $pid0), its config still on $A, no qemu for it on $B" \
		source_stayed 100 "$pid0"
	check "VM 100: the source is running (query-status)" sh -c "$W/nodes/$A $PY $QMP_PY /var/run/qemu-server/100.qmp run query-status | grep -q '\"running\"'"
	check "VM 100: its guest is alive and still reads records from $A" wait_for 20 tree_beyond 100 $((n + 3))
	qm_on $A set 100 --hookscript local:snippets/powerd-hook >>"$W/qm.log" 2>&1
}

# Hibernation (qm suspend --todisk) saves the device state with the port, and qemu-server
# resumes it from the config's devices, before any hook runs: qemu refuses the state, the start
# fails, the state is kept (docs/proxmox.md). The documented way back: the port on the command
# line through args: for that start, then args as they were; the guest goes on where it was.
PORT_ARGS='-chardev socket,id=powerd-energy,path=/var/run/qemu-server/100.powerd,server=on,wait=off -device virtserialport,bus=qga0.0,nr=2,chardev=powerd-energy,id=powerd-energy0,name=org.powerd.energy.0'
conf_args() { sed -n 's/^args: //p' "$W/pve/nodes/$A/qemu-server/$1.conf"; }
step_hibernate() {
	log "VM 100 hibernated (qm suspend --todisk) with the port, resumed"
	local n b args out
	n=$(tree_n 100)
	b=$(tree_boots 100)
	if ! qm_on $A suspend 100 --todisk 1 >"$W/suspend-100.log" 2>&1; then
		not_ok "VM 100: qm suspend --todisk ($(tail -3 "$W/suspend-100.log" | tr '\n' ' '))"
		return 1
	fi
	check "VM 100 hibernated: qemu gone, config locked suspended with its vmstate" \
		sh -c "! $W/nodes/$A qm pid 100 >/dev/null && grep -qx 'lock: suspended' $W/pve/nodes/$A/qemu-server/100.conf"
	if out=$(qm_on $A start 100 2>&1); then
		not_ok "VM 100: resuming a state with the port from the config's devices fails (it worked: $out)"
	else
		check "VM 100: resuming a state with the port from the config's devices fails, the state kept ($(echo "$out" | tail -2 | tr '\n' ' '))" \
			grep -q '^vmstate: ' "$W/pve/nodes/$A/qemu-server/100.conf"
	fi
	args=$(conf_args 100)
	# (a hibernated VM is locked: qm set needs --skiplock, as on Proxmox VE)
	qm_on $A set 100 --skiplock 1 --args "$args $PORT_ARGS" >>"$W/qm.log" 2>&1 ||
		not_ok "qm set 100 --skiplock 1 --args (the port added)"
	if out=$(qm_on $A start 100 2>&1); then
		ok "VM 100: resumed with the port on the command line (args:) ($(echo "$out" | tr '\n' ' '))"
	else
		not_ok "VM 100: resumed with the port on the command line ($(echo "$out" | tail -2 | tr '\n' ' '))"
		# the state given up, so that the steps after start from a clean config
		qm_on $A set 100 --skiplock 1 --args "$args" --delete vmstate,lock >>"$W/qm.log" 2>&1
		return 1
	fi
	qm_on $A set 100 --args "$args" >>"$W/qm.log" 2>&1 || not_ok "qm set 100 --args (as it was)"
	check "VM 100 resumed: the channel is connected again" wait_for 30 transport_is $A 100 connected
	check "VM 100 resumed: its guest goes on where it was and reads records" \
		wait_for 30 tree_beyond 100 $((n + 2))
	check "VM 100 resumed: no new boot of its guest (boots $b -> $(tree_boots 100))" test "$(tree_boots 100)" = "$b"
	check "VM 100 resumed: marked again with its new qemu's pid" wait_for 10 is_marked $A 100
}

# VM stop, start, reboot (a new qemu), kill -9 of qemu, kill -9 and restart of powerd-host: the
# host's counter of VM 100 goes on, the guest's never goes back.
# The host's counter goes on: within 10 s it rises above what it was, and no reading is below.
counter_goes_on() { # node vmid joules
	local h end=$(($(date +%s) + 10))
	while [ "$(date +%s)" -lt $end ]; do
		h=$(dom_j "$1" "$2")
		if [ -n "$h" ]; then
			awk -v h="$h" -v c="$3" 'BEGIN { exit !(h < c) }' && { LAST_J="$h (went back)"; return 1; }
			awk -v h="$h" -v c="$3" 'BEGIN { exit !(h > c) }' && { LAST_J=$h; return 0; }
		fi
		sleep 0.2
	done
	LAST_J="${h:-none} (did not rise)"
	return 1
}
check_goes_on() { # what node vmid joules
	if counter_goes_on "$2" "$3" "$4"; then
		ok "$1: the host's counter of VM $3 goes on ($4 J -> $LAST_J J)"
	else
		not_ok "$1: the host's counter of VM $3 goes on ($4 J -> $LAST_J)"
	fi
}
step_lifecycle() {
	log "VM 100: stop, start, reboot, kill -9 of qemu; kill -9 of powerd-host"
	local c pid
	c=$(dom_j $A 100)
	qm_on $A stop 100 >>"$W/qm.log" 2>&1 || not_ok "qm stop 100"
	check "VM 100 stopped: $A's channel state leaves connected" wait_for 10 transport_not $A 100 connected
	qm_on $A start 100 >>"$W/qm.log" 2>&1 || not_ok "qm start 100"
	check "VM 100 started again: channel connected" wait_for 30 transport_is $A 100 connected
	check_goes_on "VM 100 started again" $A 100 "$c"

	c=$(dom_j $A 100)
	pid=$(vm_pid $A 100)
	qm_on $A stop 100 >>"$W/qm.log" 2>&1 && qm_on $A start 100 >>"$W/qm.log" 2>&1 || not_ok "qm reboot 100 (stop + start)"
	check "VM 100 rebooted (a new qemu: pid $pid -> $(vm_pid $A 100)): channel connected" \
		new_qemu_connected $A 100 "$pid"
	check_goes_on "VM 100 rebooted" $A 100 "$c"

	c=$(dom_j $A 100)
	pid=$(vm_pid $A 100)
	kill -KILL "$pid"
	check "VM 100's qemu killed -9: $A notices within two intervals" wait_for 3 transport_not $A 100 connected
	rmdir "$CGBASE/$A/qemu.slice/100.scope" 2>/dev/null # systemd removes the empty scope
	qm_on $A start 100 >>"$W/qm.log" 2>&1 || not_ok "qm start 100 after kill -9"
	check "VM 100 started after kill -9: channel connected" wait_for 30 transport_is $A 100 connected
	check_goes_on "VM 100 after kill -9" $A 100 "$c"

	local n
	wait_for 90 tree_beyond 100 "$(($(tree_n 100) + 2))" # the last guest booted and reads
	c=$(dom_j $A 100)
	n=$(tree_n 100)
	local old
	eval "old=\$HOST_PID_$A"
	kill -KILL "$old"
	wait "$old" 2>/dev/null
	check "powerd-host on $A killed -9 (pid $old gone)" wait_for 5 sh -c "! kill -0 $old 2>/dev/null"
	sleep 2 # the guest goes without records for a while: the gap is the point
	start_host_on $A || return 1
	check "after kill -9 of powerd-host: VM 100's channel connected again" wait_for 30 transport_is $A 100 connected
	check "after kill -9 of powerd-host: the guest reads records again" wait_for 30 tree_beyond 100 $((n + 2))
	check_goes_on "after kill -9 of powerd-host" $A 100 "$c"
	local bad
	bad=$(tree_back 100)
	check "VM 100: the guest's counter never went back within each of its $(tree_boots 100) boots, across migrations and kill -9 of powerd-host ($(tree_n 100) samples${bad:+; $bad})" test -z "$bad"
	qm_on $A stop 100 >>"$W/qm.log" 2>&1
}

# Attribution: a busy VM and an idle one; their shares of the energy attributed to the two
# follow their scopes' CPU time (qemu.slice/<vmid>.scope/cpu.stat, read by the test) within 2
# points. Both paused at each end of the window (their CPU time stands still), two ticks let
# powerd-host read them, then the test reads cpu.stat, and they go on.
scope_usec() { awk '$1 == "usage_usec" { print $2 }' "$CGBASE/$A/qemu.slice/$1.scope/cpu.stat"; }
host_energy_a() { node_metrics $A | metric 'powerd_host_energy_joules_total\{zone="package-0"\}'; }
next_tick_a() {
	local e0 e
	e0=$(host_energy_a)
	for _ in $(seq 100); do
		e=$(host_energy_a)
		[ -n "$e" ] && [ "$e" != "$e0" ] && return 0
		sleep 0.05
	done
	return 1
}
attr_sample() { # sets S_E110 S_E111 (J) S_C110 S_C111 (µs)
	qmp $A 110 stop >/dev/null && qmp $A 111 stop >/dev/null || not_ok "QMP stop 110 111 (sample)"
	next_tick_a
	next_tick_a
	local m
	m=$(node_metrics $A)
	S_E110=$(echo "$m" | metric 'powerd_domain_energy_joules_total\{domain="110",zone="package-0"\}')
	S_E111=$(echo "$m" | metric 'powerd_domain_energy_joules_total\{domain="111",zone="package-0"\}')
	S_C110=$(scope_usec 110)
	S_C111=$(scope_usec 111)
	qmp $A 110 cont >/dev/null && qmp $A 111 cont >/dev/null || not_ok "QMP cont 110 111 (sample)"
}
cpu_source_is() { node_metrics "$1" | grep -q "^powerd_domain_cpu_source{domain=\"$2\",source=\"$3\"} 1"; }

step_attribution() {
	local win=${POWERD_E2E_WINDOW_S:-20}
	log "attribution: VM 110 busy, VM 111 idle on $A, ${win}s"
	vm_conf $A 110 busy local:snippets/powerd-hook 1 forever
	vm_conf $A 111 idle - 1 0
	qm_on $A start 110 >>"$W/qm.log" 2>&1 && qm_on $A start 111 >>"$W/qm.log" 2>&1 ||
		{ not_ok "qm start 110 111"; return 1; }
	if ! wait_for 120 grep -aq '^=== PHASE burn' "$W/vm110.serial"; then
		not_ok "VM 110's guest burns within 120s"
		return 1
	fi
	local vm
	for vm in 110 111; do
		check "VM $vm: powerd-host reads its scope (powerd_domain_cpu_source cgroup2)" wait_for 10 cpu_source_is $A $vm cgroup2
	done
	sleep 2
	attr_sample
	local e0a=$S_E110 e0b=$S_E111 c0a=$S_C110 c0b=$S_C111
	sleep "$win"
	attr_sample
	local res
	res=$(awk -v ea="$(awk -v a="$e0a" -v b="$S_E110" 'BEGIN { print b - a }')" \
		-v eb="$(awk -v a="$e0b" -v b="$S_E111" 'BEGIN { print b - a }')" \
		-v ca="$((S_C110 - c0a))" -v cb="$((S_C111 - c0b))" 'BEGIN {
		if (ea + eb <= 0 || ca + cb <= 0) { print "- - - - - - 0"; exit }
		se = ea / (ea + eb); sc = ca / (ca + cb); d = se - sc; if (d < 0) d = -d
		printf "%.4f %.4f %.4f %.2f %.2f %.2f %.2f\n", se, sc, d, ea, eb, ca / 1e6, cb / 1e6
	}')
	# shellcheck disable=SC2086
	set -- $res
	ATTR="VM 110 energy share $1, CPU share $2 (|diff| $3; $4 J / $5 J, CPU $6 s / $7 s over ${win}s)"
	log "measured: $ATTR"
	check "attribution: busy VM 110's share of the energy ($1) = its scope's share of CPU time ($2) within 2 points (|diff| $3)" \
		awk -v d="$3" 'BEGIN { exit !(d != "-" && d <= 0.02) }'
	check "attribution: the busy VM used most of the CPU ($6 s vs $7 s)" awk -v a="$6" -v b="$7" 'BEGIN { exit !(a > 2 * b) }'
	qm_on $A stop 110 >>"$W/qm.log" 2>&1
	qm_on $A stop 111 >>"$W/qm.log" 2>&1
}

main() {
	log "work dir $W, source $SOURCE"
	step_cluster || return 1
	step_start_raplsim
	step_build_guest || return 1
	step_channel_initrd || return 1
	step_emulation
	if step_hosts; then
		step_channel
		step_migrate
		step_hook_failure
		step_hibernate
		step_lifecycle
		step_attribution
	fi
	local others
	others=$(cat "$W/$A-qmeventd.log" "$W/$B-qmeventd.log" | awk '$1 == "connect" && $3 !~ /qemu-system-x86_64$/' | head -3)
	check "only qemu connected to qmeventd.sock ($(grep -c '^connect' "$W/$A-qmeventd.log" "$W/$B-qmeventd.log" | tr '\n' ' ')connections${others:+; others: $others})" \
		test -z "$others"
	local p
	for p in "${PENDING[@]}"; do
		echo "# pending: $p"
	done
}

main
e2e_finish
