#!/bin/bash
# The daemons' own memory as they run (not a harness): powerd-host connected to libvirt's test
# driver with N running domains (a test:/// file), mounting and writing their trees; powerd-guest
# reading one of those trees with attribution: processes. After WARM_S seconds of ticking, one
# result line per daemon (key=value, like the C benchmarks), from /proc/PID/status and
# /proc/PID/smaps_rollup, and what the resident pages are made of (/proc/PID/smaps, grouped):
#   the daemon's own binary, shared libraries, [heap], other anonymous mappings, [stack], the rest.
#   bench/memory.sh BUILD_DIR [N...]     (default N: 1 100; needs root: tmpfs mounts)
# Sizes in KiB. Rss counts every resident page; Pss shares each page among the processes
# mapping it (a library used by 10 processes counts 1/10); Private_Dirty is what only this
# process holds and has written (heap, stacks, libraries' relocated data): what it really costs,
# since clean pages of files can be dropped and read again; Anonymous is memory without a file.
set -euo pipefail

build=$(cd "${1:?usage: bench/memory.sh BUILD_DIR [N...]}" && pwd)
shift
counts=${*:-"1 100"}
warm_s=${WARM_S:-4}
work=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/powerd-bench-memory.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	grep -o " $work/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	local p
	for ((p = $1; p < $1 + 500; p++)); do
		ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
	echo "bench: no free port from $1" >&2
	exit 1
}

# One line: the sums of status and smaps_rollup, and the groups of smaps.
measure() { # name pid exe extra
	local name=$1 pid=$2 exe=$3 extra=$4
	local status rollup groups
	status=$(awk '/^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem):/ { printf "%s_kib=%s ", tolower($1), $2 }' \
		"/proc/$pid/status" | tr -d ':')
	rollup=$(awk '/^(Rss|Pss|Pss_Anon|Pss_File|Private_Clean|Private_Dirty|Anonymous):/ {
			k = tolower($1); sub(":", "", k); printf "%s_kib=%s ", k, $2 }' "/proc/$pid/smaps_rollup")
	# smaps: a header line per mapping (address perms offset dev inode [path]), then fields.
	groups=$(awk -v exe="$exe" '
		/^[0-9a-f]+-[0-9a-f]+ / {
			path = (NF >= 6) ? $6 : ""
			if (path == exe) g = "bin"
			else if (path ~ /\.so(\.|$)/) g = "lib"
			else if (path == "[heap]") g = "heap"
			else if (path == "[stack]") g = "stack"
			else if (path == "") g = "anon"
			else g = "other"
			if (path ~ /\.so(\.|$)/ && !(path in seen)) { seen[path] = 1; nlib++ }
			next
		}
		$1 == "Rss:" { rss[g] += $2 }
		$1 == "Pss:" { pss[g] += $2 }
		$1 == "Private_Clean:" || $1 == "Private_Dirty:" { priv[g] += $2 }
		END {
			n = split("bin lib heap anon stack other", gs, " ")
			for (i = 1; i <= n; i++)
				printf "%s_rss_kib=%d %s_pss_kib=%d %s_private_kib=%d ", gs[i], rss[gs[i]],
					gs[i], pss[gs[i]], gs[i], priv[gs[i]]
			printf "libs=%d", nlib
		}' "/proc/$pid/smaps")
	echo "bench=memory n=$name $extra $status$rollup$groups"
}

# A test:/// driver file with n running domains (the test driver starts them as it loads).
domains_xml() { # file n
	{
		echo "<node>"
		for ((i = 0; i < $2; i++)); do
			echo "<domain type='test'><name>vm$i</name><memory>65536</memory><vcpu>1</vcpu>"
			echo "<os><type>hvm</type></os></domain>"
		done
		echo "</node>"
	} >"$1"
}

for n in $counts; do
	d=$work/n$n
	mkdir -p "$d/share"
	domains_xml "$d/domains.xml" "$n"
	hport=$(free_port 29731)
	cat >"$d/host.yaml" <<EOF
libvirt_uri: test://$d/domains.xml
share_dir: $d/share
metrics_listen: 127.0.0.1:$hport
estimate: { idle_watts: 40, max_watts: 120 }
log_level: warning
EOF
	"$build/powerd-host" -c "$d/host.yaml" 2>"$d/host.log" &
	hpid=$!
	pids+=("$hpid")
	for _ in $(seq 200); do
		[[ $(find "$d/share" -mindepth 3 -maxdepth 3 -name energy_uj 2>/dev/null | wc -l) -ge $n ]] && break
		kill -0 "$hpid" 2>/dev/null || break
		sleep 0.1
	done
	if ! kill -0 "$hpid" 2>/dev/null; then
		echo "bench: powerd-host exited:" >&2
		cat "$d/host.log" >&2
		exit 1
	fi
	gport=$(free_port $((hport + 1)))
	cat >"$d/guest.yaml" <<EOF
source: $d/share/vm0
interval: 1s
listen: 127.0.0.1:$gport
attribution: processes
log_level: warning
EOF
	"$build/powerd-guest" -c "$d/guest.yaml" 2>"$d/guest.log" &
	gpid=$!
	pids+=("$gpid")
	sleep "$warm_s"
	# Both served at least once, so the HTTP paths have been taken.
	curl -sf -o /dev/null "http://127.0.0.1:$hport/metrics" || true
	curl -sf -o /dev/null "http://127.0.0.1:$gport/metrics" || true
	sleep 1
	trees=$(find "$d/share" -mindepth 3 -maxdepth 3 -name energy_uj | wc -l)
	measure "host-$n" "$hpid" "$(readlink -f "$build/powerd-host")" "domains=$n trees=$trees"
	# powerd-host serves HTTP from a confined process of its own (hostd/privsep.c): its child.
	for c in $(pgrep -P "$hpid" || true); do
		measure "host-server-$n" "$c" "$(readlink -f "$build/powerd-host")" "domains=$n"
	done
	measure "guest-$n" "$gpid" "$(readlink -f "$build/powerd-guest")" "procs=$(find /proc -maxdepth 1 -name "[0-9]*" | wc -l)"
	kill "$gpid" "$hpid" 2>/dev/null || true
	wait "$gpid" "$hpid" 2>/dev/null || true
	pids=()
	grep -o " $d/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
done
