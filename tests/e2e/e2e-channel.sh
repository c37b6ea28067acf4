#!/usr/bin/env bash
# End-to-end test of the energy channel (DESIGN.md §4) against a real libvirtd and qemu (TCG):
#
#   e2e-channel.sh --host BIN --guest BIN --raplsim BIN [--source DIR] [--keep]
#
# A domain defined with a virtio-serial controller and no share: powerd-host hot-plugs the
# channel org.powerd.energy.0 (live only), connects to qemu's socket and writes one record per
# interval; the busybox guest (tests/e2e/channel-init.sh) reads the port. Checked: the live XML
# has the channel and the inactive one does not; the guest's energy equals the host's per-domain
# counter within one interval and rises with load; virsh save + restore and managedsave + start
# succeed and the counter goes on without going back; kill -9 of powerd-host mid-run; the same
# save of a domain with its 9p share mounted fails (the share's limit, docs/faults.md).
# With POWERD_E2E_MIGRATE=1 (the default) also a live migration both ways between this libvirtd
# and a second one in its own mount namespace, a powerd-host on each side.
#
# Shared set-up in tests/e2e/lib.sh; every wait is bounded; exit 1 if any assertion failed, 77
# where it cannot run.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init "$@"

DOM=powerd-e2e-chan
DOM9P=powerd-e2e-chan9p
export E2E_LOGS="$DOM.serial $DOM9P.serial"
e2e_timings() {
	echo "channel connected ${CONNECT_S:-?}s after virsh start; save ${SAVE_S:-?}s, restore" \
		"${RESTORE_S:-?}s, reconnected ${RESTORE_CONNECT_S:-?}s after; managedsave" \
		"${MSAVE_S:-?}s, start ${MSTART_S:-?}s; migration out ${MIGRATE_OUT_S:-?}s, back" \
		"${MIGRATE_BACK_S:-?}s; "
}

# ---------------------------------------------------------------------------------------------
# helpers of this test

dom_xml() { # name channel|9p initrd
	local name=$1 kind=$2 initrd=$3 uuid devices
	uuid=$(echo "$name" | md5sum | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
	if [ "$kind" = 9p ]; then
		devices="<filesystem type='mount' accessmode='passthrough'><source dir='$SHARE/$name'/><target dir='scaphandre'/><readonly/></filesystem>"
	else
		devices="<controller type='virtio-serial' index='0'/>"
	fi
	cat <<-EOF
	<domain type='qemu'>
	  <name>$name</name>
	  <uuid>$uuid</uuid>
	  <memory unit='MiB'>256</memory>
	  <vcpu>1</vcpu>
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$KERNEL</kernel>
	    <initrd>$initrd</initrd>
	    <cmdline>console=ttyS0 quiet loglevel=1 panic=-1 powerd_e2e.fs=9p powerd_e2e.burn=4 powerd_e2e.idle=4</cmdline>
	  </os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    $devices
	    <serial type='file'><source path='$W/$name.serial' append='on'/><target port='0'/></serial>
	    <video><model type='none'/></video>
	    <memballoon model='none'/>
	  </devices>
	</domain>
	EOF
}

# What the guest saw, one line per sample: "up value_uj instance time_ms", value the package
# energy, up the guest's uptime when it arrived, time_ms when the host wrote it. Mode reader: the
# raw records; mode guest: tree_out (instance "-", time the guest's uptime).
series() {
	tr -d '\r' <"$W/$DOM.serial" | awk '
	$1 == "REC" && $3 == "powerd-energy/1" {
		v = ""; inst = ""; t = ""
		for (i = 4; i <= NF; i++) {
			if ($i ~ /^z\.package-0=/) { v = $i; sub(/^[^=]*=/, "", v) }
			if ($i ~ /^instance=/) { inst = $i; sub(/^[^=]*=/, "", inst) }
			if ($i ~ /^time_ms=/) { t = $i; sub(/^[^=]*=/, "", t) }
		}
		if (v != "") print $2, v, inst, t
	}
	$1 == "TREE" && $3 ~ /^[0-9]+$/ { printf "%s %s - %.0f\n", $2, $3, $2 * 1000 }'
}
n_samples() { series | wc -l; }
# The counter a guest serves from that series under the record contract: a new instance or a
# counter that went down is rebased (the served total goes on from where it was).
served() {
	series | awk '
	{ if (n == 0 || ($3 != inst && $3 != "-") || $2 < last) { base = tot; first = $2 }
	  tot = base + ($2 - first); inst = $3; last = $2; n++; printf "%s %.0f %s\n", $1, tot, $3 }'
}
# "ok" if the served counter never went back, else the first step back.
served_monotonic() {
	served | awk '{ if (n && $2 < p) { print "back at up=" $1 ": " p " -> " $2; exit } p = $2; n++ }'
}
# The largest step of the served counter between two samples, in J.
served_max_step_j() {
	served | awk '{ if (n && $2 - p > m) m = $2 - p; p = $2; n++ } END { printf "%.3f", m / 1e6 }'
}
host_dom_j() { host_metrics | metric "powerd_domain_energy_joules_total\\{domain=\"$DOM\",zone=\"package-0\"\\}"; }
host_dom_w() { host_metrics | metric "powerd_domain_power_watts\\{domain=\"$DOM\",zone=\"package-0\"\\}"; }
# (the scrape is read whole first: grep -q leaving early would make curl fail on a closed pipe, and
# pipefail the check)
channel_connected() { local m; m=$(host_metrics) && grep -q "^powerd_domain_channel_connected{domain=\"$1\"} 1" <<<"$m"; }
channel_state() { local m; m=$(host_metrics) && grep -qE "^powerd_domain_transport\{domain=\"$1\",transport=\"channel\",state=\"$2\"(,reason=\"[^\"]*\")?\} 1" <<<"$m"; }
live_has_channel() { virsh_ dumpxml "$1" 2>/dev/null | grep -q "name='org.powerd.energy.0'"; }
channel_socket() { virsh_ dumpxml "$1" 2>/dev/null | awk -F"'" '/<channel type=.unix./ { f = 1 } f && /<source / { for (i = 1; i < NF; i++) if ($i ~ /path=$/) { print $(i + 1); exit } }'; }
samples_beyond() { [ "$(n_samples)" -gt "$1" ]; }
# One interval's energy lately (J), half as much again for jitter, at least $1: the largest power
# between the last samples (by the host's time of each) times the 1 s interval.
interval_energy_j() {
	# (not from a first record of 0: the one written at hot-plug, read once the guest was up)
	series | tail -6 | awk -v min="$1" '{ if (n && $4 > t && p > 0) { e = ($2 - p) * 1000 / ($4 - t); if (e > m) m = e }
		p = $2; t = $4; n++ } END { b = m / 1e6 * 1.5; if (b < min) b = min; printf "%.3f", b }'
}
# Did a sample carry this many joules (to the microjoule)?
received() { series | awk -v h="$1" '{ d = $2 - h * 1e6; if (d < 0) d = -d; if (d < 1.5) f = 1 } END { exit !f }'; }

# A second initramfs: the one lib.sh built, with the channel guest's /init (and node_exporter
# when powerd-guest can lay out tree_out for it).
step_channel_initrd() {
	local r=$W/initramfs-chan
	rm -rf "$r"
	cp -a "$W/initramfs" "$r"
	cp "$HERE/channel-init.sh" "$r/init" && chmod 755 "$r/init"
	printf 'source: auto\ntree_out: /run/x\n' >"$W/guest-probe.yaml"
	if "$GUEST_BIN" --check-config -c "$W/guest-probe.yaml" >/dev/null 2>&1; then
		GUEST_MODE=guest
		mkdir -p "$r/usr/bin"
		[ -x /usr/bin/prometheus-node-exporter ] && cp /usr/bin/prometheus-node-exporter "$r/usr/bin/node_exporter"
	else
		GUEST_MODE=reader
	fi
	(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd-chan.gz"
	check "channel guest initramfs built (mode $GUEST_MODE: $([ $GUEST_MODE = guest ] && echo "powerd-guest reads the port" || echo "powerd-guest has no channel reader yet, a shell loop reads the port"))" \
		test -s "$W/initrd-chan.gz"
}

step_hotplug() {
	log "defining $DOM: a virtio-serial controller, no share"
	dom_xml $DOM channel "$W/initrd-chan.gz" >"$W/$DOM.xml"
	virsh_ define "$W/$DOM.xml" >/dev/null || { not_ok "$DOM: virsh define"; return 1; }
	: >"$W/$DOM.serial"
	local t
	t=$(date +%s.%N)
	virsh_ start $DOM >"$W/$DOM.start.log" 2>&1 || { not_ok "$DOM: virsh start ($(cat "$W/$DOM.start.log"))"; return 1; }
	if wait_for 30 channel_connected $DOM; then
		CONNECT_S=$(since "$t")
		ok "$DOM: powerd-host hot-plugged the channel and connected ${CONNECT_S}s after virsh start"
	else
		not_ok "$DOM: channel connected within 30s of virsh start"
		return 1
	fi
	check "$DOM: the live XML has the channel (socket $(channel_socket $DOM))" live_has_channel $DOM
	check "$DOM: virsh dumpxml --inactive does not" \
		sh -c "! virsh -q -c qemu:///system dumpxml --inactive $DOM | grep -q org.powerd.energy.0"
	check "$DOM: powerd_domain_transport{transport=channel,state=connected}" channel_state $DOM connected
	check "$DOM: powerd-host logged the hot-plug" \
		grep -q "domain $DOM: energy channel hot-plugged" "$W/powerd-host.log"
	if wait_for 120 grep -aq '^=== PORT vport' "$W/$DOM.serial"; then
		ok "$DOM: the guest found the port ($(grep -a -m1 '^=== PORT' "$W/$DOM.serial" | tr -d '\r'))"
	else
		not_ok "$DOM: the guest found port org.powerd.energy.0 within 120s"
		return 1
	fi
	if wait_for 60 samples_beyond 3; then
		ok "$DOM: the guest reads the energy ($(n_samples) samples, last: $(series | tail -1))"
	else
		not_ok "$DOM: the guest reads energy from the channel within 60s"
		return 1
	fi
}

# The guest's value next to the host's counter: they differ by at most one interval of energy,
# and the host's value is one the guest received, to the microjoule.
assert_equal_host() {
	local h g diff bound n
	n=$(n_samples)
	h=$(host_dom_j)
	# the record of the tick whose total the metric shows, or the next one
	wait_for 5 samples_beyond "$n"
	g=$(series | tail -1 | awk '{ printf "%.6f", $2 / 1e6 }')
	diff=$(awk -v a="$g" -v b="$h" 'BEGIN { d = a - b; if (d < 0) d = -d; printf "%.3f", d }')
	bound=$(interval_energy_j 0.1)
	EQUAL_DIFF_J="$diff (bound $bound)"
	check "$DOM: guest energy ${g} J = host's counter ${h} J within one interval (|diff| ${diff} J <= ${bound} J)" \
		fcmp "$diff" '<=' "$bound"
	if [ "$GUEST_MODE" = reader ]; then
		check "$DOM: the host's ${h} J is a value the guest received" received "$h"
	fi
}

# Power (W) seen by the guest between two phase markers (guest uptime).
phase_rate() { # from_phase to_phase
	local a b
	a=$(tr -d '\r' <"$W/$DOM.serial" | awk -v p="$1" '$1 == "===" && $2 == "PHASE" && $3 == p { sub(/up=/, "", $4); print $4; exit }')
	b=$(tr -d '\r' <"$W/$DOM.serial" | awk -v p="$2" '$1 == "===" && $2 == "PHASE" && $3 == p { sub(/up=/, "", $4); print $4; exit }')
	if [ -z "$a" ] || [ -z "$b" ]; then
		echo "-"
		return
	fi
	# the (lower) median power of the steps in the window, by the host's time of each record (a record
	# read late still counts for when it was made; one catching up on the boot's energy is one
	# step, not the phase)
	series | awk -v a="$a" -v b="$b" '$1 >= a + 1 && $1 <= b { if (n && $4 > t) w[m++] = ($2 - v) / 1e3 / ($4 - t); t = $4; v = $2; n++ }
		END { if (m == 0) { print "-"; exit } for (i = 0; i < m; i++) for (j = i + 1; j < m; j++) if (w[j] < w[i]) { x = w[i]; w[i] = w[j]; w[j] = x }
			printf "%.3f", w[int((m - 1) / 2)] }'
}

# Mode guest: node_exporter's rapl collector in the VM reads powerd-guest's tree_out.
assert_node_exporter() {
	[ "$GUEST_MODE" = guest ] || return 0
	local line
	wait_for 30 sh -c "tr -d '\r' <'$W/$DOM.serial' | grep -aqE '^TREE [0-9.]+ [0-9]+ [0-9.e+]+$'"
	line=$(tr -d '\r' <"$W/$DOM.serial" | grep -aE '^TREE [0-9.]+ [0-9]+ [0-9.e+]+$' | tail -1)
	if [ -z "$line" ]; then
		not_ok "$DOM: node_exporter's rapl collector reads tree_out (no sample)"
		return
	fi
	local e ne
	e=$(awk '{ printf "%.6f", $3 / 1e6 }' <<<"$line")
	ne=$(awk '{ printf "%.6f", $4 }' <<<"$line")
	check "$DOM: node_exporter's rapl collector reads tree_out: node_rapl_package_joules_total $ne J, tree_out $e J" \
		fcmp "$(awk -v a="$e" -v b="$ne" 'BEGIN { d = a - b; if (d < 0) d = -d; print d }')" '<=' "$(interval_energy_j 0.5)"
}

assert_rises_with_load() {
	wait_for 60 grep -aq '^=== PHASE steady' "$W/$DOM.serial"
	local idle burn
	idle=$(phase_rate idle0 burn)
	burn=$(phase_rate burn steady)
	FULL_W=$burn
	check "$DOM: the guest's energy rises with load (idle ${idle} W, burn ${burn} W)" \
		fcmp "${burn/-/0}" '>' "${idle/-/999}"
}

assert_no_going_back() { # what
	local bad
	bad=$(served_monotonic)
	check "$DOM: $1: the counter never went back over $(n_samples) samples${bad:+ ($bad)}" test -z "$bad"
}

# virsh save + restore, then managedsave + start: both succeed, the channel is connected again
# (at the new socket path), records go on.
fault_save_restore() {
	local t n path0 path1
	path0=$(channel_socket $DOM)
	t=$(date +%s.%N)
	if virsh_ save $DOM "$W/$DOM.save" >"$W/save.log" 2>&1; then
		SAVE_S=$(since "$t")
		ok "$DOM: virsh save with the channel succeeds (${SAVE_S}s, $(du -m "$W/$DOM.save" | cut -f1) MB)"
	else
		not_ok "$DOM: virsh save ($(tr '\n' ' ' <"$W/save.log"))"
		return 1
	fi
	n=$(n_samples)
	t=$(date +%s.%N)
	if virsh_ restore "$W/$DOM.save" >"$W/restore.log" 2>&1; then
		RESTORE_S=$(since "$t")
		ok "$DOM: virsh restore succeeds (${RESTORE_S}s)"
	else
		not_ok "$DOM: virsh restore ($(tr '\n' ' ' <"$W/restore.log"))"
		return 1
	fi
	if wait_for 30 channel_connected $DOM; then
		RESTORE_CONNECT_S=$(since "$t")
		path1=$(channel_socket $DOM)
		ok "$DOM: channel connected again after restore (${RESTORE_CONNECT_S}s; socket $path0 -> $path1)"
	else
		not_ok "$DOM: channel connected again within 30s of restore"
	fi
	check "$DOM: the guest reads records again after restore" wait_for 30 samples_beyond $((n + 2))
	assert_no_going_back "save + restore"
	rm -f "$W/$DOM.save"

	t=$(date +%s.%N)
	if virsh_ managedsave $DOM >"$W/msave.log" 2>&1; then
		MSAVE_S=$(since "$t")
		ok "$DOM: virsh managedsave succeeds (${MSAVE_S}s)"
	else
		not_ok "$DOM: virsh managedsave ($(tr '\n' ' ' <"$W/msave.log"))"
		return 1
	fi
	check "$DOM: channel state off while saved" wait_for 10 channel_state $DOM off
	n=$(n_samples)
	t=$(date +%s.%N)
	if virsh_ start $DOM >"$W/mstart.log" 2>&1; then
		MSTART_S=$(since "$t")
		ok "$DOM: virsh start from the managed save succeeds (${MSTART_S}s)"
	else
		not_ok "$DOM: virsh start after managedsave ($(tr '\n' ' ' <"$W/mstart.log"))"
		return 1
	fi
	check "$DOM: channel connected again after managedsave + start" wait_for 30 channel_connected $DOM
	check "$DOM: the guest reads records again after managedsave + start" wait_for 30 samples_beyond $((n + 2))
	assert_no_going_back "managedsave + start"
}

fault_kill_host() {
	local n
	log "kill -9 powerd-host mid-run, start it again"
	kill -KILL "$HOST_PID" 2>/dev/null
	wait "$HOST_PID" 2>/dev/null
	n=$(n_samples)
	sleep 2 # the guest goes without records for a while: the gap is the point
	step_start_host || return 1
	check "$DOM: channel connected again by the new powerd-host" wait_for 30 channel_connected $DOM
	check "$DOM: the guest reads records again" wait_for 30 samples_beyond $((n + 2))
	local inst
	inst=$(series | awk '{ print $3 }' | sort -u | grep -vc '^-$')
	[ "$GUEST_MODE" = reader ] &&
		check "$DOM: the same host instance after the restart (same boot, same share_dir: $inst instance(s))" \
			test "$inst" -le 1
	assert_no_going_back "kill -9 of powerd-host"
}

# The share's limit: a guest with its 9p share mounted cannot be saved.
fault_9p_save() {
	log "defining $DOM9P: the 9p share, mounted by the guest"
	dom_xml $DOM9P 9p "$W/initrd.gz" >"$W/$DOM9P.xml"
	virsh_ define "$W/$DOM9P.xml" >/dev/null || { not_ok "$DOM9P: virsh define"; return 1; }
	: >"$W/$DOM9P.serial"
	virsh_ start $DOM9P >/dev/null 2>&1 || { not_ok "$DOM9P: virsh start"; return 1; }
	check "$DOM9P: no virtio-serial controller: channel state no_controller" wait_for 20 channel_state $DOM9P no_controller
	check "$DOM9P: powerd-host logged the command that adds one" \
		grep -q "domain $DOM9P: no virtio-serial controller.*powerd-host attach $DOM9P --channel" "$W/powerd-host.log"
	if ! wait_for 180 grep -aq '^=== SHARE fs=9p ok' "$W/$DOM9P.serial"; then
		not_ok "$DOM9P: guest mounted its 9p share within 180s"
		return 1
	fi
	local out
	if out=$(virsh_ save $DOM9P "$W/$DOM9P.save" 2>&1); then
		not_ok "$DOM9P: virsh save of a domain with its 9p share mounted fails (it succeeded)"
	else
		SAVE_9P_ERR=$(echo "$out" | tr '\n' ' ' | sed 's/  */ /g')
		check "$DOM9P: virsh save with the 9p share mounted fails: $SAVE_9P_ERR" \
			grep -q "Migration is disabled when VirtFS export path" <<<"$out"
	fi
	rm -f "$W/$DOM9P.save"
	virsh_ destroy $DOM9P >/dev/null 2>&1
	virsh_ undefine $DOM9P >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
# live migration between this libvirtd and a second one on the same machine (lib.sh's
# step_dst_libvirtd: its own mount and UTS namespaces, its own powerd-host)

dst_channel_connected() { dst_metrics | grep -q "^powerd_domain_channel_connected{domain=\"$DOM\"} 1"; }
src_channel_connected() { channel_connected $DOM; }

migrate_once() { # label from_uri to_uri migrateuri connected_fn
	local t n out
	n=$(n_samples)
	t=$(date +%s.%N)
	if out=$(timeout 120 virsh -q -c "$2" migrate --live $DOM "$3" --migrateuri "$4" 2>&1); then
		eval "MIGRATE_$1_S=$(since "$t")"
		ok "$DOM: virsh migrate --live $1 ($(since "$t")s)"
	else
		not_ok "$DOM: virsh migrate --live $1 ($(echo "$out" | tr '\n' ' '))"
		return 1
	fi
	check "$DOM: $1: the channel is connected on the other side" wait_for 30 "$5"
	check "$DOM: $1: the guest reads records from the other side" wait_for 30 samples_beyond $((n + 3))
}

# The served counter's largest step from the sample before `from` (guest uptime) on: a migration
# may lose what was measured while it ran, never add more than an interval's worth.
step_after() { # from_up
	served | awk -v a="$1" '{ if (n && $1 >= a && $2 - p > m) m = $2 - p; p = $2; n++ } END { printf "%.3f", m / 1e6 }'
}

step_migrate() {
	step_dst_libvirtd || return 1
	local up0 insts step bound
	up0=$(series | tail -1 | awk '{ print $1 }')
	# One interval of the whole host's energy at its most (the simulated package's MAX_W, half
	# as much again for interval jitter): the qemu on either side works hard while the state
	# moves, and that energy is the domain's; a counter carried over twice (hundreds of J here)
	# is far above it.
	bound=$(awk -v w="$MAX_W" 'BEGIN { printf "%.3f", w * 1.5 }')
	if migrate_once OUT qemu:///system $DST_URI "$MIGRATE_OUT_URI" dst_channel_connected; then
		check "$DOM: the destination's live XML has the channel" sh -c "virsh -q -c $DST_URI dumpxml $DOM | grep -q org.powerd.energy.0"
		check "$DOM: the source's channel state is off while the domain is away" channel_state $DOM off
		migrate_once BACK $DST_URI qemu:///system "$MIGRATE_BACK_URI" src_channel_connected
	fi
	dst_virsh destroy $DOM >/dev/null 2>&1
	insts=$(series | awk -v a="$up0" '$1 >= a { print $3 }' | sort -u | grep -vc '^-$')
	[ "$GUEST_MODE" = reader ] &&
		check "$DOM: the records carried another host instance on the destination ($insts instances since)" test "$insts" -ge 2
	assert_no_going_back "live migration both ways"
	step=$(step_after "$up0")
	MIGRATE_STEP_J=$step
	check "$DOM: no step of the served counter across the migrations above one interval of the host's energy at most (${step} J <= ${bound} J; the domain's busy loop drew ${FULL_W:-?} W)" \
		fcmp "$step" '<=' "$bound"
	local first
	first=$(series | awk -v a="$up0" '$1 >= a && $3 != i0 && i0 != "" { printf "%.3f", $2 / 1e6; exit } { if ($1 < a) i0 = $3 }')
	[ "$GUEST_MODE" = reader ] &&
		check "$DOM: the destination's counter started afresh (first record ${first:-?} J <= ${bound} J: nothing carried over twice)" \
			fcmp "${first:-999999}" '<=' "$bound"
}

main() {
	log "work dir $W, source $SOURCE"
	HOST_PORT=$(free_port)
	step_libvirt_sandbox || return 1
	step_start_libvirtd || return 1
	step_start_raplsim
	step_start_host || return 1
	step_build_guest || return 1
	step_channel_initrd || return 1
	step_hotplug || return 1
	assert_equal_host
	assert_node_exporter
	assert_rises_with_load
	assert_no_going_back "boot"
	fault_save_restore
	fault_kill_host
	assert_equal_host
	[ "${POWERD_E2E_MIGRATE:-1}" = 1 ] && step_migrate
	virsh_ destroy $DOM >/dev/null 2>&1
	check "$DOM: channel state off once the domain is destroyed" wait_for 10 channel_state $DOM off
	fault_9p_save
	log "served counter's largest step over the run: $(served_max_step_j) J, across the migrations ${MIGRATE_STEP_J:-?} J; |guest - host| ${EQUAL_DIFF_J:-?} J"
}

main
e2e_finish
