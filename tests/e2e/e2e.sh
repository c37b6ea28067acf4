#!/usr/bin/env bash
# End-to-end test of powerd against a real libvirtd and qemu (TCG), with throwaway state:
#
#   e2e.sh --host BIN --guest BIN --raplsim BIN [--source DIR] [--keep]
#
# Everything runs inside a private mount namespace (the script re-executes itself under
# `unshare -m`), with tmpfs over libvirt's state directories and a copy of /etc/libvirt bound over
# the real one, so the host's libvirt (if any) is never touched. virtlogd and libvirtd are started
# by hand and killed at exit. powerd-host reads a simulated RAPL package (raplsim) whose energy
# follows the machine's real busy CPU time. Guests are a Debian kernel plus a busybox initramfs
# (tests/e2e/guest-init.sh) that runs powerd-guest and prints its scrapes on the serial console.
#
# Each assertion prints "ok - ..." or "not ok - ..."; the script exits 1 if any failed, 77 if it
# cannot run here (not root, no unshare). Every wait is bounded.
set -uo pipefail

E2E_DEADLINE_S=${POWERD_E2E_DEADLINE_S:-1080}
CACHE=${POWERD_E2E_CACHE:-/var/cache/powerd-e2e}
HERE=$(cd "$(dirname "$0")" && pwd)
SOURCE=$(cd "$HERE/../.." && pwd)
HOST_BIN='' GUEST_BIN='' RAPLSIM_BIN='' KEEP=0

while [ $# -gt 0 ]; do
	case "$1" in
	--host) HOST_BIN=$2; shift 2 ;;
	--guest) GUEST_BIN=$2; shift 2 ;;
	--raplsim) RAPLSIM_BIN=$2; shift 2 ;;
	--source) SOURCE=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	*) echo "usage: $0 --host BIN --guest BIN --raplsim BIN [--source DIR] [--keep]" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: the end-to-end test needs root (libvirtd, mounts)"
	exit 77
fi
for b in "$HOST_BIN" "$GUEST_BIN" "$RAPLSIM_BIN"; do
	[ -x "$b" ] || { echo "e2e: missing binary '$b'" >&2; exit 2; }
done

# Re-enter in a private mount namespace, under a hard deadline so that nothing can hang ctest.
if [ -z "${POWERD_E2E_IN_NS:-}" ]; then
	command -v unshare >/dev/null || { echo "SKIP: no unshare"; exit 77; }
	unshare -m --propagation private true 2>/dev/null || { echo "SKIP: cannot unshare -m"; exit 77; }
	export POWERD_E2E_IN_NS=1
	keep=()
	[ $KEEP = 1 ] && keep=(--keep)
	exec timeout -k 15 "$E2E_DEADLINE_S" unshare -m --propagation private "$0" \
		--host "$HOST_BIN" --guest "$GUEST_BIN" --raplsim "$RAPLSIM_BIN" --source "$SOURCE" \
		"${keep[@]}"
fi

T0=$(date +%s.%N)
W=$(mktemp -d /tmp/powerd-e2e.XXXXXX)
chmod 755 "$W"
SHARE=$W/share
DOM9P=powerd-e2e-9p
DOMVFS=powerd-e2e-vfs
DOMSD=powerd-e2e-systemd
PIDS=() # daemons we started, killed by pid at exit
N_OK=0 N_FAIL=0 FAILED=()
HOST_PID='' LIBVIRTD_PID='' LAST_PID=''
HOST_PORT='' IDLE_W=20 MAX_W=60

# ---------------------------------------------------------------------------------------------
# helpers

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "# [$(elapsed)s] $*"; }
ok() { N_OK=$((N_OK + 1)); echo "ok - $*"; }
not_ok() { N_FAIL=$((N_FAIL + 1)); FAILED+=("$*"); echo "not ok - $*"; }
check() { # description command...
	local d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
# wait_for SECONDS command...: poll every 0.2 s until the command succeeds; 1 on timeout.
wait_for() {
	local end=$(($(date +%s) + $1)); shift
	until "$@"; do
		[ "$(date +%s)" -ge $end ] && return 1
		sleep 0.2
	done
}
fcmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; } # fcmp 1.5 '<=' 2
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 20000))
		(echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return 0; }
	done
	return 1
}
start_bg() { # logfile command...: start a daemon in the background, remember its pid
	local logf=$1; shift
	"$@" >>"$logf" 2>&1 &
	PIDS+=($!)
	LAST_PID=$!
}
stop_pid() { # pid [signal]: signal one process we started and wait (bounded) for it to go
	local pid=$1 sig=${2:-TERM}
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}
virsh_() { timeout 60 virsh -q -c qemu:///system "$@"; }
# The first sample of a metric (name and label regexp) in a Prometheus exposition on stdin.
metric() { awk -v re="^$1" '$0 ~ re { print $NF; exit }'; }
host_metrics() { curl -s --max-time 5 "http://127.0.0.1:$HOST_PORT/metrics"; }
host_serves() { host_metrics | grep -q '^powerd_host_energy_joules_total'; }
host_connected() { host_metrics | grep -qE "^powerd_libvirt_connected $1\b"; }
# source_up_seen VALUE FROM NAME: a scrape after the FROM first ones had powerd_source_up VALUE
source_up_seen() {
	scrapes "$W/$3.serial" | tail -n +$(($2 + 1)) | awk -v v="$1" '$5 == v { f = 1 } END { exit !f }'
}
n_ends_at_least() { [ "$(grep -ac '^=== END' "$W/$1.serial")" -ge "$2" ]; }
tree_uj() { cat "$SHARE/$1/intel-rapl:0/energy_uj" 2>/dev/null; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	log "cleanup"
	if [ -n "$LIBVIRTD_PID" ] && kill -0 "$LIBVIRTD_PID" 2>/dev/null; then
		for d in $(timeout 20 virsh -q -c qemu:///system list --name 2>/dev/null); do
			timeout 20 virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1
		done
	fi
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${PIDS[i]}"
	done
	# a qemu that outlived libvirtd: its pidfile is in our /run/libvirt tmpfs
	local f
	for f in /run/libvirt/qemu/*.pid; do
		[ -s "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	if [ $KEEP = 1 ]; then
		echo "# kept $W"
	else
		umount -R "$W" 2>/dev/null
		# The namespace's mounts go with it; only remove plain files.
		findmnt -rn -o TARGET | grep -q "^$W" || rm -rf "$W"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------------------------------------
# steps

# 1. Throwaway libvirt state, then virtlogd and libvirtd by hand.
step_libvirt_sandbox() {
	log "libvirt sandbox in a private mount namespace"
	local d
	for d in /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
		mkdir -p "$d" 2>/dev/null
		mount -t tmpfs -o mode=755 tmpfs "$d" || { not_ok "tmpfs over $d"; return 1; }
	done
	cp -a /etc/libvirt "$W/etc-libvirt"
	cat >"$W/etc-libvirt/qemu.conf" <<-'EOF'
	# powerd e2e: qemu as root, no cgroups or namespaces (cgroup v1 mix on this host)
	user = "root"
	group = "root"
	dynamic_ownership = 0
	remember_owner = 0
	security_driver = "none"
	cgroup_controllers = [ ]
	namespaces = [ ]
	EOF
	mkdir -p "$W/etc-libvirt/hooks/qemu.d" "$W/bin"
	rm -f "$W/etc-libvirt/hooks/qemu" "$W"/etc-libvirt/hooks/qemu.d/*
	install_hook
	mount --bind "$W/etc-libvirt" /etc/libvirt
}

# The project's hook, behind a wrapper that logs each call and what is mounted on the domain's
# export once the hook returned: libvirt runs it synchronously before qemu starts, so this is
# the state qemu will find.
install_hook() {
	cp "$HOST_BIN" "$W/bin/powerd-host"
	cat >"$W/host.yaml" <<-EOF
	libvirt_uri: qemu:///system
	interval: 1s
	share_dir: $SHARE
	domains: { include: ["powerd-e2e-*"] }
	powercap_root: $W/powercap
	metrics_listen: 127.0.0.1:${HOST_PORT}
	log_level: debug
	EOF
	local hook=$SOURCE/units/powerd-libvirt-hook
	# the project's hook runs "$POWERD_HOST --prepare DOM": give it our config that way
	cat >"$W/bin/powerd-host-hook" <<-EOF
	#!/bin/sh
	exec $W/bin/powerd-host -c $W/host.yaml "\$@"
	EOF
	chmod 755 "$W/bin/powerd-host-hook"
	cat >"$W/etc-libvirt/hooks/qemu.d/50-powerd-e2e" <<-EOF
	#!/bin/sh
	# powerd e2e: log the call, run the project's hook, log the resulting mount
	echo "\$(date +%s.%N) hook \$*" >>$W/hook.log
	export POWERD_HOST=$W/bin/powerd-host-hook
	rc=0
	if [ -x $hook ]; then
		$hook "\$@" >>$W/hook.log 2>&1 || rc=\$?
	elif [ "\$2" = prepare ]; then
		# no project hook yet: what it is specified to do
		\$POWERD_HOST --prepare "\$1" </dev/null >>$W/hook.log 2>&1 || rc=\$?
	fi
	echo "\$(date +%s.%N) hook-rc \$rc \$*" >>$W/hook.log
	if [ "\$2" = prepare ]; then
		echo "\$(date +%s.%N) mount-after-prepare \$1 \$(/usr/bin/findmnt -rn -o FSTYPE,OPTIONS -M $SHARE/\$1 | tail -1)" >>$W/hook.log
	fi
	exit \$rc
	EOF
	chmod 755 "$W/etc-libvirt/hooks/qemu.d/50-powerd-e2e"
}

step_start_libvirtd() {
	log "starting virtlogd and libvirtd"
	local t
	t=$(date +%s.%N)
	start_bg "$W/virtlogd.log" /usr/sbin/virtlogd -p "$W/virtlogd.pid"
	wait_for 10 test -S /run/libvirt/virtlogd-sock
	start_libvirtd
	if wait_for 60 virsh -c qemu:///system version >/dev/null 2>&1; then
		LIBVIRTD_START_S=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
		ok "libvirtd answers (${LIBVIRTD_START_S}s after start)"
	else
		not_ok "libvirtd answers within 60s"
		tail -20 "$W/libvirtd.log"
		return 1
	fi
}

start_libvirtd() {
	# LIBVIRT_LOG_OUTPUTS keeps its log in our directory; -p keeps its pidfile out of /run.
	start_bg "$W/libvirtd.out" env LIBVIRT_LOG_OUTPUTS="3:file:$W/libvirtd.log" \
		/usr/sbin/libvirtd -p "$W/libvirtd.pid"
	LIBVIRTD_PID=$LAST_PID
}

# 2. A simulated RAPL package and powerd-host on it.
step_start_raplsim() {
	mkdir -p "$W/powercap"
	start_bg "$W/raplsim.log" "$RAPLSIM_BIN" "$W/powercap" $IDLE_W $MAX_W 100
	wait_for 5 test -s "$W/powercap/intel-rapl:0/energy_uj"
	local a b
	a=$(cat "$W/powercap/intel-rapl:0/energy_uj")
	sleep 0.5
	b=$(cat "$W/powercap/intel-rapl:0/energy_uj")
	check "simulated RAPL counter advances ($a -> $b)" test "${b:-0}" != "${a:-0}"
}

step_start_host() {
	log "starting powerd-host"
	mkdir -p "$SHARE"
	start_bg "$W/powerd-host.log" "$W/bin/powerd-host" -c "$W/host.yaml"
	HOST_PID=$LAST_PID
	if wait_for 20 host_serves; then
		ok "powerd-host serves its metrics on 127.0.0.1:$HOST_PORT"
	else
		not_ok "powerd-host serves its metrics on 127.0.0.1:$HOST_PORT within 20s"
		tail -20 "$W/powerd-host.log"
		return 1
	fi
}

# 3. Guest kernel (cached) and a busybox initramfs with powerd-guest.
step_build_guest() {
	log "building the guest"
	mkdir -p "$CACHE"
	local deb kver kdir
	kdir=$(ls -d "$CACHE"/kernel-*/ 2>/dev/null | head -1)
	if [ -z "$kdir" ]; then
		local pkg
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
		[ -n "$pkg" ] || { not_ok "find Debian's kernel package"; return 1; }
		(cd "$CACHE" && timeout 300 apt-get download "$pkg" >/dev/null 2>&1)
		deb=$(ls "$CACHE/$pkg"_*.deb 2>/dev/null | head -1)
		[ -n "$deb" ] || { not_ok "download $pkg"; return 1; }
		kver=${pkg#linux-image-}
		rm -rf "$CACHE/tmp-x" && mkdir "$CACHE/tmp-x"
		dpkg -x "$deb" "$CACHE/tmp-x" || { not_ok "extract $deb"; return 1; }
		mkdir -p "$CACHE/kernel-$kver/modules"
		cp "$CACHE/tmp-x/boot/vmlinuz-$kver" "$CACHE/kernel-$kver/vmlinuz"
		local m f
		for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
			netfs fscache 9pnet 9pnet_virtio 9p fuse virtiofs; do
			f=$(find "$CACHE/tmp-x/lib/modules" -name "$m.ko*" | head -1)
			[ -n "$f" ] && cp "$f" "$CACHE/kernel-$kver/modules/"
		done
		rm -rf "$CACHE/tmp-x" "$deb"
		kdir=$CACHE/kernel-$kver/
	fi
	KERNEL=${kdir}vmlinuz
	local r=$W/initramfs
	mkdir -p "$r"/{bin,sbin,usr/sbin,lib/modules,etc,proc,sys,dev,tmp,var/scaphandre}
	cp /bin/busybox "$r/bin/busybox"
	cp "$kdir"modules/*.ko "$r/lib/modules/" 2>/dev/null
	cp "$HERE/guest-init.sh" "$r/init" && chmod 755 "$r/init"
	cp "$GUEST_BIN" "$r/usr/sbin/powerd-guest"
	# the shared libraries powerd-guest needs, and the loader, at the paths ldd names
	local lib
	for lib in $(ldd "$GUEST_BIN" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
		mkdir -p "$r$(dirname "$lib")"
		cp -L "$lib" "$r$lib"
	done
	echo "root:x:0:0:root:/:/bin/sh" >"$r/etc/passwd"
	echo "root:x:0:" >"$r/etc/group"
	echo "127.0.0.1 localhost" >"$r/etc/hosts"
	(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd.gz"
	check "guest initramfs built ($(du -k "$W/initrd.gz" | cut -f1) KiB, kernel $(basename "$kdir"))" \
		test -s "$W/initrd.gz"
}

# 4. Domains.
domain_xml() { # name fs
	local name=$1 fs=$2 uuid fsxml membacking=
	uuid=$(echo "$name" | md5sum | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
	if [ "$fs" = virtiofs ]; then
		# libvirt 9.0 rejects <readonly/> on virtiofs: the export itself is a read-only mount
		fsxml="<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='$SHARE/$name'/><target dir='scaphandre'/></filesystem>"
		membacking="<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"
	else
		fsxml="<filesystem type='mount' accessmode='passthrough'><source dir='$SHARE/$name'/><target dir='scaphandre'/><readonly/></filesystem>"
	fi
	cat <<-EOF
	<domain type='qemu'>
	  <name>$name</name>
	  <uuid>$uuid</uuid>
	  <memory unit='MiB'>256</memory>
	  $membacking
	  <vcpu>1</vcpu>
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$KERNEL</kernel>
	    <initrd>$W/initrd.gz</initrd>
	    <cmdline>console=ttyS0 quiet loglevel=1 panic=-1 powerd_e2e.fs=$fs powerd_e2e.burn=8 powerd_e2e.idle=8</cmdline>
	  </os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    $fsxml
	    <serial type='file'><source path='$W/$name.serial' append='on'/><target port='0'/></serial>
	    <video><model type='none'/></video>
	    <memballoon model='none'/>
	  </devices>
	</domain>
	EOF
}

# "FSTYPE OPTIONS" of the mount on a domain's export (the last one stacked there)
export_mount() { findmnt -rn -o FSTYPE,OPTIONS -M "$SHARE/$1" 2>/dev/null | tail -1; }
is_ro_tmpfs() {
	local m
	m=$(export_mount "$1")
	[ "${m%% *}" = tmpfs ] && [[ ",${m#* }," == *,ro,* ]]
}

define_and_start() { # name fs
	local name=$1 fs=$2
	log "defining $name ($fs)"
	domain_xml "$name" "$fs" >"$W/$name.xml"
	if ! virsh_ define "$W/$name.xml" >/dev/null; then
		not_ok "$name: virsh define"
		return 1
	fi
	# powerd-host prepares the tree on DEFINED; the hook would do it at start otherwise
	wait_for 10 test -n "$(export_mount "$name")" &&
		ok "$name: export mounted after DEFINED ($(export_mount "$name"))" ||
		log "$name: no export mount 10s after DEFINED (the hook must prepare it)"
	: >"$W/$name.serial"
	local t
	t=$(date +%s.%N)
	if ! virsh_ start "$name" >"$W/$name.start.log" 2>&1; then
		not_ok "$name: virsh start ($(tr '\n' ' ' <"$W/$name.start.log"))"
		return 1
	fi
	eval "START_$(echo "$name" | tr -c 'a-zA-Z0-9\n' _)=$t"
	# right after start returns: the export is a read-only tmpfs and the hook logged its effect
	local m
	m=$(export_mount "$name")
	check "$name: export is a read-only tmpfs right after virsh start ($m)" is_ro_tmpfs "$name"
	check "$name: libvirt hook ran 'prepare begin' and the export was mounted then" \
		grep -q "mount-after-prepare $name tmpfs.*\bro\b" "$W/hook.log"
	check "$name: tree has intel-rapl:0/energy_uj" test -s "$SHARE/$name/intel-rapl:0/energy_uj"
	check "$name: tree files are world-readable" \
		test "$(stat -c %a "$SHARE/$name/intel-rapl:0/energy_uj")" = 644
}

# Scrapes parsed from a serial log: "n up phase energy_J source_up share_uj", one per line, of
# the guest's first boot (the log is appended to when a domain restarts).
scrapes() {
	awk '
	/^=== BOOTED / { boot++ }
	boot > 1 { exit }
	/^=== SCRAPE [0-9]+ / { n = $3; up = $4; ph = $5; sub(/up=/, "", up); sub(/phase=/, "", ph);
		e = "-"; su = "-"; s = "-"; inb = 1; next }
	inb && /^powerd_energy_joules_total\{.*zone="package-0"/ { e = $NF }
	inb && /^powerd_source_up / { su = $NF }
	inb && /^SHARE-UJ / { s = $2 }
	inb && /^=== END ===/ { print n, up, ph, e, su, s; inb = 0 }
	' "$1" | tr -d '\r'
}
n_scrapes() { scrapes "$1" | wc -l; }

wait_guest() { # name
	local name=$1 serial=$W/$1.serial
	if wait_for 120 grep -q "^=== SHARE " "$serial"; then
		check "$name: guest mounted the share ($(grep -a -m1 '^=== SHARE' "$serial" | tr -d '\r'))" \
			grep -aq "^=== SHARE fs=[a-z0-9]* ok" "$serial"
	else
		not_ok "$name: guest reached the share mount within 120s"
		tail -30 "$serial"
		return 1
	fi
	wait_for 30 grep -aq '^WRITE-TEST' "$serial"
	check "$name: guest cannot write into its share ($(grep -a -m1 '^WRITE-TEST' "$serial" | tr -d '\r'))" \
		grep -aqE '^WRITE-TEST: (EROFS|denied)' "$serial"
	check "$name: the probe file did not reach the host tree" test ! -e "$SHARE/$name/e2e-write-probe"
	wait_for 90 grep -aqE '^=== (END|GUEST-NOT-READY|POWERD-GUEST-EXITED) ===' "$serial"
	if grep -aq '^=== END ===' "$serial"; then
		local t boot
		t=START_$(echo "$name" | tr -c 'a-zA-Z0-9\n' _)
		boot=$(awk -v a="${!t}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
		eval "BOOT_$(echo "$name" | tr -c 'a-zA-Z0-9\n' _)=$boot"
		ok "$name: first scrape of powerd-guest on the console ${boot}s after virsh start"
	else
		not_ok "$name: powerd-guest answered a scrape in the guest within 90s"
		tail -12 "$serial"
		return 1
	fi
}

# The guest's counter equals the tree's energy_uj/1e6 (read from the share in the same block),
# within one interval's worth of energy: the largest rise of the tree between two consecutive
# scrapes (about 1 s apart), plus 10%. The guest samples once per interval, so it may lag the tree
# by one update, never lead it; under TCG its timer may slip while the guest burns CPU. Two assertions: the values are equal (the issue's contract: the guest exports the
# tree's own counter), and, whatever the offset, the guest's counter follows the tree's rises.
assert_guest_matches_tree() { # name
	local name=$1 res
	res=$(scrapes "$W/$name.serial" | awk '
	$4 != "-" && $6 ~ /^[0-9]+$/ {
		s = $6 / 1e6
		if (have && s - s0 > maxstep) maxstep = s - s0
		d = s - $4
		if (!have || d < mind) mind = d
		if (!have || d > maxd) { maxd = d; at = $1 }
		a = d < 0 ? -d : d
		if (a > maxa) { maxa = a; ata = $1 }
		s0 = s; have = 1; n++
	}
	END {
		tol = maxstep * 1.1 + 0.001
		printf "%d %.6f %s %.6f %.6f %s %d %d\n", n, maxa, ata, tol, maxd - mind, at,
			(n > 0 && maxa <= tol), (n > 1 && maxd - mind <= tol)
	}')
	# shellcheck disable=SC2086
	set -- $res
	if [ "${7:-0}" = 1 ]; then
		ok "$name: powerd_energy_joules_total{zone=package-0} = tree energy_uj/1e6 within one interval ($1 scrapes, max |diff| $2 J <= $4 J)"
	else
		not_ok "$name: powerd_energy_joules_total{zone=package-0} = tree energy_uj/1e6 within one interval (${1:-0} scrapes, max |diff| ${2:-?} J at scrape ${3:-none}, allowed ${4:-?} J)"
	fi
	if [ "${8:-0}" = 1 ]; then
		ok "$name: powerd_energy_joules_total{zone=package-0} rises with the tree (tree - guest varies by $5 J <= $4 J)"
	else
		not_ok "$name: powerd_energy_joules_total{zone=package-0} rises with the tree (tree - guest varies by ${5:-?} J, worst at scrape ${6:-none}, allowed ${4:-?} J)"
	fi
}

assert_monotonic() { # name: no counter goes backwards in the guest or in the tree as read by it
	local name=$1 bad
	bad=$(scrapes "$W/$name.serial" | awk '
	$4 != "-" { if (have4 && $4 + 1e-9 < e0) { print "guest scrape " $1 ": " e0 " -> " $4; exit } e0 = $4; have4 = 1 }
	$6 ~ /^[0-9]+$/ { if (have6 && $6 + 0 < s0) { print "tree scrape " $1 ": " s0 " -> " $6; exit } s0 = $6 + 0; have6 = 1 }')
	check "$name: no counter went backwards over $(n_scrapes "$W/$name.serial") scrapes${bad:+ ($bad)}" test -z "$bad"
}

# Rates over the burn and idle phases (guest uptime as the clock), skipping each phase's first
# 2 s: the guest's value lags by up to two intervals.
phase_rate() { # serial phase
	scrapes "$1" | awk -v ph="$2" '
	$3 == ph && $4 != "-" { if (!have) { t0 = $2 } ; if ($2 - t0 >= 2) { if (!h2) { a = $2; ea = $4; h2 = 1 } b = $2; eb = $4 } have = 1 }
	END { if (h2 && b > a) printf "%.4f\n", (eb - ea) / (b - a); else print "nan" }'
}

assert_burn_vs_idle() { # name
	local name=$1 serial=$W/$1.serial
	wait_for 120 grep -aq "^=== PHASE steady" "$serial" ||
		{ not_ok "$name: guest went through its burn and idle phases within 120s"; return 1; }
	local rb ri
	rb=$(phase_rate "$serial" burn)
	ri=$(phase_rate "$serial" idle)
	if [ "$rb" != nan ] && [ "$ri" != nan ] && fcmp "$rb" '>' "$(awk -v r="$ri" 'BEGIN { print 1.5 * r + 0.01 }')"; then
		ok "$name: energy rises faster while the guest burns CPU ($rb W) than idle ($ri W)"
	else
		not_ok "$name: energy rises faster while the guest burns CPU ($rb W) than idle ($ri W), by 1.5x"
	fi
}

assert_host_sums() {
	local m host sum
	m=$(host_metrics)
	host=$(echo "$m" | metric 'powerd_host_energy_joules_total\{[^}]*zone="package-0"')
	sum=$(echo "$m" | awk '/^powerd_domain_energy_joules_total\{.*zone="package-0"/ { s += $NF; n++ } END { printf "%.6f %d", s, n }')
	set -- $sum
	if [ -n "$host" ] && [ "$2" -ge 1 ] && fcmp "$1" '<=' "$host"; then
		ok "host: sum over $2 domains of powerd_domain_energy_joules_total ($1 J) <= powerd_host_energy_joules_total ($host J)"
	else
		not_ok "host: sum over ${2:-0} domains of powerd_domain_energy_joules_total (${1:-?} J) <= powerd_host_energy_joules_total (${host:-missing} J)"
	fi
}

# 6a. kill -9 powerd-host; the guest sees its source go stale, then come back; nothing goes back.
fault_kill_host() {
	local name=$DOM9P serial=$W/$DOM9P.serial before after n0
	log "fault: kill -9 powerd-host"
	before=$(tree_uj "$name")
	n0=$(n_scrapes "$serial")
	kill -KILL "$HOST_PID" 2>/dev/null
	wait "$HOST_PID" 2>/dev/null
	check "fault kill: guest's powerd_source_up drops to 0 while powerd-host is down" \
		wait_for 40 source_up_seen 0 "$n0" "$name"
	local down
	down=$(tree_uj "$name")
	check "fault kill: the tree survived the kill (still a read-only tmpfs)" is_ro_tmpfs "$name"
	n0=$(n_scrapes "$serial")
	start_bg "$W/powerd-host.log" "$W/bin/powerd-host" -c "$W/host.yaml"
	HOST_PID=$LAST_PID
	check "fault kill: powerd-host restarted and serves metrics" wait_for 20 host_serves
	check "fault kill: guest's powerd_source_up returns to 1" \
		wait_for 40 source_up_seen 1 "$n0" "$name"
	sleep 2
	after=$(tree_uj "$name")
	check "fault kill: tree energy_uj did not go backwards ($before -> $down -> $after)" \
		test "${after:-0}" -ge "${before:-1}" -a "${after:-0}" -gt "${down:-0}"
	assert_monotonic "$name"
}

kept_and_advancing() { is_ro_tmpfs "$1" && [ "${3:-0}" -gt "${2:-0}" ]; }

# 6b. Restart libvirtd: powerd-host reconnects, no tree is lost.
fault_restart_libvirtd() {
	log "fault: restart libvirtd"
	local saw0=no
	stop_pid "$LIBVIRTD_PID"
	wait_for 15 host_connected 0 && saw0=yes
	start_libvirtd
	wait_for 60 virsh -c qemu:///system version >/dev/null 2>&1 ||
		{ not_ok "fault libvirtd: libvirtd came back"; return 1; }
	check "fault libvirtd: powerd-host reconnects (powerd_libvirt_connected 1 again; saw 0 while down: $saw0)" \
		wait_for 60 host_connected 1
	local d a b
	for d in $DOM9P $DOMVFS; do
		[ -e "$SHARE/$d" ] || continue
		a=$(tree_uj "$d")
		sleep 2.5
		b=$(tree_uj "$d")
		check "fault libvirtd: $d's tree kept (read-only tmpfs) and advancing ($a -> $b)" \
			kept_and_advancing "$d" "$a" "$b"
	done
	check "fault libvirtd: libvirt still runs $DOM9P" sh -c "virsh -q -c qemu:///system domstate $DOM9P | grep -q running"
}

# 6c. destroy, start again, undefine: the mounts go.
fault_lifecycle() { # name
	local name=$1
	log "fault: destroy/start/undefine $name"
	virsh_ destroy "$name" >/dev/null
	if virsh_ start "$name" >/dev/null 2>&1; then
		ok "lifecycle: $name starts again after destroy"
	else
		not_ok "lifecycle: $name starts again after destroy"
	fi
	check "lifecycle: $name's export is a read-only tmpfs after the restart" is_ro_tmpfs "$name"
	virsh_ destroy "$name" >/dev/null
	virsh_ undefine "$name" >/dev/null || not_ok "lifecycle: virsh undefine $name"
	check "lifecycle: no mount left under $SHARE for $name after undefine" \
		wait_for 20 sh -c "! findmnt -rn -o TARGET | grep -qE '^$SHARE(/\\.powerd)?/$name(/|\$)'"
}

between() { # joules uj_low uj_high
	awk -v j="$1" -v a="$2" -v b="$3" 'BEGIN { exit !(j ~ /^[0-9.e+-]+$/ && j >= a / 1e6 - 1e-3 && j <= b / 1e6 + 1e-3) }'
}

# 8. node_exporter reads the same joules from the domain's tree; Prometheus scrapes powerd-host.
step_node_exporter() {
	local name=$DOM9P port d=$W/ne-sysfs out ne
	command -v prometheus-node-exporter >/dev/null || { log "SKIP node_exporter: not installed"; return 0; }
	mkdir -p "$d/class"
	ln -sfn "$SHARE/$name" "$d/class/powercap"
	port=$(free_port)
	start_bg "$W/node-exporter.log" prometheus-node-exporter --collector.disable-defaults \
		--collector.rapl --path.sysfs="$d" --web.listen-address="127.0.0.1:$port"
	local pid=$LAST_PID
	if ! wait_for 20 sh -c "curl -s --max-time 2 http://127.0.0.1:$port/metrics | grep -q '^node_rapl_'"; then
		not_ok "node_exporter's rapl collector reads $name's tree"
		tail -5 "$W/node-exporter.log"
		return 1
	fi
	# the tree read just before and just after the scrape brackets what node_exporter read
	local t1 t2 guest
	t1=$(tree_uj "$name")
	out=$(curl -s --max-time 5 "http://127.0.0.1:$port/metrics")
	t2=$(tree_uj "$name")
	ne=$(echo "$out" | awk '/^node_rapl_package[^ ]*joules_total/ && /index="0"/ { print $NF; exit }')
	guest=$(scrapes "$W/$name.serial" | awk '$4 != "-" { e = $4 } END { print e }')
	check "node_exporter: $(echo "$out" | grep -m1 '^node_rapl_package') is the tree's energy_uj ($t1..$t2 uJ; powerd-guest last said $guest J)" \
		between "${ne:-x}" "$t1" "$t2"
	stop_pid "$pid"
}

step_prometheus() {
	command -v prometheus >/dev/null || { log "SKIP prometheus: not installed"; return 0; }
	local port d=$W/prometheus res
	mkdir -p "$d/data"
	port=$(free_port)
	cat >"$d/prometheus.yml" <<-EOF
	global: { scrape_interval: 1s, evaluation_interval: 1s }
	scrape_configs:
	  - job_name: powerd-host
	    static_configs: [ { targets: ["127.0.0.1:$HOST_PORT"] } ]
	EOF
	start_bg "$W/prometheus.log" prometheus --config.file="$d/prometheus.yml" \
		--storage.tsdb.path="$d/data" --web.listen-address="127.0.0.1:$port"
	local pid=$LAST_PID
	local q="http://127.0.0.1:$port/api/v1/query?query=powerd_host_energy_joules_total"
	if wait_for 60 sh -c "curl -s --max-time 2 '$q' | grep -q '\"zone\":\"package-0\"'"; then
		res=$(curl -s --max-time 5 "$q")
		ok "prometheus: PromQL powerd_host_energy_joules_total returns the series ($(echo "$res" | grep -o '"value":\[[^]]*\]' | head -1))"
	else
		not_ok "prometheus: PromQL powerd_host_energy_joules_total returns a zone=package-0 series within 60s"
		curl -s --max-time 5 "$q" | head -c 300
		tail -5 "$W/prometheus.log"
	fi
	local q2="http://127.0.0.1:$port/api/v1/query?query=powerd_domain_energy_joules_total"
	check "prometheus: PromQL powerd_domain_energy_joules_total has $DOM9P" \
		wait_for 20 sh -c "curl -s --max-time 2 '$q2' | grep -q '\"domain\":\"$DOM9P\"'"
	stop_pid "$pid"
}

# 7. A systemd guest: a cached debootstrap'd Debian (minbase, systemd-sysv, udev, kmod) as a 9p
# root, where the project's own units, enabled with systemctl, bring powerd-guest up at boot.
build_systemd_root() {
	local root=$CACHE/bookworm-systemd mirror
	if [ ! -x "$root/lib/systemd/systemd" ]; then
		command -v debootstrap >/dev/null || return 77
		mirror=${POWERD_E2E_MIRROR:-$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
		mirror=${mirror:-http://deb.debian.org/debian}
		log "debootstrap bookworm (once; cached in $root)"
		rm -rf "$root.tmp"
		if ! timeout 400 debootstrap --variant=minbase --include=systemd-sysv,udev,kmod \
			bookworm "$root.tmp" "$mirror" >"$W/debootstrap.log" 2>&1; then
			tail -5 "$W/debootstrap.log"
			rm -rf "$root.tmp"
			return 1
		fi
		mv "$root.tmp" "$root"
	fi
	local r=$W/sysroot lib
	cp -a "$root" "$r" || return 1
	cp "$GUEST_BIN" "$r/usr/sbin/powerd-guest"
	for lib in $(ldd "$GUEST_BIN" 2>/dev/null | awk '/=> \// { print $3 }'); do
		[ -e "$r$lib" ] || cp -L "$lib" "$r$lib"
	done
	cp "$SOURCE/units/powerd-guest.service" "$SOURCE/units/var-scaphandre.mount" "$r/etc/systemd/system/"
	install -m 755 "$HERE/systemd-report.sh" "$r/usr/local/sbin/powerd-e2e-report"
	cat >"$r/etc/systemd/system/powerd-e2e-report.service" <<-'EOF'
	[Unit]
	Description=powerd e2e: report powerd-guest's state on the serial console
	After=multi-user.target powerd-guest.service
	[Service]
	Type=oneshot
	ExecStart=/usr/local/sbin/powerd-e2e-report
	[Install]
	WantedBy=multi-user.target
	EOF
	: >"$r/etc/fstab"
	echo powerd-e2e >"$r/etc/hostname"
	systemctl --root="$r" enable powerd-guest.service var-scaphandre.mount \
		powerd-e2e-report.service >"$W/systemctl-enable.log" 2>&1 || return 1
	systemctl --root="$r" mask serial-getty@ttyS0.service getty@tty1.service >/dev/null 2>&1
	# its initramfs: busybox, the modules, and an /init that mounts the 9p root
	local i=$W/initramfs-systemd
	mkdir -p "$i"/{bin,lib/modules,proc,sys,dev,newroot}
	cp /bin/busybox "$i/bin/busybox"
	cp "$(dirname "$KERNEL")"/modules/*.ko "$i/lib/modules/"
	cp "$HERE/systemd-init.sh" "$i/init" && chmod 755 "$i/init"
	(cd "$i" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd-systemd.gz"
}

systemd_domain_xml() { # name
	local name=$1 uuid
	uuid=$(echo "$name" | md5sum | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
	cat <<-EOF
	<domain type='qemu'>
	  <name>$name</name>
	  <uuid>$uuid</uuid>
	  <memory unit='MiB'>512</memory>
	  <vcpu>1</vcpu>
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$KERNEL</kernel>
	    <initrd>$W/initrd-systemd.gz</initrd>
	    <cmdline>console=ttyS0 rw quiet loglevel=3 panic=-1</cmdline>
	  </os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    <filesystem type='mount' accessmode='passthrough'><source dir='$W/sysroot'/><target dir='rootfs'/></filesystem>
	    <filesystem type='mount' accessmode='passthrough'><source dir='$SHARE/$name'/><target dir='scaphandre'/><readonly/></filesystem>
	    <serial type='file'><source path='$W/$name.serial' append='on'/><target port='0'/></serial>
	    <video><model type='none'/></video>
	    <memballoon model='none'/>
	  </devices>
	</domain>
	EOF
}

step_systemd_guest() {
	local name=$DOMSD serial=$W/$DOMSD.serial rc=0 t
	log "systemd guest"
	build_systemd_root || rc=$?
	if [ $rc = 77 ]; then
		log "SKIP systemd guest: debootstrap is not installed"
		return 0
	elif [ $rc != 0 ]; then
		not_ok "systemd guest: build its root (debootstrap, units)"
		return 1
	fi
	systemd_domain_xml "$name" >"$W/$name.xml"
	virsh_ define "$W/$name.xml" >/dev/null || { not_ok "$name: virsh define"; return 1; }
	: >"$serial"
	t=$(date +%s.%N)
	if ! virsh_ start "$name" >"$W/$name.start.log" 2>&1; then
		not_ok "$name: virsh start ($(tr '\n' ' ' <"$W/$name.start.log"))"
		return 1
	fi
	if ! wait_for 240 grep -aqE '^=== (SYSTEMD-REPORT-DONE|ROOT-MOUNT-FAILED) ===' "$serial" ||
		! grep -aq '^=== SYSTEMD-REPORT ' "$serial"; then
		not_ok "$name: systemd reached multi-user.target and reported within 240s"
		tail -20 "$serial" | tr -d '\r'
		return 1
	fi
	SYSTEMD_REPORT_S=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	local rep
	rep=$(tr -d '\r' <"$serial" | sed -n '/^=== SYSTEMD-REPORT /,/^=== SYSTEMD-REPORT-DONE/p')
	ok "$name: multi-user.target reached, report on the console ${SYSTEMD_REPORT_S}s after virsh start ($(echo "$rep" | head -1))"
	check "$name: systemctl is-enabled powerd-guest: enabled" grep -q '^IS-ENABLED enabled' <<<"$rep"
	check "$name: powerd-guest.service active at boot ($(grep '^SHOW SubState' <<<"$rep"))" \
		grep -q '^IS-ACTIVE active' <<<"$rep"
	check "$name: var-scaphandre.mount mounted the share read-only ($(grep '^MOUNT' <<<"$rep"))" \
		grep -qE '^MOUNT 9p +ro' <<<"$rep"
	check "$name: systemd's watchdog is armed ($(grep '^SHOW WatchdogUSec' <<<"$rep"))" \
		grep -qE '^SHOW WatchdogUSec=[1-9]' <<<"$rep"
	check "$name: powerd-guest serves powerd_energy_joules_total{zone=package-0} ($(grep -m1 '^powerd_energy_joules_total{zone="package-0"}' <<<"$rep"))" \
		grep -q '^powerd_energy_joules_total{zone="package-0"}' <<<"$rep"
	check "$name: powerd_source_up 1" grep -q '^powerd_source_up 1' <<<"$rep"
	wait_for 30 sh -c "! virsh -q -c qemu:///system list --name | grep -qx $name"
	virsh_ undefine "$name" >/dev/null 2>&1
}

summary() {
	local total
	total=$(elapsed)
	echo "# timings: libvirtd ${LIBVIRTD_START_S:-?}s to answer; $DOM9P first scrape ${BOOT_powerd_e2e_9p:-?}s after start;" \
		"$DOMVFS ${BOOT_powerd_e2e_vfs:-?}s; systemd guest report ${SYSTEMD_REPORT_S:-?}s; whole test ${total}s"
	if [ $N_FAIL -eq 0 ]; then
		echo "# summary: PASS, $N_OK assertions ok"
	else
		echo "# summary: FAIL, $N_FAIL of $((N_OK + N_FAIL)) assertions failed:"
		printf '#   %s\n' "${FAILED[@]}"
	fi
}

dump_logs() {
	[ $N_FAIL -eq 0 ] && return 0
	local f
	for f in powerd-host.log hook.log libvirtd.out $DOM9P.serial $DOMVFS.serial $DOMSD.serial; do
		[ -s "$W/$f" ] || continue
		echo "# ---- last lines of $f"
		tail -25 "$W/$f" | tr -d '\r' | sed 's/^/#   /'
	done
}

main() {
	log "work dir $W, source $SOURCE"
	HOST_PORT=$(free_port)
	step_libvirt_sandbox || return 1
	step_start_libvirtd || return 1
	step_start_raplsim
	step_start_host || return 1
	step_build_guest || return 1

	if define_and_start $DOM9P 9p && wait_guest $DOM9P; then
		assert_burn_vs_idle $DOM9P
		assert_guest_matches_tree $DOM9P
		assert_host_sums
	fi
	if define_and_start $DOMVFS virtiofs && wait_guest $DOMVFS; then
		wait_for 20 n_ends_at_least $DOMVFS 4
		assert_guest_matches_tree $DOMVFS
		assert_host_sums
	fi
	step_node_exporter
	step_prometheus
	fault_kill_host
	fault_restart_libvirtd
	# the same checks over the whole run, the faults included
	local d
	for d in $DOM9P $DOMVFS; do
		[ -s "$W/$d.serial" ] || continue
		assert_guest_matches_tree "$d"
		assert_monotonic "$d"
	done
	virsh -q -c qemu:///system dominfo $DOMVFS >/dev/null 2>&1 && fault_lifecycle $DOMVFS
	fault_lifecycle $DOM9P
	[ "${POWERD_E2E_SYSTEMD:-1}" = 1 ] && step_systemd_guest
}

main
dump_logs
summary
[ $N_FAIL -eq 0 ]
