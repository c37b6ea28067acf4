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
. "$(dirname "$0")/lib.sh"
e2e_init "$@"

DOM9P=powerd-e2e-9p
DOMVFS=powerd-e2e-vfs
DOMSD=powerd-e2e-systemd
E2E_LOGS="$DOM9P.serial $DOMVFS.serial $DOMSD.serial"
e2e_timings() {
	echo "$DOM9P first scrape ${BOOT_powerd_e2e_9p:-?}s after start; $DOMVFS ${BOOT_powerd_e2e_vfs:-?}s;" \
		"systemd guest report ${SYSTEMD_REPORT_S:-?}s; "
}

# ---------------------------------------------------------------------------------------------
# helpers of this test

qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }
# The cgroup v2 directory of a domain as libvirt made it, from its qemu's /proc/<pid>/cgroup,
# with the emulator leaf walked up (what powerd-host must read).
domain_v2_cgroup() {
	local pid
	pid=$(qemu_pid "$1") && [ -n "$pid" ] || return 1
	sed -n 's|^0::\(.*\)$|\1|p' "/proc/$pid/cgroup" | sed -E 's|/emulator$||; s|/libvirt$||'
}
# The mount point of the cgroup2 hierarchy powerd-host sees (hybrid: /sys/fs/cgroup/unified).
cgroup2_mount() { findmnt -rn -t cgroup2 -o TARGET | grep -m1 '^/sys/fs/cgroup'; }
cpu_source_of() { host_metrics | awk -v d="$1" 'index($0, "powerd_domain_cpu_source{domain=\"" d "\"") == 1 { sub(/.*source="/, ""); sub(/".*/, ""); print; exit }'; }

# Where powerd-host reads a domain's CPU time, checked from outside: its metric says cgroup2,
# its log names the cpu.stat of the very cgroup /proc/<qemu pid>/cgroup shows, and that file's
# usage agrees with libvirt's own figure for the domain.
assert_cpu_source() { # name [what]
	local name=$1 what=${2:-} cg mnt src want pid line
	pid=$(qemu_pid "$name")
	cg=$(domain_v2_cgroup "$name")
	mnt=$(cgroup2_mount)
	want="$mnt$cg/cpu.stat"
	wait_for 10 sh -c "curl -s --max-time 2 http://127.0.0.1:$HOST_PORT/metrics | grep -q 'powerd_domain_cpu_source{domain=\"$name\"'"
	src=$(cpu_source_of "$name")
	check "$name: powerd_domain_cpu_source says cgroup2$what (source=$src; qemu $pid in $(grep '^0::' "/proc/$pid/cgroup" 2>/dev/null))" \
		test "$src" = cgroup2
	line=$(grep -a "domain $name: CPU time from " "$W/powerd-host.log" | tail -1)
	check "$name: powerd-host reads $want$what (${line##*CPU time from })" \
		test "${line##*CPU time from }" = "$want (cgroup2)"
	# libvirt's figure, read between two readings of the file (a booting guest burns CPU fast)
	local u1 u2 virt
	u1=$(awk '$1 == "usage_usec" { print $2 }' "$want" 2>/dev/null)
	virt=$(virsh_ domstats --cpu-total "$name" | awk -F= '/cpu.time=/ { print $2 }')
	u2=$(awk '$1 == "usage_usec" { print $2 }' "$want" 2>/dev/null)
	check "$name: libvirt's cpu.time ($virt ns) is that cgroup's usage, read just before ($u1 us) and after ($u2 us), within 2%" \
		awk -v a="${u1:-0}" -v b="${u2:-0}" -v v="${virt:-0}" 'BEGIN { exit !(v > 0 && v >= a * 1000 * 0.98 && v <= b * 1000 * 1.02) }'
}

# source_up_seen VALUE FROM NAME: a scrape after the FROM first ones had powerd_source_up VALUE
source_up_seen() {
	scrapes "$W/$3.serial" | tail -n +$(($2 + 1)) | awk -v v="$1" '$5 == v { f = 1 } END { exit !f }'
}
n_ends_at_least() { [ "$(grep -ac '^=== END' "$W/$1.serial")" -ge "$2" ]; }
tree_uj() { cat "$SHARE/$1/intel-rapl:0/energy_uj" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# steps (the shared ones are in lib.sh)

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
	assert_cpu_source "$name" " after the restart"
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
	# the unit's system user, as the package makes it (systemd-sysusers also runs at boot)
	install -D -m 644 "$SOURCE/units/powerd-guest.sysusers" "$r/usr/lib/sysusers.d/powerd-guest.conf"
	systemd-sysusers --root="$r" powerd-guest.conf >"$W/sysusers.log" 2>&1 || return 1
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
	assert_cpu_source "$name"
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

main() {
	log "work dir $W, source $SOURCE"
	HOST_PORT=$(free_port)
	step_libvirt_sandbox || return 1
	step_start_libvirtd || return 1
	step_start_raplsim
	step_start_host || return 1
	step_build_guest || return 1

	if define_and_start $DOM9P 9p && wait_guest $DOM9P; then
		assert_cpu_source $DOM9P
		assert_burn_vs_idle $DOM9P
		assert_guest_matches_tree $DOM9P
		assert_host_sums
	fi
	if define_and_start $DOMVFS virtiofs && wait_guest $DOMVFS; then
		assert_cpu_source $DOMVFS
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
e2e_finish
