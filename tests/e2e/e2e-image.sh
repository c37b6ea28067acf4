#!/usr/bin/env bash
# The image path end to end: a real Debian 12 VM image with the powerd-guest package installed by
# apt and enabled (nothing else configured), booted from its disk by a real libvirtd + qemu (TCG),
# with powerd-host `channel: auto`:
#   - the image (tests/e2e/build-image.sh: debootstrap, Debian's kernel, systemd, udev,
#     qemu-guest-agent, curl, prometheus-node-exporter) is cached under $POWERD_E2E_CACHE, keyed
#     on build-image.sh's hash; each run installs the freshly built .deb into an overlay of it
#     (apt-get install ./powerd-guest_*.deb in a chroot, offline) and makes an ext4 disk of that
#     (mkfs.ext4 -d): no loop mount. Direct kernel boot of Debian's vmlinuz/initrd, root=/dev/vda.
#   - the test reaches into the guest through qemu-guest-agent (guest-exec);
#   - powerd-host starts after the guest is up: the channel is hot-plugged then, and
#     powerd-guest.service picks it up without a restart;
#   - virsh save/restore, managedsave/start, a live migration to a second libvirtd and back,
#     `systemctl restart powerd-guest` and kill -9 of it: each time the service is active, metered
#     again within two intervals, and its served counter, tree_out and sysfs_out never go back;
#   - node_exporter (Debian's, a second instance with --path.sysfs and only the rapl collector)
#     and a reader on the prometheus/procfs library with Kepler's wrap rule
#     (tests/e2e/procfs-reader) run in the guest through all of it: no wrap counted, and never
#     more energy than the host gave the domain;
#   - an unprivileged user in the guest cannot open the port, and powerd-guest keeps being metered;
#   - the channel-only boot has no failed unit and no FAILED on its console; the same image booted
#     with the 9p share mounts it and powerd-guest reads it.
#
#   e2e-image.sh --host BIN --guest BIN --raplsim BIN [--source DIR] [--keep]
#
# Needs root, libvirt/qemu, debootstrap (first run: network to a Debian mirror), e2fsprogs,
# golang-go and golang-github-prometheus-procfs-dev, cpack. Exits 77 where it cannot run.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init "$@"

DOM=powerd-e2e-img
BUILD=$(cd "$(dirname "$GUEST_BIN")" && pwd)
export E2E_LOGS="$DOM.serial powerd-host-dst.log image-build.log guest-journal.log"
GUEST_INTERVAL_S=2 # conf/guest.yaml's default: the image configures nothing
READERS_ROOT=/run/powerd/sysfs # powerd-guest's sysfs_out (its default)
READERS_PORT=9101               # the second node_exporter, on that root
T_STEPS=()
e2e_timings() {
	local IFS=';'
	echo "image ${IMAGE_S:-?}s (${IMAGE_HOW:-?}); package ${PKG_S:-?}s; reader build ${GO_S:-?}s;" \
		"disk ${DISK_S:-?}s (${DISK_MIB:-?} MiB root);${T_STEPS[*]}; readers' energy ${READER_J:-?} J" \
		"of the hosts' ${HOSTS_J:-?} J; "
}

# ---------------------------------------------------------------------------------------------
# into the guest: qemu-guest-agent's guest-exec

GX_URI=qemu:///system
json_str() { # a JSON string literal of $1
	printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' | awk 'BEGIN { ORS = "" } NR > 1 { print "\\n" } { print }'
}
agent() { timeout 30 virsh -q -c "$GX_URI" qemu-agent-command --timeout 20 $DOM "$1" 2>/dev/null; }
# gx CMD: /bin/sh -c CMD as root in the guest; its stdout on ours, its exit code ours (255: the
# agent did not answer). Bounded: 60 s.
gx() {
	local out pid st ec
	out=$(agent "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/sh\",\"arg\":[\"-c\",\"$(json_str "$1")\"],\"capture-output\":true}}") || return 255
	pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' <<<"$out")
	[ -n "$pid" ] || return 255
	local end=$(($(date +%s) + 60))
	while :; do
		st=$(agent "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 255
		case $st in *'"exited":true'*) break ;; esac
		[ "$(date +%s)" -ge $end ] && return 255
		sleep 0.1
	done
	sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' <<<"$st" | base64 -d 2>/dev/null
	ec=$(sed -n 's/.*"exitcode":\([0-9]*\).*/\1/p' <<<"$st")
	return "${ec:-255}"
}
agent_up() { [ "$(gx 'echo up')" = up ]; }
guest_source_up() { gx 'curl -s --max-time 3 http://127.0.0.1:9732/metrics' | grep -q '^powerd_source_up 1'; }
ne_serves() { gx "curl -s --max-time 3 http://127.0.0.1:$READERS_PORT/metrics" | grep -q '^node_rapl_package_joules_total'; }
reader_reads() { gx 'cat /run/powerd-e2e-reader.state' | grep -q '^samples [1-9]'; }
guest_pid_other() { # pid: powerd-guest runs, in another process
	local p
	p=$(gx 'systemctl show -p MainPID --value powerd-guest.service')
	echo "$(date +%s.%N) MainPID '$p' (killed $1)" >>"$W/kill.log"
	[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$1" ]
}
booted() {
	local s
	s=$(gx 'systemctl is-system-running')
	[ "$s" = running ] || [ "$s" = degraded ]
}

# ---------------------------------------------------------------------------------------------
# the image, the package, the reader, the disk

step_image() {
	local key t
	command -v debootstrap >/dev/null || { log "SKIP: no debootstrap"; exit 77; }
	command -v mkfs.ext4 >/dev/null || { log "SKIP: no mkfs.ext4"; exit 77; }
	key=$(sha256sum "$HERE/build-image.sh" | cut -c1-12)
	IMG=$CACHE/image-bookworm-$key
	t=$(date +%s.%N)
	mkdir -p "$CACHE"
	# one build at a time: two runs at once wait for one image
	exec 8>"$CACHE/image.lock"
	flock 8
	if [ -s "$IMG/vmlinuz" ] && [ -d "$IMG/root/etc" ]; then
		IMAGE_HOW=cached
	else
		local mirror
		mirror=${POWERD_E2E_MIRROR:-$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
		log "building the VM image (once; cached in $IMG)"
		# images of other recipes go once unused for two days (another branch may be using one now)
		find "$CACHE" -maxdepth 1 -name 'image-bookworm-*' -mtime +1 -exec rm -rf {} +
		if ! timeout 1200 "$HERE/build-image.sh" "$IMG" "${mirror:-http://deb.debian.org/debian}" >"$W/image-build.log" 2>&1; then
			not_ok "build the VM image (tests/e2e/build-image.sh)"
			return 1
		fi
		IMAGE_HOW=built
	fi
	touch "$IMG"
	exec 8>&-
	IMAGE_S=$(since "$t")
	check "VM image $IMAGE_HOW in ${IMAGE_S}s: Debian's kernel $(cat "$IMG/kernel-version"), root $(cat "$IMG/size-mib") MiB" \
		test -s "$IMG/initrd.img"
}

step_package() {
	local t out=$W/deb
	t=$(date +%s.%N)
	mkdir -p "$out"
	if ! (cd "$BUILD" && cpack -G DEB -B "$out" -D CPACK_COMPONENTS_ALL=guest >"$W/cpack.log" 2>&1); then
		not_ok "cpack the powerd-guest package"
		tail -5 "$W/cpack.log"
		return 1
	fi
	GUEST_DEB=$(ls "$out"/powerd-guest_*.deb 2>/dev/null | head -1)
	PKG_S=$(since "$t")
	check "powerd-guest package built ($(basename "${GUEST_DEB:-none}"), ${PKG_S}s)" test -s "${GUEST_DEB:-/nonexistent}"
}

# The Kepler-style reader: the prometheus/procfs library Debian packages, built GOPATH-style.
step_reader() {
	local t gopath=/usr/share/gocode
	command -v go >/dev/null && [ -d $gopath/src/github.com/prometheus/procfs/sysfs ] ||
		{ log "SKIP: needs golang-go and golang-github-prometheus-procfs-dev"; exit 77; }
	t=$(date +%s.%N)
	if CGO_ENABLED=0 GO111MODULE=off GOPATH=$gopath GOCACHE=$W/gocache GOFLAGS=-mod=mod \
		go build -o "$W/powerd-procfs-reader" "$HERE/procfs-reader/main.go" >"$W/go.log" 2>&1; then
		GO_S=$(since "$t")
		ok "the procfs reader builds with Debian's prometheus/procfs ($(dpkg-query -W -f='${Version}' golang-github-prometheus-procfs-dev), ${GO_S}s)"
	else
		not_ok "go build tests/e2e/procfs-reader ($(tail -3 "$W/go.log" | tr '\n' ' '))"
		return 1
	fi
}

# This run's disk: an overlay of the cached root, the package installed into it with apt (its
# dependencies are in the image: no network), the test's two helpers, then mkfs.ext4 -d.
step_disk() {
	local t r=$W/root
	t=$(date +%s.%N)
	mkdir -p "$W/upper" "$W/work" "$r"
	mount -t overlay overlay -o "lowerdir=$IMG/root,upperdir=$W/upper,workdir=$W/work" "$r" ||
		{ not_ok "overlay over the cached image root"; return 1; }
	cp "$GUEST_DEB" "$r/var/tmp/"
	if chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		apt-get -q -y --no-install-recommends -o Debug::NoLocking=1 install "/var/tmp/$(basename "$GUEST_DEB")" \
		>"$W/apt.log" 2>&1; then
		ok "apt-get install ./$(basename "$GUEST_DEB") into the image (offline)"
	else
		not_ok "apt-get install the package into the image ($(tail -3 "$W/apt.log" | tr '\n' ' '))"
		return 1
	fi
	rm -f "$r/var/tmp/$(basename "$GUEST_DEB")"
	check "systemctl enable powerd-guest in the image" chroot "$r" systemctl enable powerd-guest.service
	install -m 755 "$W/powerd-procfs-reader" "$r/usr/local/bin/powerd-procfs-reader"
	install -m 755 "$HERE/image-snap.sh" "$r/usr/local/sbin/powerd-e2e-snap"
	DISK_MIB=$(du -sm "$r" | cut -f1)
	# room for the journal and the run's writes
	truncate -s $((DISK_MIB + 256))M "$W/disk.raw"
	if mkfs.ext4 -q -F -L root -d "$r" "$W/disk.raw" >"$W/mkfs.log" 2>&1; then
		DISK_S=$(since "$t")
		ok "ext4 disk made from the root (mkfs.ext4 -d, ${DISK_S}s with the install)"
	else
		not_ok "mkfs.ext4 -d ($(tail -3 "$W/mkfs.log" | tr '\n' ' '))"
		return 1
	fi
	umount "$r"
	cp "$IMG/vmlinuz" "$IMG/initrd.img" "$W/"
}

# ---------------------------------------------------------------------------------------------
# the domain

dom_xml() { # [9p]
	local uuid share=''
	uuid=$(echo "$DOM" | md5sum | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
	[ "${1:-}" = 9p ] &&
		share="<filesystem type='mount' accessmode='passthrough'><source dir='$SHARE/$DOM'/><target dir='scaphandre'/><readonly/></filesystem>"
	cat <<-EOF
	<domain type='qemu'>
	  <name>$DOM</name>
	  <uuid>$uuid</uuid>
	  <memory unit='MiB'>${POWERD_E2E_IMAGE_MIB:-768}</memory>
	  <vcpu>1</vcpu>
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$W/vmlinuz</kernel>
	    <initrd>$W/initrd.img</initrd>
	    <cmdline>root=/dev/vda rw console=ttyS0 quiet</cmdline>
	  </os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    <disk type='file' device='disk'>
	      <driver name='qemu' type='raw'/>
	      <source file='$W/disk.raw'/>
	      <target dev='vda' bus='virtio'/>
	    </disk>
	    $share
	    <controller type='usb' model='none'/>
	    <controller type='virtio-serial' index='0'/>
	    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
	    <serial type='file'><source path='$W/$DOM.serial' append='on'/><target port='0'/></serial>
	    <video><model type='none'/></video>
	    <memballoon model='none'/>
	    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
	  </devices>
	</domain>
	EOF
}

# powerd-guest's journal of this boot, for the logs shown when an assertion failed
guest_journal() { gx 'journalctl -b --no-pager -o short-monotonic -u powerd-guest.service | tail -40' >>"$W/guest-journal.log"; }
console() { tr -d '\r' <"$W/$DOM.serial" 2>/dev/null; }
no_failed_on_console() { ! console | grep -aq FAILED; }

# define and start; wait for the agent and for the end of the boot
boot_domain() { # label [9p]
	local t
	dom_xml "${2:-}" >"$W/$DOM.xml"
	virsh_ define "$W/$DOM.xml" >/dev/null || { not_ok "$DOM: virsh define"; return 1; }
	: >"$W/$DOM.serial"
	t=$(date +%s.%N)
	virsh_ start $DOM >"$W/start.log" 2>&1 || { not_ok "$DOM: virsh start ($(tr '\n' ' ' <"$W/start.log"))"; return 1; }
	if ! wait_for 300 agent_up; then
		not_ok "$1: the guest agent answers within 300s"
		console | tail -20
		return 1
	fi
	AGENT_S=$(since "$t")
	if wait_for 300 booted; then
		BOOT_S=$(since "$t")
		ok "$1: booted to multi-user in ${BOOT_S}s (agent ${AGENT_S}s; systemctl is-system-running: $(gx 'systemctl is-system-running'))"
		T_STEPS+=(" $1 to multi-user ${BOOT_S}s (agent ${AGENT_S}s)")
	else
		not_ok "$1: booted within 300s ($(gx 'systemctl is-system-running'))"
		return 1
	fi
	local failed
	failed=$(gx 'systemctl --failed --no-legend --plain | cut -d" " -f1 | tr "\n" " "')
	check "$1: no failed unit (systemctl --failed: '${failed% }')" test -z "${failed// /}"
	check "$1: no FAILED on the console" no_failed_on_console
}

# ---------------------------------------------------------------------------------------------
# what the guest shows, and the checks after each step

declare -A S # the last snapshot

# snap: one guest-exec of powerd-e2e-snap into S
snap() { # [BEYOND TIMEOUT_S]
	local k v out
	out=$(gx "/usr/local/sbin/powerd-e2e-snap $READERS_ROOT ${1:-}") || return 1
	S=()
	while read -r k v; do
		[ -n "$k" ] && S[$k]=$v
	done <<<"$out"
	echo "$(date +%s.%N) $(tr '\n' ' ' <<<"$out")" >>"$W/snaps.log"
	[ -n "${S[active]:-}" ]
}
host_dom_j() { host_metrics | metric "powerd_domain_energy_joules_total\\{domain=\"$DOM\",zone=\"package-0\"\\}"; }
channel_connected() { host_metrics | grep -q "^powerd_domain_channel_connected{domain=\"$DOM\"} 1"; }
dst_channel_connected() { dst_metrics | grep -q "^powerd_domain_channel_connected{domain=\"$DOM\"} 1"; }
dst_dom_j() { dst_metrics | metric "powerd_domain_energy_joules_total\\{domain=\"$DOM\",zone=\"package-0\"\\}"; }

# The highest value seen so far of each counter: none may go back.
declare -A HIGH
never_back() { # label key
	local v=${S[$2]:-} h=${HIGH[$2]:-}
	if [ -z "$v" ]; then
		not_ok "$1: $2 is read (empty)"
		return
	fi
	if [ -n "$h" ] && fcmp "$v" '<' "$h"; then
		not_ok "$1: $2 went back ($h -> $v)"
	else
		ok "$1: $2 did not go back (${h:-start} -> $v)"
		HIGH[$2]=$v
	fi
}

# After a step: the service is active and metered again within two of its intervals of the channel
# being back (the host's metric: connected), and no counter went back. The wait is timed in the
# guest (powerd-e2e-snap polls the served counter every 0.2 s) from when the agent runs it, sent
# as soon as the host shows the channel connected.
after_step() { # label connected_fn
	local label=$1 t0 tc served0 waited lead back
	t0=$(date +%s.%N)
	served0=${HIGH[served]:-0}
	if ! wait_for 60 "$2"; then
		not_ok "$label: the host's channel connected again within 60s"
		return 1
	fi
	tc=$(date +%s.%N)
	back=$(since "$t0")
	snap "$served0 30"
	waited=${S[waited]:-timeout}
	# what passed before the guest started waiting: the agent's start of the command, at most
	lead=$(awk -v a="$tc" -v b="$(date +%s.%N)" -v w="${waited/timeout/0}" 'BEGIN { l = b - a - w; printf "%.2f", l < 0 ? 0 : l }')
	if [ "$waited" = timeout ]; then
		not_ok "$label: metered again within 30s of the channel's reconnection (served ${S[served]:-?} J, was $served0 J)"
	else
		local m
		m=$(awk -v a="$waited" -v b="$lead" 'BEGIN { printf "%.2f", a + b }')
		T_STEPS+=(" $label: channel back ${back}s, metered again ${waited}s after (<= ${m}s)")
		# Timed in the guest from when the agent ran the command; the agent's own delay, which
		# under TCG includes the guest's catching up after a resume, is the upper bound shown.
		check "$label: metered again within two intervals ($((2 * GUEST_INTERVAL_S))s) of the channel's reconnection: ${waited}s timed in the guest (at most ${m}s with the agent's delay; served $served0 -> ${S[served]} J)" \
			fcmp "$waited" '<=' $((2 * GUEST_INTERVAL_S))
	fi
	check "$label: powerd-guest.service active (${S[active]:-?}, pid ${S[mainpid]:-?}, restarts ${S[nrestarts]:-?})" \
		test "${S[active]:-}" = active
	never_back "$label" served
	never_back "$label" tree_uj
	never_back "$label" sysfs_uj
	never_back "$label" ne_j
	never_back "$label" reader_uj
	check "$label: the procfs reader (Kepler's rule) counted no wrap (wraps ${S[reader_wraps]:-?})" \
		test "${S[reader_wraps]:-x}" = 0
}

# ---------------------------------------------------------------------------------------------
# the steps

# powerd-guest up before the channel exists; powerd-host started then hot-plugs it.
step_hotplug() {
	local pid0 t
	snap
	pid0=${S[mainpid]:-}
	check "powerd-guest.service active before the channel exists (pid $pid0, powerd_source_up ${S[source_up]:-?})" \
		test "${S[active]:-}" = active
	# The readers of the sysfs root, for the rest of the run, as transient services of dynamic users
	# (what powerd-guest lays out is world-readable; with DynamicUser=yes and a preserved runtime
	# directory, systemd kept it under /run/private, 0700, out of their reach)
	local as_user="-p DynamicUser=yes"
	gx "systemd-run -q --unit=powerd-e2e-reader $as_user -p RuntimeDirectory=powerd-e2e-reader \
/usr/local/bin/powerd-procfs-reader -sysfs $READERS_ROOT -interval 1s -state /run/powerd-e2e-reader/state &&
ln -sf /run/powerd-e2e-reader/state /run/powerd-e2e-reader.state &&
systemd-run -q --unit=powerd-e2e-node-exporter $as_user -p Restart=on-failure -p RestartSec=2s \
-p StartLimitIntervalSec=0 /usr/bin/prometheus-node-exporter \
--path.sysfs=$READERS_ROOT --collector.disable-defaults --collector.rapl --web.listen-address=127.0.0.1:$READERS_PORT" >/dev/null
	# (node_exporter 1.5 panics at start where --path.sysfs does not exist: powerd-guest makes the
	# root at its start, before the channel; Restart=on-failure as an operator's unit would have)
	check "the procfs reader and node_exporter (--path.sysfs=$READERS_ROOT --collector.disable-defaults --collector.rapl) are started in the guest" \
		gx 'systemctl is-active -q powerd-e2e-reader && systemctl show -p LoadState --value powerd-e2e-node-exporter | grep -q loaded'
	t=$(date +%s.%N)
	step_start_host || return 1
	if wait_for 60 channel_connected; then
		ok "powerd-host hot-plugged the channel into the running guest and connected ($(since "$t")s)"
	else
		not_ok "powerd-host hot-plugged and connected the channel within 60s"
		return 1
	fi
	check "powerd-guest picked the port up: powerd_source_up 1" wait_for 60 guest_source_up
	HOTPLUG_S=$(since "$t")
	T_STEPS+=(" hot-plug to source_up ${HOTPLUG_S}s")
	check "the udev link /dev/virtio-ports/org.powerd.energy.0 exists" gx 'test -e /dev/virtio-ports/org.powerd.energy.0'
	wait_for 30 reader_reads
	check "node_exporter serves node_rapl_package_joules_total" wait_for 30 ne_serves
	local nr
	nr=$(gx 'systemctl show -p NRestarts --value powerd-e2e-node-exporter')
	check "node_exporter, started before the channel existed, never had to be restarted (NRestarts $nr)" test "$nr" = 0
	after_step "hot-plug" channel_connected
	check "hot-plug: picked up without a restart (MainPID $pid0 -> ${S[mainpid]:-?}, NRestarts ${S[nrestarts]:-?})" \
		test "${S[mainpid]:-}" = "$pid0" -a "${S[nrestarts]:-}" = 0
	local h
	h=$(host_dom_j)
	check "hot-plug: the guest's served counter ${S[served]:-?} J is at most the host's ${h:-?} J (+ one interval of the whole host's power)" \
		fcmp "${S[served]:-1e18}" '<=' "$(awk -v h="${h:-0}" -v w="$MAX_W" 'BEGIN { print h + w * 1.5 }')"
}

step_save_restore() {
	local t
	t=$(date +%s.%N)
	if virsh_ save $DOM "$W/$DOM.save" >"$W/save.log" 2>&1; then
		SAVE_S=$(since "$t")
		ok "virsh save ($SAVE_S s, $(du -m "$W/$DOM.save" | cut -f1) MB)"
	else
		not_ok "virsh save ($(tr '\n' ' ' <"$W/save.log"))"
		return 1
	fi
	t=$(date +%s.%N)
	if virsh_ restore "$W/$DOM.save" >"$W/restore.log" 2>&1; then
		RESTORE_S=$(since "$t")
		ok "virsh restore (${RESTORE_S}s)"
	else
		not_ok "virsh restore ($(tr '\n' ' ' <"$W/restore.log"))"
		return 1
	fi
	rm -f "$W/$DOM.save"
	T_STEPS+=(" save ${SAVE_S}s, restore ${RESTORE_S}s")
	after_step "save + restore" channel_connected
}

step_managedsave() {
	local t a b
	t=$(date +%s.%N)
	virsh_ managedsave $DOM >"$W/msave.log" 2>&1 || { not_ok "virsh managedsave ($(tr '\n' ' ' <"$W/msave.log"))"; return 1; }
	a=$(since "$t")
	t=$(date +%s.%N)
	virsh_ start $DOM >"$W/mstart.log" 2>&1 || { not_ok "virsh start after managedsave ($(tr '\n' ' ' <"$W/mstart.log"))"; return 1; }
	b=$(since "$t")
	ok "virsh managedsave (${a}s) and start (${b}s)"
	T_STEPS+=(" managedsave ${a}s, start ${b}s")
	after_step "managedsave + start" channel_connected
}

step_migrate() {
	step_dst_libvirtd || return 1
	local t
	t=$(date +%s.%N)
	if ! out=$(timeout 180 virsh -q -c qemu:///system migrate --live --unsafe $DOM $DST_URI --migrateuri "$MIGRATE_OUT_URI" 2>&1); then
		not_ok "virsh migrate --live to the second libvirtd ($(echo "$out" | tr '\n' ' '))"
		return 1
	fi
	MIG_OUT_S=$(since "$t")
	ok "virsh migrate --live to the second libvirtd (${MIG_OUT_S}s; the disk is the same file on both)"
	GX_URI=$DST_URI
	after_step "migration out" dst_channel_connected
	DST_J=$(dst_dom_j)
	t=$(date +%s.%N)
	if ! out=$(timeout 180 virsh -q -c $DST_URI migrate --live --unsafe $DOM qemu:///system --migrateuri "$MIGRATE_BACK_URI" 2>&1); then
		not_ok "virsh migrate --live back ($(echo "$out" | tr '\n' ' '))"
		return 1
	fi
	MIG_BACK_S=$(since "$t")
	local j
	j=$(dst_dom_j)
	[ -n "$j" ] && fcmp "$j" '>' "${DST_J:-0}" && DST_J=$j
	ok "virsh migrate --live back (${MIG_BACK_S}s)"
	T_STEPS+=(" migration out ${MIG_OUT_S}s, back ${MIG_BACK_S}s")
	GX_URI=qemu:///system
	after_step "migration back" channel_connected
}

step_guest_restart() {
	gx 'systemctl restart powerd-guest.service'
	after_step "systemctl restart powerd-guest" channel_connected
	local pid0=${S[mainpid]:-}
	gx "kill -9 $pid0"
	# Restart=on-failure: a new process within RestartSec (2 s)
	check "kill -9 of powerd-guest: systemd started it again" \
		wait_for 30 guest_pid_other "$pid0"
	after_step "kill -9 of powerd-guest" channel_connected
}

# An unprivileged local user cannot open the port (the powerd group's 0440); metering goes on.
step_unprivileged() {
	local out
	local mode
	mode=$(gx 'stat -L -c "%a %U %G" /dev/virtio-ports/org.powerd.energy.0')
	check "the port is 0440 root:powerd ($mode)" test "$mode" = "440 root powerd"
	out=$(gx 'setpriv --reuid=65534 --regid=65534 --clear-groups timeout 3 cat /dev/virtio-ports/org.powerd.energy.0 2>&1')
	check "an unprivileged user (nobody) cannot open the port: $(echo "$out" | tr '\n' ' ')" \
		grep -q "Permission denied" <<<"$out"
	after_step "an unprivileged user's open" channel_connected
}

# Over the run: what the readers in the guest counted is at most what the hosts gave the domain.
step_energy_bound() {
	local h total bound
	snap
	h=$(host_dom_j)
	total=$(awk -v a="${h:-0}" -v b="${DST_J:-0}" 'BEGIN { printf "%.3f", a + b }')
	# one interval of the simulated host's whole power, for the sampling instants
	bound=$(awk -v t="$total" -v w="$MAX_W" 'BEGIN { printf "%.3f", t + w * 1.5 }')
	local r ne
	r=$(awk -v u="${S[reader_uj]:-1e18}" 'BEGIN { printf "%.3f", u / 1e6 }')
	ne=${S[ne_j]:-1e18}
	READER_J=$r HOSTS_J=$total
	check "the procfs reader (Kepler's rule) counted ${r} J over the run, no more than the hosts gave the domain (${h:-?} + ${DST_J:-?} = ${total} J, + one interval: ${bound} J)" \
		fcmp "$r" '<=' "$bound"
	check "node_exporter's node_rapl_package_joules_total ${ne} J is no more than the hosts gave the domain (${bound} J)" \
		fcmp "$ne" '<=' "$bound"
	check "the procfs reader read every second (${S[reader_samples]:-?} samples, ${S[reader_errors]:-?} errors)" \
		test "${S[reader_samples]:-0}" -gt 10
}

# The same image with the 9p share: var-scaphandre.mount mounts it and powerd-guest reads it
# (powerd-host restarted with channel: off, so the share is powerd-guest's only source).
step_share_boot() {
	virsh_ destroy $DOM >/dev/null 2>&1
	virsh_ undefine $DOM >/dev/null 2>&1
	stop_pid "$HOST_PID"
	sed -i 's/^channel: .*/channel: off/' "$W/host.yaml"
	step_start_host || return 1
	boot_domain "9p share boot" 9p || return 1
	check "9p share boot: var-scaphandre.mount is active" gx 'systemctl is-active -q var-scaphandre.mount'
	check "9p share boot: the guest reads the share ($(gx 'cat /var/scaphandre/intel-rapl:0/energy_uj') uJ)" \
		gx 'test -s /var/scaphandre/intel-rapl:0/energy_uj'
	check "9p share boot: powerd-guest serves the share's energy (powerd_source_up 1)" \
		wait_for 60 guest_source_up
	guest_journal
	virsh_ destroy $DOM >/dev/null 2>&1
}

main() {
	[ "${POWERD_E2E_IMAGE:-1}" = 1 ] || { log "SKIP: POWERD_E2E_IMAGE=0"; exit 77; }
	log "work dir $W, source $SOURCE"
	HOST_PORT=$(free_port)
	step_image || return 1
	step_package || return 1
	step_reader || return 1
	step_disk || return 1
	step_libvirt_sandbox || return 1
	step_start_libvirtd || return 1
	step_start_raplsim
	boot_domain "channel-only boot" || return 1
	step_hotplug || return 1
	step_save_restore
	step_managedsave
	[ "${POWERD_E2E_MIGRATE:-1}" = 1 ] && step_migrate
	step_guest_restart
	step_unprivileged
	step_energy_bound
	guest_journal
	step_share_boot
}

main
e2e_finish
