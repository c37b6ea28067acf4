# shellcheck shell=bash
# Shared pieces of the end-to-end tests (tests/e2e/e2e*.sh), sourced by each script:
#   E2E_USAGE=...; . "$(dirname "$0")/lib.sh"; e2e_init "$@"
#   ... the script's own steps ...; e2e_finish
# e2e_init parses --host BIN --guest BIN --raplsim BIN [--source DIR] [--keep], skips (77) where the
# test cannot run, re-executes the script in a private mount namespace under a hard deadline, and
# sets up the work directory $W (removed at exit with every daemon started by start_bg).
# Then: assertions (ok, not_ok, check, wait_for), a throwaway libvirt (step_libvirt_sandbox,
# step_start_libvirtd), the powercap simulator and powerd-host (step_start_raplsim,
# step_start_host), the guest kernel and busybox initramfs (step_build_guest) and the summary.
# A script may redefine qemu_conf, host_yaml, e2e_timings and e2e_cleanup after sourcing, and set E2E_LOGS
# (files of $W shown when an assertion failed) and E2E_MODULES (guest kernel modules).

E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_MODULES=${E2E_MODULES:-"virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
netfs fscache 9pnet 9pnet_virtio 9p fuse virtiofs virtio_console"}
E2E_LOGS=${E2E_LOGS:-}

e2e_init() {
	E2E_DEADLINE_S=${POWERD_E2E_DEADLINE_S:-1080}
	CACHE=${POWERD_E2E_CACHE:-/var/cache/powerd-e2e}
	HERE=$E2E_LIB_DIR
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
	PIDS=() # daemons we started, killed by pid at exit
	N_OK=0 N_FAIL=0 FAILED=()
	HOST_PID='' LIBVIRTD_PID='' LAST_PID=''
	HOST_PORT='' IDLE_W=20 MAX_W=60
	trap cleanup EXIT
	trap 'exit 1' INT TERM
}

e2e_finish() {
	dump_logs
	summary
	[ $N_FAIL -eq 0 ]
}

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
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; } # seconds since a date +%s.%N
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
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	log "cleanup"
	e2e_cleanup
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
		# Every mount under $W, deepest first (the shares powerd-host leaves mounted for adoption:
		# `umount -R "$W"` does nothing where $W itself is no mount, and the directory stayed, disk
		# images and all). The namespace's mounts go with it; only remove plain files.
		local m
		findmnt -rn -o TARGET | grep "^$W/" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
		findmnt -rn -o TARGET | grep -q "^$W" || rm -rf "$W"
	fi
	exit $rc
}

# ---------------------------------------------------------------------------------------------
# libvirt, the simulated RAPL, powerd-host, the guest

# The qemu.conf of the throwaway libvirtd (a script may redefine it): libvirt's own cgroups, as with
# the stock qemu.conf (cgroup_controllers left at its default), so qemu runs in
# /machine/qemu-<id>-<name>.libvirt-qemu, which powerd-host must find and read. qemu stays root (the
# systemd guest's 9p root and the trees need no ownership games), and in no mount namespace of its
# own (security and namespaces are not what these tests are about).
qemu_conf() {
	cat <<-'EOF'
	# powerd e2e: qemu as root, libvirt's default cgroups
	user = "root"
	group = "root"
	dynamic_ownership = 0
	remember_owner = 0
	security_driver = "none"
	namespaces = [ ]
	EOF
}

# powerd-host's config for the test (a script may redefine it).
host_yaml() {
	cat <<-EOF
	libvirt_uri: qemu:///system
	interval: 1s
	share_dir: $SHARE
	domains: { include: ["powerd-e2e-*"] }
	powercap_root: $W/powercap
	metrics_listen: 127.0.0.1:${HOST_PORT}
	log_level: debug
	EOF
}

e2e_timings() { :; }
# What a script made beyond lib.sh's daemons (namespaces, cgroups), undone first at exit.
e2e_cleanup() { :; }

# Throwaway libvirt state, then virtlogd and libvirtd by hand.
step_libvirt_sandbox() {
	log "libvirt sandbox in a private mount namespace"
	local d
	for d in /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
		mkdir -p "$d" 2>/dev/null
		mount -t tmpfs -o mode=755 tmpfs "$d" || { not_ok "tmpfs over $d"; return 1; }
	done
	cp -a /etc/libvirt "$W/etc-libvirt"
	qemu_conf >"$W/etc-libvirt/qemu.conf"
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
	host_yaml >"$W/host.yaml"
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

# A simulated RAPL package and powerd-host on it.
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

# Guest kernel (cached) and a busybox initramfs with powerd-guest.
step_build_guest() {
	log "building the guest"
	mkdir -p "$CACHE"
	local deb kver kdir
	kdir=$(ls -d "$CACHE"/kernel-*/ 2>/dev/null | head -1)
	# a cache made before a module joined the list is made again
	local m
	for m in $E2E_MODULES; do
		[ -z "$kdir" ] || [ -f "${kdir}modules/$m.ko" ] || { rm -rf "$kdir"; kdir=; }
	done
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
		local f
		for m in $E2E_MODULES; do
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

# ---------------------------------------------------------------------------------------------
# live migration between this libvirtd and a second one on the same machine
# (../shared/notes/e2e-recipe.md "Live migration"), for e2e-channel.sh and e2e-image.sh: its
# own mount and UTS namespaces, the same network; tmpfs over libvirt's state, its own
# libvirtd.conf (TCP on a free port of 127.0.0.1, no auth, its own host_uuid) and hostname; a
# powerd-host of its own in that namespace, with its own share_dir (so its own host instance id).

# The destination's libvirtd listens on a free port (other tests on this machine may run a second
# libvirtd at the same time: a fixed port once sent a domain into another test's libvirtd), and the
# migration streams take free ports too: MIGRATE_OUT_URI (to the destination), MIGRATE_BACK_URI.
DST_URI=''
dst_virsh() { timeout 90 virsh -q -c $DST_URI "$@"; }
dst_metrics() { curl -s --max-time 5 "http://127.0.0.1:$DST_PORT/metrics"; }
dst_serves() { dst_metrics | grep -q '^powerd_host_energy_joules_total'; }
# The holder process runs in namespaces of its own (unshare has done its work and exec'ed sleep).
dst_ns_ready() {
	local own
	own=$(readlink /proc/self/ns/mnt)
	[ -n "$(readlink "/proc/$DST_NS_PID/ns/mnt")" ] && [ "$(readlink "/proc/$DST_NS_PID/ns/mnt")" != "$own" ] &&
		[ "$(cat "/proc/$DST_NS_PID/comm" 2>/dev/null)" = sleep ]
}
in_dst() { nsenter -t "$DST_NS_PID" -m -u "$@"; }

step_dst_libvirtd() {
	log "a second libvirtd (the migration's destination) in its own mount and UTS namespace"
	start_bg "$W/dst-ns.log" unshare -m -u --propagation private sleep 100000
	DST_NS_PID=$LAST_PID
	if ! wait_for 20 dst_ns_ready; then
		not_ok "destination namespace (unshare pid $DST_NS_PID: $(tr '\n' ' ' <"$W/dst-ns.log"))"
		return 1
	fi
	local lv_port uuid
	uuid=$(cat /proc/sys/kernel/random/uuid)
	lv_port=$(free_port) && MIGRATE_OUT_URI=tcp://127.0.0.1:$(free_port) && MIGRATE_BACK_URI=tcp://127.0.0.1:$(free_port) ||
		{ not_ok "free ports for the destination"; return 1; }
	DST_URI=qemu+tcp://127.0.0.1:$lv_port/system
	cp -a "$W/etc-libvirt" "$W/etc-libvirt-dst"
	rm -f "$W"/etc-libvirt-dst/hooks/qemu.d/*
	cat >>"$W/etc-libvirt-dst/libvirtd.conf" <<-EOF
	listen_tls = 0
	listen_tcp = 1
	tcp_port = "$lv_port"
	listen_addr = "127.0.0.1"
	auth_tcp = "none"
	host_uuid = "$uuid"
	EOF
	in_dst sh -c "hostname powerd-e2e-dst && for d in /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do mount -t tmpfs -o mode=755 tmpfs \$d || exit 1; done && mount --bind $W/etc-libvirt-dst /etc/libvirt" ||
		{ not_ok "destination namespace set up"; return 1; }
	start_bg "$W/dst-virtlogd.log" nsenter -t "$DST_NS_PID" -m -u /usr/sbin/virtlogd -p /run/libvirt/virtlogd.pid
	wait_for 10 in_dst test -S /run/libvirt/virtlogd-sock
	start_bg "$W/dst-libvirtd.out" nsenter -t "$DST_NS_PID" -m -u env LIBVIRT_LOG_OUTPUTS="3:file:$W/dst-libvirtd.log" \
		/usr/sbin/libvirtd --listen -p /run/libvirt/libvirtd.pid
	# ours, not another test's on a port taken meanwhile: its host UUID is the one we gave it
	if wait_for 60 sh -c "virsh -c $DST_URI capabilities 2>/dev/null | grep -q '<uuid>$uuid</uuid>'"; then
		ok "destination libvirtd answers on $DST_URI"
	else
		not_ok "destination libvirtd (host UUID $uuid) answers on $DST_URI"
		return 1
	fi
	DST_PORT=$(free_port)
	sed -e "s|^share_dir: .*|share_dir: $W/share-dst|" -e "s|^metrics_listen: .*|metrics_listen: 127.0.0.1:$DST_PORT|" \
		"$W/host.yaml" >"$W/host-dst.yaml"
	mkdir -p "$W/share-dst"
	start_bg "$W/powerd-host-dst.log" nsenter -t "$DST_NS_PID" -m -u "$W/bin/powerd-host" -c "$W/host-dst.yaml"
	check "destination powerd-host serves its metrics on 127.0.0.1:$DST_PORT" wait_for 20 dst_serves
}

# "FSTYPE OPTIONS" of the mount on a domain's export (the last one stacked there)
export_mount() { findmnt -rn -o FSTYPE,OPTIONS -M "$SHARE/$1" 2>/dev/null | tail -1; }
is_ro_tmpfs() {
	local m
	m=$(export_mount "$1")
	[ "${m%% *}" = tmpfs ] && [[ ",${m#* }," == *,ro,* ]]
}


# ---------------------------------------------------------------------------------------------
# the end

summary() {
	local total
	total=$(elapsed)
	echo "# timings: ${LIBVIRTD_START_S:+libvirtd ${LIBVIRTD_START_S}s to answer; }$(e2e_timings)whole test ${total}s"
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
	for f in powerd-host.log hook.log libvirtd.out $E2E_LOGS; do
		[ -s "$W/$f" ] || continue
		echo "# ---- last lines of $f"
		tail -25 "$W/$f" | tr -d '\r' | sed 's/^/#   /'
	done
}

