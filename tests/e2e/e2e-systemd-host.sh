#!/usr/bin/env bash
# powerd-host.service under a real systemd that also runs libvirtd: a Debian root (debootstrap,
# cached) with libvirt and qemu, booted with systemd as PID 1 by systemd-nspawn, the project's
# powerd-host package installed in it with dpkg, `systemctl enable --now powerd-host`, then:
#   - the libvirt hook from the package prepares a domain's share while powerd-host is stopped;
#   - a domain (busybox guest, TCG) started by libvirtd sees its tree (powerd-guest in it);
#   - `systemctl reload` and `systemctl restart powerd-host` keep every counter (tree and metrics);
#   - systemd's watchdog is armed for the unit, and the unit runs in the host's mount namespace
#     (its mounts reach libvirtd and qemu: DESIGN.md §1).
#
#   e2e-systemd-host.sh --host BIN --guest BIN --raplsim BIN [--source DIR] [--keep]
#
# The package is built with cpack from the build directory of BIN. Exits 77 where it cannot run
# (no systemd-nspawn or debootstrap, not root).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
e2e_init "$@"

BUILD=$(cd "$(dirname "$HOST_BIN")" && pwd)
ROOT_CACHE=$CACHE/bookworm-libvirt
DOM=powerd-e2e-sd
E2E_LOGS="nspawn.log $DOM.serial in-journal.log"
e2e_timings() { echo "container boot ${BOOT_S:-?}s; guest first scrape ${GUEST_S:-?}s; "; }
NSPAWN_PID='' LEADER=''

# A command inside the container: all its namespaces, its root, its environment.
in_ct() { nsenter -t "$LEADER" -m -u -i -n -p -C -r -w -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

step_root() {
	if [ ! -x "$ROOT_CACHE/usr/sbin/libvirtd" ]; then
		command -v debootstrap >/dev/null || { log "SKIP: no debootstrap"; exit 77; }
		local mirror
		mirror=${POWERD_E2E_MIRROR:-$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
		log "debootstrap bookworm with libvirt (once; cached in $ROOT_CACHE)"
		rm -rf "$ROOT_CACHE.tmp"
		timeout 900 debootstrap --variant=minbase \
			--include=systemd-sysv,libpam-systemd,dbus,udev,kmod,libvirt-daemon-system,libvirt-daemon-driver-qemu,libvirt-clients,qemu-system-x86,curl,libevent-2.1-7,libyaml-0-2,libseccomp2 \
			bookworm "$ROOT_CACHE.tmp" "${mirror:-http://deb.debian.org/debian}" >"$W/debootstrap.log" 2>&1 ||
			{ not_ok "debootstrap a root with libvirt"; tail -5 "$W/debootstrap.log"; return 1; }
		mv "$ROOT_CACHE.tmp" "$ROOT_CACHE"
	fi
	# the container writes into an overlay: the cache stays as debootstrap made it
	mkdir -p "$W/upper" "$W/work" "$W/root"
	mount -t overlay overlay -o "lowerdir=$ROOT_CACHE,upperdir=$W/upper,workdir=$W/work" "$W/root" ||
		{ not_ok "overlay over the cached root"; return 1; }
	local r=$W/root
	echo powerd-e2e-host >"$r/etc/hostname"
	: >"$r/etc/fstab"
	# no consoles to log in on, nothing that waits for a network
	chroot "$r" systemctl mask console-getty.service getty@tty1.service \
		systemd-networkd-wait-online.service >/dev/null 2>&1
	# qemu as root and no cgroup games for the nested qemu beyond libvirt's defaults
	cat >>"$r/etc/libvirt/qemu.conf" <<-'EOF'
	# powerd e2e (systemd host)
	user = "root"
	group = "root"
	dynamic_ownership = 0
	remember_owner = 0
	security_driver = "none"
	namespaces = [ ]
	EOF
	mkdir -p "$r/var/lib/libvirt/boot"
	cp "$KERNEL" "$r/var/lib/libvirt/boot/vmlinuz"
	cp "$W/initrd.gz" "$r/var/lib/libvirt/boot/initrd.gz"
	chmod 644 "$r/var/lib/libvirt/boot/"*
	# the powercap simulator's tree, seen by the container's powerd-host
	mkdir -p "$r/run/powerd-e2e-powercap"
}

step_package() {
	local out=$W/deb
	mkdir -p "$out"
	if ! (cd "$BUILD" && cpack -G DEB -B "$out" -D CPACK_COMPONENTS_ALL=host >"$W/cpack.log" 2>&1); then
		not_ok "cpack the powerd-host package"
		tail -5 "$W/cpack.log"
		return 1
	fi
	HOST_DEB=$(ls "$out"/powerd-host_*.deb 2>/dev/null | head -1)
	check "powerd-host package built ($(basename "${HOST_DEB:-none}"))" test -s "${HOST_DEB:-/nonexistent}"
	cp "$HOST_DEB" "$W/root/var/tmp/powerd-host.deb"
}

step_boot() {
	log "booting the container (systemd-nspawn -b)"
	# its own cgroup, so that the container's systemd owns a subtree and not the machine's root
	local h
	CG_NAME=powerd-e2e-nspawn-$$
	for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
		[ -f "$h/cgroup.procs" ] || continue
		mkdir -p "$h$CG_NAME" 2>/dev/null || continue
		# a new cpuset has no CPUs or memory nodes until given its parent's
		[ -f "$h/cpuset.cpus" ] && cat "$h/cpuset.cpus" >"$h$CG_NAME/cpuset.cpus" &&
			cat "$h/cpuset.mems" >"$h$CG_NAME/cpuset.mems"
		echo $$ >"$h$CG_NAME/cgroup.procs" 2>/dev/null
	done
	local t
	t=$(date +%s.%N)
	# cgroup v2 for the container (its subtree delegated, writable): nspawn mounts the v1
	# controllers read-only, where libvirt cannot make the domains' cgroups
	start_bg "$W/nspawn.log" env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=${POWERD_E2E_NSPAWN_UNIFIED:-1} systemd-nspawn -q -b -D "$W/root" --register=no --keep-unit \
		--bind="$W/powercap:/run/powerd-e2e-powercap" --capability=all
	NSPAWN_PID=$LAST_PID
	local i
	for i in $(seq 100); do
		# the container's PID 1 (nspawn's child once it has exec'd systemd)
		LEADER=$(ps -o pid=,comm= --ppid "$NSPAWN_PID" 2>/dev/null | awk '$2 == "systemd" { print $1; exit }')
		[ -n "$LEADER" ] && break
		sleep 0.2
	done
	[ -n "$LEADER" ] || { not_ok "systemd-nspawn started a container"; tail -20 "$W/nspawn.log"; return 1; }
	local state
	wait_for 60 in_ct test -S /run/systemd/private
	state=$(timeout 120 nsenter -t "$LEADER" -m -u -i -n -p -C -r -w -- /usr/bin/systemctl is-system-running --wait 2>&1)
	BOOT_S=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	check "container: systemd is PID 1 and the system is up in ${BOOT_S}s (is-system-running: $state)" \
		test "$state" = running -o "$state" = degraded
	[ "$state" = degraded ] && in_ct systemctl --failed --no-legend | sed 's/^/# failed unit: /'
	check "container: libvirtd.service active" in_ct systemctl is-active -q libvirtd.service
}

metrics_port=''
ct_libvirt_answers() { in_ct virsh -c qemu:///system version >/dev/null 2>&1; }
ct_metrics() { in_ct curl -s --max-time 5 "http://127.0.0.1:$metrics_port/metrics"; }
# (the share is a mount in the container's namespace: read it from there)
ct_tree_uj() { in_ct cat "/var/lib/libvirt/scaphandre/$DOM/intel-rapl:0/energy_uj" 2>/dev/null; }
ct_dom_j() { ct_metrics | metric "powerd_domain_energy_joules_total\\{domain=\"$DOM\",zone=\"package-0\"\\}"; }

step_install() {
	metrics_port=$(free_port)
	in_ct mkdir -p /etc/powerd /etc/systemd/system/powerd-host.socket.d
	# the operator's config, kept by dpkg (--force-confold) over the package's
	cat >"$W/root/etc/powerd/host.yaml" <<-EOF
	interval: 1s
	powercap_root: /run/powerd-e2e-powercap
	domains: { include: ["powerd-e2e-*"] }
	log_level: debug
	EOF
	# the metrics port: a free one (the container shares this machine's network)
	printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\n' "$metrics_port" \
		>"$W/root/etc/systemd/system/powerd-host.socket.d/port.conf"
	# apt resolves the package's dependencies (procps, adduser) from the mirror
	if in_ct apt-get -q -y update >"$W/apt.log" 2>&1 &&
		in_ct env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
			-o Dpkg::Options::=--force-confold install /var/tmp/powerd-host.deb >>"$W/apt.log" 2>&1; then
		ok "container: apt-get install ./powerd-host.deb (the operator's host.yaml kept)"
	else
		not_ok "container: apt-get install ./powerd-host.deb"
		tail -10 "$W/apt.log"
		return 1
	fi
	check "container: the package's hook is installed (/etc/libvirt/hooks/qemu.d/powerd, executable)" \
		test -x "$W/root/etc/libvirt/hooks/qemu.d/powerd"
	in_ct systemctl daemon-reload
	check "container: systemctl enable --now powerd-host" in_ct systemctl enable --now powerd-host.socket powerd-host.service
	check "container: powerd-host.service active" wait_for 20 in_ct systemctl is-active -q powerd-host.service
	check "container: powerd-host serves metrics on the socket unit's port $metrics_port" \
		wait_for 20 sh -c "curl -s --max-time 2 http://127.0.0.1:$metrics_port/metrics | grep -q ^powerd_host_energy_joules_total"
	local wd
	wd=$(in_ct systemctl show -p WatchdogUSec --value powerd-host.service)
	check "container: systemd's watchdog is armed for powerd-host (WatchdogUSec=$wd)" \
		sh -c "[ -n '$wd' ] && [ '$wd' != 0 ] && [ '$wd' != infinity ]"
	local hostpid mnt1 mnt2
	hostpid=$(in_ct systemctl show -p MainPID --value powerd-host.service)
	mnt1=$(in_ct readlink /proc/1/ns/mnt)
	mnt2=$(in_ct readlink "/proc/$hostpid/ns/mnt")
	check "container: powerd-host runs in PID 1's mount namespace ($mnt2 = $mnt1)" test "$mnt1" = "$mnt2"
	# libvirtd reads its hooks at start only
	in_ct systemctl restart libvirtd.service
	check "container: libvirtd restarted (to read the hook)" wait_for 30 ct_libvirt_answers
}

dom_xml() {
	cat <<-EOF
	<domain type='qemu'>
	  <name>$DOM</name>
	  <memory unit='MiB'>256</memory>
	  <vcpu>1</vcpu>
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>/var/lib/libvirt/boot/vmlinuz</kernel>
	    <initrd>/var/lib/libvirt/boot/initrd.gz</initrd>
	    <cmdline>console=ttyS0 quiet loglevel=1 panic=-1 powerd_e2e.fs=9p powerd_e2e.burn=4 powerd_e2e.idle=4</cmdline>
	  </os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    <filesystem type='mount' accessmode='passthrough'><source dir='/var/lib/libvirt/scaphandre/$DOM'/><target dir='scaphandre'/><readonly/></filesystem>
	    <serial type='file'><source path='/var/log/libvirt/qemu/$DOM.serial' append='on'/><target port='0'/></serial>
	    <video><model type='none'/></video>
	    <memballoon model='none'/>
	  </devices>
	</domain>
	EOF
}

serial() { cat "$W/root/var/log/libvirt/qemu/$DOM.serial" 2>/dev/null | tr -d '\r'; }

step_domain() {
	log "a domain, started while powerd-host is stopped: only the package's hook can prepare it"
	in_ct systemctl stop powerd-host.service 2>/dev/null
	dom_xml >"$W/root/var/tmp/$DOM.xml"
	# defined while the daemon is down: nothing prepares the share at DEFINED
	in_ct virsh -q -c qemu:///system define "/var/tmp/$DOM.xml" >/dev/null ||
		{ not_ok "container: virsh define $DOM"; return 1; }
	local t m
	t=$(date +%s.%N)
	if ! in_ct virsh -q -c qemu:///system start "$DOM" >"$W/start.log" 2>&1; then
		not_ok "container: virsh start $DOM ($(tr '\n' ' ' <"$W/start.log"))"
		return 1
	fi
	m=$(in_ct findmnt -rn -o FSTYPE,OPTIONS -M "/var/lib/libvirt/scaphandre/$DOM" | tail -1)
	check "container: the hook prepared $DOM's share before qemu started (a read-only tmpfs: $m)" \
		sh -c "case '$m' in 'tmpfs '*ro,*|'tmpfs ro') exit 0;; *) exit 1;; esac"
	in_ct systemctl start powerd-host.service
	check "container: powerd-host back (adopts the share)" wait_for 20 in_ct systemctl is-active -q powerd-host.service
	if wait_for 120 sh -c "cat '$W/root/var/log/libvirt/qemu/$DOM.serial' 2>/dev/null | grep -aq '^=== END ==='"; then
		GUEST_S=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
		ok "$DOM: its guest mounted the share and powerd-guest answered a scrape (${GUEST_S}s after start)"
	else
		not_ok "$DOM: its guest's powerd-guest answered a scrape within 120s"
		serial | tail -15
		return 1
	fi
	wait_for 30 sh -c "cat '$W/root/var/log/libvirt/qemu/$DOM.serial' | tr -d '\r' | grep -aq '^powerd_source_up 1'"
	check "$DOM: the guest sees its tree: powerd_source_up 1 and the tree's energy_uj ($(serial | grep -a '^SHARE-UJ' | tail -1))" \
		sh -c "cat '$W/root/var/log/libvirt/qemu/$DOM.serial' | tr -d '\r' | grep -aq '^powerd_source_up 1' &&
			cat '$W/root/var/log/libvirt/qemu/$DOM.serial' | tr -d '\r' | grep -aqE '^SHARE-UJ [0-9]+'"
	local src
	src=$(ct_metrics | awk -v d="$DOM" 'index($0, "powerd_domain_cpu_source{domain=\"" d "\"") == 1 { sub(/.*source="/, ""); sub(/".*/, ""); print }')
	local cg errs
	cg=$(in_ct sh -c "grep '^0::' /proc/\$(cat /run/libvirt/qemu/$DOM.pid)/cgroup")
	errs=$(ct_metrics | metric 'powerd_errors_total\{kind="cgroup"\}')
	# libvirtd in a container without machined leaves qemu in libvirtd.service's cgroup: not
	# the domain's own (issue 10 #5), so its process is read and the fallback counted
	case "$cg" in
	*/machine*) check "$DOM: powerd_domain_cpu_source cgroup2 (qemu in $cg)" test "$src" = cgroup2 ;;
	*) check "$DOM: qemu is in a cgroup not its own ($cg): powerd_domain_cpu_source process ($src), powerd_errors_total{kind=cgroup} $errs" \
		sh -c "[ '$src' = process ] && [ '${errs:-0}' -ge 1 ]" ;;
	esac
}

# reload, then restart: neither the tree nor the domain's metric goes back
step_keep_counters() { # reload|restart
	local what=$1 t0 j0 t1 j1 n0
	t0=$(ct_tree_uj) j0=$(ct_dom_j)
	n0=$(in_ct systemctl show -p NRestarts --value powerd-host.service)
	check "container: systemctl $what powerd-host succeeds" in_ct systemctl "$what" powerd-host.service
	check "container: systemctl $what powerd-host: active again" wait_for 20 in_ct systemctl is-active -q powerd-host.service
	sleep 3
	t1=$(ct_tree_uj) j1=$(ct_dom_j)
	check "container: after $what, $DOM's tree went on ($t0 -> $t1 uJ)" \
		test "${t1:-0}" -gt "${t0:-0}"
	check "container: after $what, powerd_domain_energy_joules_total went on ($j0 -> $j1 J)" \
		fcmp "${j1:-0}" '>' "${j0:-0}"
	[ "$what" = reload ] && check "container: reload is not a restart (NRestarts $n0, MainPID kept)" \
		test "$(in_ct systemctl show -p NRestarts --value powerd-host.service)" = "$n0"
}

cleanup_ct() {
	[ -n "$LEADER" ] && in_ct journalctl --no-pager -n 200 -u powerd-host -u libvirtd >"$W/in-journal.log" 2>&1
	if [ -n "$LEADER" ]; then
		in_ct virsh -q -c qemu:///system destroy "$DOM" >/dev/null 2>&1
		in_ct systemctl poweroff >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
	fi
	stop_pid "$NSPAWN_PID"
	umount -l "$W/root" 2>/dev/null
	local h
	for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
		[ -n "${CG_NAME:-}" ] && [ -d "$h$CG_NAME" ] || continue
		echo $$ >"$h/cgroup.procs" 2>/dev/null
		find "$h$CG_NAME" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
}

main() {
	command -v systemd-nspawn >/dev/null || { echo "SKIP: no systemd-nspawn"; exit 77; }
	log "work dir $W, source $SOURCE"
	HOST_PORT=$(free_port)
	step_start_raplsim
	step_build_guest || return 1
	step_root || return 1
	step_package || return 1
	step_boot || return 1
	step_install || return 1
	step_domain || return 1
	step_keep_counters reload
	step_keep_counters restart
}

main
cleanup_ct
e2e_finish
