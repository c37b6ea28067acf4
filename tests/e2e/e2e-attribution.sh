#!/usr/bin/env bash
# The attribution checked against a reference powerd does not compute: two busybox guests at
# once under a real libvirtd with its own cgroups (TCG), one keeping its vCPU busy flat out, one
# at a 25 % duty cycle, for about a minute; libvirt's per-domain CPU time (virsh domstats
# --cpu-total) is the reference.
#
#   e2e-attribution.sh --host BIN --guest BIN --raplsim BIN [--source DIR] [--keep]
#
# Asserts, over the window (its ends taken just after a powerd-host tick):
#   - each domain's share of the energy attributed to the two is its share of libvirt's CPU time
#     of the two, within 2 % (relative);
#   - Σ domains + unattributed = host energy, exactly, in µJ (the joule values of /metrics are
#     printed so that they round-trip to their µJ integers), per zone;
#   - under idle_power: host (a reload), with the second guest idle: the idle domain gets close to
#     nothing, the busy one the host's power above idle times its share of the host's busy CPU
#     time (/proc/stat, read by the test).
# The guests run tests/e2e/guest-init.sh with powerd_e2e.mode=load: the duty cycle is read each
# second from a 9p "control" directory the test writes. Measured figures are printed as "# ..."
# lines and go into docs/attribution.md.
set -uo pipefail
# lib.sh's guest modules, and virtio_blk for the I/O domain's disk
E2E_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache \
9pnet 9pnet_virtio 9p fuse virtiofs virtio_console virtio_blk"
. "$(dirname "$0")/lib.sh"
e2e_init "$@"

DOMA=powerd-e2e-busy
DOMB=powerd-e2e-duty
DOMC=powerd-e2e-io
IO_WINDOW_S=${POWERD_E2E_IO_WINDOW_S:-20}
# v2: this namespace sees the cgroup v2 hierarchy alone at /sys/fs/cgroup, as on a host booted
# with cgroup v2 only (on a hybrid host, the v2 hierarchy is mounted there over the v1 tmpfs);
# host: the machine's own layout (tests/e2e/e2e.sh runs on that)
CGROUP_VIEW=${POWERD_E2E_CGROUP_VIEW:-v2}
WINDOW_S=${POWERD_E2E_WINDOW_S:-60}
IDLE_WINDOW_S=${POWERD_E2E_IDLE_WINDOW_S:-20}
E2E_LOGS="$DOMA.serial $DOMB.serial $DOMC.serial"
e2e_timings() { echo "load window ${WINDOW_S}s, idle window ${IDLE_WINDOW_S}s, I/O window ${IO_WINDOW_S}s; "; }

IDLE_POLICY=shared
host_yaml() {
	cat <<-EOF
	libvirt_uri: qemu:///system
	interval: 1s
	share_dir: $SHARE
	domains: { include: ["powerd-e2e-*"] }
	powercap_root: $W/powercap
	metrics_listen: 127.0.0.1:${HOST_PORT}
	idle_power: $IDLE_POLICY
	estimate: { idle_watts: $IDLE_W, max_watts: $MAX_W }
	log_level: debug
	EOF
}

domain_xml() { # name [io]
	local name=$1 uuid iothreads='' disk=''
	uuid=$(echo "$name" | md5sum | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
	if [ "${2:-}" = io ]; then
		# a virtio-blk disk served by an I/O thread of its own (libvirt gives it a cgroup)
		truncate -s 64M "$W/$name.img"
		iothreads="<iothreads>1</iothreads>"
		disk="<disk type='file' device='disk'><driver name='qemu' type='raw' iothread='1'/><source file='$W/$name.img'/><target dev='vda' bus='virtio'/></disk>"
	fi
	cat <<-EOF
	<domain type='qemu'>
	  <name>$name</name>
	  <uuid>$uuid</uuid>
	  <memory unit='MiB'>128</memory>
	  <vcpu>1</vcpu>
	  $iothreads
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$KERNEL</kernel>
	    <initrd>$W/initrd.gz</initrd>
	    <cmdline>console=ttyS0 quiet loglevel=1 panic=-1 powerd_e2e.mode=load</cmdline>
	  </os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    <filesystem type='mount' accessmode='passthrough'><source dir='$W/ctl-$name'/><target dir='control'/><readonly/></filesystem>
	    $disk
	    <serial type='file'><source path='$W/$name.serial' append='on'/><target port='0'/></serial>
	    <video><model type='none'/></video>
	    <memballoon model='none'/>
	  </devices>
	</domain>
	EOF
}

set_duty() { echo "$2" >"$W/ctl-$1/duty.tmp" && mv "$W/ctl-$1/duty.tmp" "$W/ctl-$1/duty"; }
duty_seen() { grep -aq "^=== LOAD duty=$2 " "$W/$1.serial"; }

start_domain() { # name duty [io]
	local name=$1
	mkdir -p "$W/ctl-$name"
	set_duty "$name" "$2"
	domain_xml "$name" "${3:-}" >"$W/$name.xml"
	: >"$W/$name.serial"
	virsh_ define "$W/$name.xml" >/dev/null && virsh_ start "$name" >"$W/$name.start.log" 2>&1 ||
		{ not_ok "$name: define and start ($(tr '\n' ' ' <"$W/$name.start.log" 2>/dev/null))"; return 1; }
}

cpu_source_is() { # name source
	host_metrics | grep -q "^powerd_domain_cpu_source{domain=\"$1\",source=\"$2\"} 1"
}

# A sample where powerd-host and libvirt see the same CPU times: both domains paused (their CPU
# time stands still), two powerd-host ticks let it read them, then libvirt's CPU times of both and
# /proc/stat are read, and the domains resume. Without the pause, the duty cycle's phase at the
# instant of each read would move the reference by up to a tenth of a second of CPU.
# Sets S_METRICS, S_CPU_A, S_CPU_B (ns), S_BUSY (host busy CPU in ticks: all - idle - iowait -
# steal, as powerd-host counts it) and S_T.
host_energy() { host_metrics | metric 'powerd_host_energy_joules_total\{zone="package-0"\}'; }
next_tick() { # wait (bounded) until powerd-host's host energy moves
	local e0 e
	e0=$(host_energy)
	for _ in $(seq 100); do
		e=$(host_energy)
		[ -n "$e" ] && [ "$e" != "$e0" ] && return 0
		sleep 0.05
	done
	return 1
}
sample() {
	virsh_ suspend $DOMA >/dev/null && virsh_ suspend $DOMB >/dev/null ||
		not_ok "virsh suspend $DOMA $DOMB (sample)"
	next_tick
	next_tick
	S_METRICS=$(host_metrics)
	local stats
	stats=$(virsh_ domstats --cpu-total $DOMA $DOMB)
	S_T=$(date +%s.%N)
	S_BUSY=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat)
	S_CPU_A=$(domstats_cpu "$stats" $DOMA)
	S_CPU_B=$(domstats_cpu "$stats" $DOMB)
	virsh_ resume $DOMA >/dev/null && virsh_ resume $DOMB >/dev/null ||
		not_ok "virsh resume $DOMA $DOMB (sample)"
}

domstats_cpu() { # domstats-output name: its cpu.time in ns
	echo "$1" | awk -v d="'$2'" '$1 == "Domain:" { cur = ($2 == d) } cur && /cpu\.time=/ { split($0, x, "="); print x[2] }'
}

# µJ integer of a joule sample (the exposition's doubles round-trip: this is exact)
uj_of() { # metrics series-regexp
	echo "$1" | metric "$2" | awk '{ if ($1 == "") exit 1; printf "%.0f\n", $1 * 1e6 }'
}
# Σ over every domain of its µJ in zone (each sample converted exactly, summed as integers)
domains_uj() { # metrics zone
	local v sum=0 n=0
	for v in $(echo "$1" | awk -v z="zone=\"$2\"}" 'index($0, "powerd_domain_energy_joules_total{") == 1 && index($0, z) { printf "%.0f\n", $NF * 1e6 }'); do
		sum=$((sum + v)) n=$((n + 1))
	done
	[ $n -gt 0 ] && echo $sum
}
zones_of() { echo "$1" | sed -n 's/^powerd_host_energy_joules_total{zone="\([^"]*\)"}.*/\1/p'; }

# Σ domains + unattributed = host over the window, exactly, for every zone.
assert_exact_sums() { # metrics0 metrics1 what
	local z h0 h1 u0 u1 a0 a1 dh dd du
	for z in $(zones_of "$2"); do
		h0=$(uj_of "$1" "powerd_host_energy_joules_total\\{zone=\"$z\"\\}")
		h1=$(uj_of "$2" "powerd_host_energy_joules_total\\{zone=\"$z\"\\}")
		u0=$(uj_of "$1" "powerd_host_unattributed_energy_joules_total\\{zone=\"$z\"\\}")
		u1=$(uj_of "$2" "powerd_host_unattributed_energy_joules_total\\{zone=\"$z\"\\}")
		a0=$(domains_uj "$1" "$z")
		a1=$(domains_uj "$2" "$z")
		if [ -z "$h0" ] || [ -z "$h1" ] || [ -z "$u0" ] || [ -z "$u1" ] || [ -z "$a0" ] || [ -z "$a1" ]; then
			not_ok "$3: zone $z: host, unattributed and domains' energy on /metrics"
			continue
		fi
		dh=$((h1 - h0)) dd=$((a1 - a0)) du=$((u1 - u0))
		check "$3: zone $z: domains $dd uJ + unattributed $du uJ = host $dh uJ, exactly" \
			test $((dd + du)) -eq $dh
	done
}

step_load_window() {
	log "load window: $DOMA at 100 %, $DOMB at 25 %, ${WINDOW_S}s, idle_power: shared"
	local m0 a0 b0 c0 t0
	sample
	m0=$S_METRICS a0=$S_CPU_A b0=$S_CPU_B c0=$S_BUSY t0=$S_T
	sleep "$WINDOW_S"
	sample
	local ea eb
	ea=$(($(uj_of "$S_METRICS" "powerd_domain_energy_joules_total\\{domain=\"$DOMA\",zone=\"package-0\"\\}") -
		$(uj_of "$m0" "powerd_domain_energy_joules_total\\{domain=\"$DOMA\",zone=\"package-0\"\\}")))
	eb=$(($(uj_of "$S_METRICS" "powerd_domain_energy_joules_total\\{domain=\"$DOMB\",zone=\"package-0\"\\}") -
		$(uj_of "$m0" "powerd_domain_energy_joules_total\\{domain=\"$DOMB\",zone=\"package-0\"\\}")))
	local res
	res=$(awk -v ea="$ea" -v eb="$eb" -v ca="$((S_CPU_A - a0))" -v cb="$((S_CPU_B - b0))" \
		-v dt="$(awk -v a="$t0" -v b="$S_T" 'BEGIN { print b - a }')" 'BEGIN {
		se = ea / (ea + eb); sc = ca / (ca + cb)
		sbe = eb / (ea + eb); sbc = cb / (ca + cb)
		ra = se / sc; rb = sbe / sbc
		ok = (ra >= 0.98 && ra <= 1.02 && rb >= 0.98 && rb <= 1.02)
		printf "%.4f %.4f %.4f %.4f %.4f %.4f %.2f %.2f %.2f %.2f %.1f %d\n", se, sc, sbe, sbc, ra, rb,
			ca / 1e9, cb / 1e9, ea / 1e6, eb / 1e6, dt, ok
	}')
	# shellcheck disable=SC2086
	set -- $res
	log "measured: $DOMA CPU $7 s, energy $9 J; $DOMB CPU $8 s, energy ${10} J; over ${11} s"
	log "measured: energy share / CPU share: $DOMA $1 / $2 = $5; $DOMB $3 / $4 = $6"
	check "$DOMA: share of attributed energy ($1) = share of libvirt's CPU time ($2) within 2 % (ratio $5)" \
		awk -v r="$5" 'BEGIN { exit !(r >= 0.98 && r <= 1.02) }'
	check "$DOMB: share of attributed energy ($3) = share of libvirt's CPU time ($4) within 2 % (ratio $6)" \
		awk -v r="$6" 'BEGIN { exit !(r >= 0.98 && r <= 1.02) }'
	check "$DOMB's duty cycle is about a quarter of $DOMA's CPU time ($8 s vs $7 s)" \
		awk -v a="$7" -v b="$8" 'BEGIN { exit !(b > 0.1 * a && b < 0.5 * a) }'
	assert_exact_sums "$m0" "$S_METRICS" "idle_power shared"
}

step_idle_window() {
	log "idle window: $DOMB idle, idle_power: host (reload), ${IDLE_WINDOW_S}s"
	set_duty $DOMB 0
	wait_for 20 duty_seen $DOMB 0 || not_ok "$DOMB: its guest went idle within 20s"
	IDLE_POLICY=host
	host_yaml >"$W/host.yaml"
	kill -HUP "$HOST_PID"
	wait_for 10 grep -aq 'reload' "$W/powerd-host.log" || log "no reload line in powerd-host.log"
	sleep 3 # the idle guest's last busy second and the reload tick behind us
	local m0 a0 b0 c0 t0
	sample
	m0=$S_METRICS a0=$S_CPU_A b0=$S_CPU_B c0=$S_BUSY t0=$S_T
	sleep "$IDLE_WINDOW_S"
	sample
	local ea eb eh
	ea=$(($(uj_of "$S_METRICS" "powerd_domain_energy_joules_total\\{domain=\"$DOMA\",zone=\"package-0\"\\}") -
		$(uj_of "$m0" "powerd_domain_energy_joules_total\\{domain=\"$DOMA\",zone=\"package-0\"\\}")))
	eb=$(($(uj_of "$S_METRICS" "powerd_domain_energy_joules_total\\{domain=\"$DOMB\",zone=\"package-0\"\\}") -
		$(uj_of "$m0" "powerd_domain_energy_joules_total\\{domain=\"$DOMB\",zone=\"package-0\"\\}")))
	eh=$(($(uj_of "$S_METRICS" 'powerd_host_energy_joules_total\{zone="package-0"\}') -
		$(uj_of "$m0" 'powerd_host_energy_joules_total\{zone="package-0"\}')))
	local hz res
	hz=$(getconf CLK_TCK)
	res=$(awk -v ea="$ea" -v eb="$eb" -v eh="$eh" -v ca="$((S_CPU_A - a0))" -v cb="$((S_CPU_B - b0))" \
		-v busy="$((S_BUSY - c0))" -v hz="$hz" -v idle="$IDLE_W" \
		-v dt="$(awk -v a="$t0" -v b="$S_T" 'BEGIN { print b - a }')" 'BEGIN {
		above = eh / 1e6 - idle * dt            # J above idle
		want = above * (ca / 1e9) / (busy / hz) # the busy domain: its share of busy CPU time
		printf "%.2f %.2f %.2f %.2f %.3f %.3f %.3f %.3f %.1f %.3f\n", ea / 1e6 / dt, eb / 1e6 / dt,
			eh / 1e6 / dt, above / dt, (ea / 1e6) / want, eb / ea, (ea / 1e6) / above,
			(ca / 1e9) / (busy / hz), dt, (eb / 1e6) / above
	}')
	# shellcheck disable=SC2086
	set -- $res
	log "measured (idle_power host, idle level ${IDLE_W} W): host $3 W, above idle $4 W; $DOMA $1 W; $DOMB $2 W over $9 s"
	log "measured: $DOMA gets $7 of the power above idle (its share of host busy CPU: $8); $DOMB/$DOMA = $6"
	check "idle_power host: idle $DOMB gets close to nothing ($2 W: ${10} of the $4 W above idle, < 0.05)" \
		awk -v r="${10}" 'BEGIN { exit !(r < 0.05) }'
	check "idle_power host: busy $DOMA gets the power above idle times its share of host busy CPU ($1 W, ratio $5, within 5 %)" \
		awk -v r="$5" 'BEGIN { exit !(r >= 0.95 && r <= 1.05) }'
	assert_exact_sums "$m0" "$S_METRICS" "idle_power host"
}

# Where a domain's I/O CPU lands: the I/O domain writes to its virtio-blk disk (served by its
# iothread and qemu's worker threads) for a while. The CPU time of each qemu thread (debug-threads
# names them: "CPU 0/TCG", "IO iothread1", "worker", the main loop) and that of the domain's
# cgroup, which is what powerd-host reads, are compared with the whole qemu process's.
qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }
cgroup2_mount() { findmnt -rn -t cgroup2 -o TARGET | grep -m1 '^/sys/fs/cgroup'; }
domain_cgroup_dir() { # name: the domain's v2 cgroup directory
	local pid cg
	pid=$(qemu_pid "$1") && [ -n "$pid" ] || return 1
	cg=$(sed -n 's|^0::\(.*\)$|\1|p' "/proc/$pid/cgroup" | sed -E 's|/emulator$||; s|/libvirt$||')
	echo "$(cgroup2_mount)$cg"
}
usage_us() { awk '$1 == "usage_usec" { print $2 }' "$1/cpu.stat" 2>/dev/null || echo 0; }
# "tid class ticks" per live thread of pid, then "process - ticks" and "cgroup - µs"
threads_snapshot() { # pid cgroup-dir
	local f
	for f in /proc/"$1"/task/*/stat; do
		awk '{ l = $0; c = l; sub(/^[^(]*\(/, "", c); sub(/\).*$/, "", c); sub(/^.*\) /, "", l)
			split(l, x, " "); cls = "other"
			if (c ~ /^CPU [0-9]+\//) cls = "vcpu"; else if (c ~ /^IO / || c == "worker") cls = "io"
			else if (c ~ /^qemu-system/) cls = "main"
			split(FILENAME, p, "/"); print p[5], cls, x[12] + x[13] }' "$f" 2>/dev/null
	done
	awk '{ print "process -", $14 + $15 }' "/proc/$1/stat"
	echo "cgroup - $(usage_us "$2")"
	local sub
	for sub in vcpu0 emulator iothread1; do
		[ -f "$2/$sub/cpu.stat" ] && echo "$sub - $(usage_us "$2/$sub")"
	done
}
step_io_window() {
	local dir pid line
	log "I/O window: $DOMC writes to its virtio-blk disk (iothread) for ${IO_WINDOW_S}s"
	dir=$(domain_cgroup_dir $DOMC) pid=$(qemu_pid $DOMC)
	set_duty $DOMC io
	wait_for 20 duty_seen $DOMC io || not_ok "$DOMC: its guest started writing within 20s"
	sleep 2
	threads_snapshot "$pid" "$dir" >"$W/io-threads.0"
	sleep "$IO_WINDOW_S"
	threads_snapshot "$pid" "$dir" >"$W/io-threads.1"
	set_duty $DOMC 0
	line=$(awk -v hz="$(getconf CLK_TCK)" '
	NR == FNR { if ($2 != "-") t0[$1] = $3; else v0[$1] = $3; next }
	$2 == "-" { v1[$1] = $3; next }
	{ d[$2] += $3 - ($1 in t0 ? t0[$1] : 0); live += $3 - ($1 in t0 ? t0[$1] : 0) }
	END {
		proc = (v1["process"] - v0["process"]) / hz; cg = (v1["cgroup"] - v0["cgroup"]) / 1e6
		printf "%.2f %.2f %.2f %.2f %.2f %.2f %.3f %.3f\n", proc, cg, d["vcpu"] / hz, d["io"] / hz,
			d["main"] / hz, proc - live / hz, cg / (proc > 0 ? proc : 1), d["io"] / hz / (proc > 0 ? proc : 1)
	}' "$W/io-threads.0" "$W/io-threads.1")
	# shellcheck disable=SC2086
	set -- $line
	log "measured I/O over ${IO_WINDOW_S}s: qemu process $1 s = vCPU $3 s + iothread and workers $4 s + main loop $5 s + threads gone since $6 s (and others); domain cgroup $2 s ($7 of the process)"
	check "$DOMC: the disk I/O costs CPU outside the vCPU, in the iothread and worker threads ($4 s, $8 of the process)" \
		awk -v t="$4" 'BEGIN { exit !(t >= 0.05) }'
	check "$DOMC: the domain's cgroup, which powerd-host reads, holds all of qemu's threads ($2 s = $7 of the process's $1 s, within 5 %)" \
		awk -v r="$7" 'BEGIN { exit !(r >= 0.95 && r <= 1.05) }'
	local subs
	subs=$(awk 'NR == FNR { if ($2 == "-") v0[$1] = $3; next }
		$2 == "-" && $1 != "process" && $1 != "cgroup" { printf "%s %.2f s, ", $1, ($3 - v0[$1]) / 1e6 }' \
		"$W/io-threads.0" "$W/io-threads.1")
	[ -n "$subs" ] && log "measured I/O: the domain cgroup's children (libvirt's, per thread kind): ${subs%, }"
}

# The cgroup v2 hierarchy alone at /sys/fs/cgroup, in this namespace only (before libvirtd
# starts: libvirt picks its cgroup backend from what is mounted there).
step_cgroup_view() {
	[ "$CGROUP_VIEW" = v2 ] || { log "cgroups: the host's own layout"; return 0; }
	if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
		log "cgroups: the host is cgroup v2 only already"
		return 0
	fi
	local was
	was=$(findmnt -rn -o FSTYPE /sys/fs/cgroup | head -1)
	# the v1 mounts go (in this namespace): libvirt takes every cgroup mount it finds in
	# /proc/mounts, hidden or not
	if umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup &&
		! findmnt -rn -t cgroup -o TARGET | grep -q .; then
		ok "cgroups: the v2 hierarchy alone at /sys/fs/cgroup in this namespace (was: $was with v1 controllers)"
	else
		not_ok "cgroups: mount cgroup2 at /sys/fs/cgroup in this namespace"
		return 1
	fi
}

main() {
	log "work dir $W, source $SOURCE"
	HOST_PORT=$(free_port)
	step_libvirt_sandbox || return 1
	step_cgroup_view || return 1
	step_start_libvirtd || return 1
	step_start_raplsim
	step_start_host || return 1
	step_build_guest || return 1
	start_domain $DOMA 100 || return 1
	start_domain $DOMB 25 || return 1
	start_domain $DOMC 0 io || return 1
	local d
	for d in $DOMA $DOMB $DOMC; do
		if ! wait_for 120 grep -aq '^=== LOAD duty=' "$W/$d.serial"; then
			not_ok "$d: its guest runs the load loop within 120s"
			tail -20 "$W/$d.serial"
			return 1
		fi
		ok "$d: its guest runs the load loop ($(grep -a -m1 '^=== LOAD' "$W/$d.serial" | tr -d '\r'))"
		check "$d: powerd-host reads its cgroup (powerd_domain_cpu_source cgroup2)" \
			wait_for 10 cpu_source_is "$d" cgroup2
		check "$d: ... the cpu.stat of the cgroup /proc/<qemu pid>/cgroup names ($(domain_cgroup_dir "$d")/cpu.stat)" \
			grep -aq "domain $d: CPU time from $(domain_cgroup_dir "$d")/cpu.stat (cgroup2)" "$W/powerd-host.log"
	done
	sleep 3 # both loops at their duty for a few ticks
	step_load_window
	step_idle_window
	step_io_window
}

main
e2e_finish
