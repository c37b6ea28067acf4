#!/bin/bash
# Guest benchmarks, one result line each (the format of the C benchmarks: key=value).
#   bench/guest.sh scrape BUILD_DIR   powerd-guest (attribution: none, then processes) and stock
#                                     node_exporter (rapl collector only) on the same fixture
#                                     tree, loaded in turn with wrk on loopback
#   bench/guest.sh idle BUILD_DIR     powerd-guest's CPU with nobody scraping at the default
#                                     interval, attribution none/units/processes, side by side
#   bench/guest.sh channel BUILD_DIR  powerd-guest (attribution: none) reading the energy channel
#                                     (a FIFO fed a record a second by bench_idle feed): CPU and
#                                     RSS with nothing laid out, tree_out only, tree_out and
#                                     sysfs_out (the default), side by side, 3 of each
# Each load runs twice: flat out (requests/s, CPU per scrape, latency under saturation), then
# paced by bench/paced.lua (each of the 100 connections waits a mean PACE_MS between requests).
# Environment: WRK_ARGS ("-t2 -c100 -d10s"), PACED_ARGS ("-t2 -c100 -d5s"), PACE_MS (100),
# IDLE_S (60), BENCH_TMPDIR.
set -euo pipefail

mode=$1
build=$(cd "$2" && pwd)
guest=$build/powerd-guest
probe=$build/bench_idle
node_exporter=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
wrk_args=${WRK_ARGS:-"-t2 -c100 -d10s"}
paced_args=${PACED_ARGS:-"-t2 -c100 -d5s"}
pace_ms=${PACE_MS:-100}
here=$(cd "$(dirname "$0")" && pwd)
idle_s=${IDLE_S:-60}

work=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/powerd-bench-guest.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# A sysfs-like tree under $work/sys/class/powercap (node_exporter's --path.sysfs=$work/sys),
# the shape of a powerd share: package-0 with core and dram, subzones also linked at the top.
root=$work/sys/class/powercap
zone() { # dir name energy
	mkdir -p "$root/$1"
	echo "$2" >"$root/$1/name"
	echo "$3" >"$root/$1/energy_uj"
	echo 262143328850 >"$root/$1/max_energy_range_uj"
}
zone intel-rapl:0 package-0 123456789
zone intel-rapl:0/intel-rapl:0:0 core 23456789
zone intel-rapl:0/intel-rapl:0:1 dram 3456789
ln -s intel-rapl:0/intel-rapl:0:0 "$root/intel-rapl:0:0"
ln -s intel-rapl:0/intel-rapl:0:1 "$root/intel-rapl:0:1"

# Sets $port to a free loopback port from $1 on, never one handed out before (servers started
# side by side have not bound theirs yet).
# A guest's cgroup v2 tree for attribution: units, 40 services (a Debian server VM has 20 to 40).
cg=$work/cgroup
mkdir -p "$cg"
echo "cpu io memory pids" >"$cg/cgroup.controllers"
for ((i = 0; i < 40; i++)); do
	mkdir -p "$cg/system.slice/svc$i.service"
	printf 'usage_usec %d\nuser_usec %d\nsystem_usec %d\n' $((i * 1000 + 5)) $((i * 600)) \
		$((i * 400 + 5)) >"$cg/system.slice/svc$i.service/cpu.stat"
done

used_ports=""
free_port() {
	local p
	for ((p = $1; p < $1 + 1000; p++)); do
		case " $used_ports " in *" $p "*) continue ;; esac
		if ! ss -Htln "sport = :$p" | grep -q .; then
			used_ports="$used_ports $p"
			port=$p
			return
		fi
	done
	echo "bench: no free port from $1" >&2
	exit 1
}

guest_config() { # file port attribution [interval]
	cat >"$1" <<EOF
source: $root
interval: ${4:-2s}
listen: "127.0.0.1:$2"
attribution: $3
cgroup_root: $cg
log_level: warning
EOF
}

wait_http() { # port
	local i
	for ((i = 0; i < 100; i++)); do
		if curl -sf -o /dev/null "http://127.0.0.1:$1/metrics"; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: nothing answers on port $1" >&2
	return 1
}

field() { # "key=value …" key
	tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

# wrk prints latencies as 812.00us, 1.23ms or 1.01s: µs.
to_us() {
	awk '{ v = $1 + 0; if ($1 ~ /us$/) print v; else if ($1 ~ /ms$/) print v * 1000;
	       else if ($1 ~ /s$/) print v * 1000000; else print v }' <<<"$1"
}

load() { # label pid port
	local label=$1 pid=$2 port=$3 before after out bytes
	wait_http "$port"
	bytes=$( (curl -s "http://127.0.0.1:$port/metrics" || true) | wc -c)
	# warm up (first requests allocate), then measure
	wrk -t1 -c4 -d1s "http://127.0.0.1:$port/metrics" >/dev/null
	before=$("$probe" cpu "$pid")
	# shellcheck disable=SC2086
	out=$(wrk $wrk_args --latency "http://127.0.0.1:$port/metrics")
	after=$("$probe" cpu "$pid")
	local reqs rps p50 p99 errors cpu_ns paced
	reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	p50=$(to_us "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
	p99=$(to_us "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
	errors=$(awk '/Non-2xx|Socket errors/ { printf "%s;", $0 }' <<<"$out" | tr ' ' '_')
	cpu_ns=$(($(field "$after" stat_ns) - $(field "$before" stat_ns)))
	# the same 100 connections, paced: latency when the server is not saturated; the server's
	# run-queue wait meanwhile says how long it was ready but had no CPU
	local pbefore pafter
	pbefore=$("$probe" cpu "$pid")
	# shellcheck disable=SC2086
	paced=$(PACE_MS=$pace_ms wrk $paced_args --latency -s "$here/paced.lua" \
		"http://127.0.0.1:$port/metrics")
	pafter=$("$probe" cpu "$pid")
	echo "bench=scrape n=$label requests=$reqs rps=$rps p50_us=$p50 p99_us=$p99" \
		"cpu_us_per_scrape=$(awk -v c="$cpu_ns" -v r="$reqs" 'BEGIN { printf "%.2f", c / 1e3 / r }')" \
		"rss_kib=$(field "$after" rss_kib) hwm_kib=$(field "$after" hwm_kib) bytes=$bytes" \
		"errors=${errors:-none}" \
		"paced_rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$paced")" \
		"paced_p50_us=$(to_us "$(awk '$1 == "50%" { print $2 }' <<<"$paced")")" \
		"paced_p99_us=$(to_us "$(awk '$1 == "99%" { print $2 }' <<<"$paced")")" \
		"paced_requests=$(awk '/requests in/ { print $1 }' <<<"$paced")" \
		"paced_wait_ms=$((($(field "$pafter" wait_ns) - $(field "$pbefore" wait_ns)) / 1000000))" \
		"paced_run_ms=$((($(field "$pafter" sched_ns) - $(field "$pbefore" sched_ns)) / 1000000))"
}

scrape() {
	local port pid
	for attribution in none processes; do
		free_port 19732
		guest_config "$work/guest-$attribution.yaml" "$port" "$attribution"
		"$guest" -c "$work/guest-$attribution.yaml" &
		pid=$!
		pids+=("$pid")
		load "powerd-guest-$attribution" "$pid" "$port"
		kill "$pid"
		wait "$pid" 2>/dev/null || true
	done

	free_port 19100
	# --web.max-requests=0: by default it answers 503 beyond 40 scrapes in flight, which would
	# count cheap refusals as scrapes at 100 connections
	"$node_exporter" --collector.disable-defaults --collector.rapl --path.sysfs="$work/sys" \
		--web.max-requests=0 --web.listen-address="127.0.0.1:$port" 2>"$work/node_exporter.log" &
	pid=$!
	pids+=("$pid")
	if ! wait_http "$port" || ! curl -s "http://127.0.0.1:$port/metrics" | grep -q '^node_rapl_'; then
		echo "bench: node_exporter serves no rapl metric" >&2
		cat "$work/node_exporter.log" >&2
	fi
	load node_exporter "$pid" "$port"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

# Every configuration 3 times at once: idle processes barely compete, and it takes one IDLE_S.
idle() {
	local port outs=()
	for attribution in none units processes; do
		for rep in 1 2 3; do
			free_port 19832
			guest_config "$work/idle-$attribution-$rep.yaml" "$port" "$attribution"
			"$probe" run 5 "$idle_s" -- "$guest" -c "$work/idle-$attribution-$rep.yaml" \
				>"$work/idle-$attribution-$rep.out" &
			outs+=("$attribution:$rep")
		done
	done
	wait
	for o in "${outs[@]}"; do
		echo "bench=idle n=${o%%:*} rep=${o##*:} procs=$(ls -d /proc/[0-9]* | wc -l)" \
			"$(cat "$work/idle-${o%%:*}-${o##*:}.out")"
	done
}

# The energy channel: what laying out tree_out and sysfs_out costs at the default interval.
channel() {
	local outs=() variant rep d
	for variant in none tree_out both; do
		for rep in 1 2 3; do
			d=$work/ch-$variant-$rep
			mkdir -p "$d"
			mkfifo "$d/port"
			"$probe" feed "$d/port" 1000 &
			pids+=($!)
			free_port 19932
			{
				echo "source: $d/port"
				echo "listen: \"127.0.0.1:$port\""
				echo "attribution: none"
				echo "log_level: warning"
				case $variant in
				none) printf 'tree_out: ""\nsysfs_out: ""\n' ;;
				tree_out) printf 'tree_out: %s\nsysfs_out: ""\n' "$d/powercap" ;;
				both) printf 'tree_out: %s\nsysfs_out: %s\n' "$d/powercap" "$d/sysfs" ;;
				esac
			} >"$d/guest.yaml"
			"$probe" run 5 "$idle_s" -- "$guest" -c "$d/guest.yaml" >"$d/out" &
			outs+=("$variant:$rep")
		done
	done
	for o in "${outs[@]}"; do
		wait_run "$work/ch-${o%%:*}-${o##*:}/out"
	done
	for o in "${outs[@]}"; do
		echo "bench=channel n=${o%%:*} rep=${o##*:} $(cat "$work/ch-${o%%:*}-${o##*:}/out")"
	done
}

wait_run() { # the output file of a bench_idle run, complete once it has its line
	while ! grep -q cpu_s_per_hour "$1" 2>/dev/null; do
		sleep 1
	done
}

case $mode in
scrape) scrape ;;
idle) idle ;;
channel) channel ;;
*)
	echo "usage: bench/guest.sh scrape|idle|channel BUILD_DIR" >&2
	exit 2
	;;
esac
