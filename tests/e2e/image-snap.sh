#!/bin/sh
# Inside the image's VM (installed as /usr/local/sbin/powerd-e2e-snap by tests/e2e/e2e-image.sh):
# one "key value" line per fact the test follows, read in one guest-exec through the agent.
#   powerd-e2e-snap SYSFS_ROOT [BEYOND TIMEOUT_S]
# SYSFS_ROOT: the sysfs root the readers use (powerd-guest's sysfs_out, or the test's flat view of
# tree_out where powerd-guest has no sysfs_out). With BEYOND, it first waits (at most TIMEOUT_S,
# polling every 0.2 s) until the served counter is above BEYOND joules, and prints "waited S" (by
# the guest's clock, "timeout" if it did not).
root=${1:-/run/powerd/sysfs}

served() {
	curl -s --max-time 3 http://127.0.0.1:9732/metrics |
		awk '$1 == "powerd_energy_joules_total{zone=\"package-0\"}" { print $2 }'
}
now() { cut -d' ' -f1 /proc/uptime; }

if [ -n "${2:-}" ]; then
	t0=$(now)
	while :; do
		v=$(served)
		t=$(now)
		if [ -n "$v" ] && awk -v a="$v" -v b="$2" 'BEGIN { exit !(a > b) }'; then
			echo "waited $(awk -v a="$t0" -v b="$t" 'BEGIN { printf "%.2f", b - a }')"
			break
		fi
		if awk -v a="$t0" -v b="$t" -v m="$3" 'BEGIN { exit !(b - a > m) }'; then
			echo "waited timeout"
			break
		fi
		sleep 0.2
	done
fi

# the package zone's energy_uj in a powercap directory (the zone whose name is package-0)
package_uj() {
	for z in "$1"/*/; do
		[ "$(cat "$z/name" 2>/dev/null)" = package-0 ] && { cat "$z/energy_uj" 2>/dev/null; return; }
	done
}

echo "active $(systemctl is-active powerd-guest.service)"
echo "mainpid $(systemctl show -p MainPID --value powerd-guest.service)"
echo "nrestarts $(systemctl show -p NRestarts --value powerd-guest.service)"
m=$(curl -s --max-time 3 http://127.0.0.1:9732/metrics)
echo "served $(echo "$m" | awk '$1 == "powerd_energy_joules_total{zone=\"package-0\"}" { print $2 }')"
echo "source_up $(echo "$m" | awk '$1 == "powerd_source_up" { print $2 }')"
echo "tree_uj $(package_uj /run/powerd/powercap)"
echo "sysfs_uj $(package_uj "$root/class/powercap")"
echo "ne_j $(curl -s --max-time 3 http://127.0.0.1:9101/metrics |
	awk '/^node_rapl_package_joules_total/ { print $2; exit }')"
sed -n -e 's/^package_uj /reader_uj /p' -e 's/^wraps /reader_wraps /p' \
	-e 's/^samples /reader_samples /p' -e 's/^errors /reader_errors /p' /run/powerd-e2e-reader.state 2>/dev/null
echo "uptime $(cut -d' ' -f1 /proc/uptime)"
