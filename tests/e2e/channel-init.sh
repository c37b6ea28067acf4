#!/bin/busybox sh
# shellcheck shell=dash
# /init of the energy channel's busybox guest (tests/e2e/e2e-channel.sh). No share: the energy comes
# through the virtio-serial port org.powerd.energy.0, which powerd-host hot-plugs after the domain
# started, so the port is looked for until it appears. Lines on the serial console:
#   === PORT <vportNpM> up=<s> ===                  the port appeared
#   === MODE reader|guest ===                       who reads the port (below)
#   REC <uptime s> <record line>                    (reader) every record as it arrived
#   TREE <uptime s> <energy_uj> <node_exporter J>   (guest) tree_out's package energy, and what
#                                                   node_exporter's rapl collector reads from it
#   === PHASE <name> up=<s> ===                     idle0 / burn (a CPU busy loop) / steady
# powerd_e2e.burn=SECONDS on the kernel command line sets the burn phase's length (6), "forever"
# keeps it burning (tests/e2e/e2e-proxmox.sh's attribution); powerd_e2e.port_wait=SECONDS how
# long the port is looked for (120) before the rest runs without it.
# Mode "guest": powerd-guest reads the port itself (source: auto) and lays out tree_out, when
# its configuration knows tree_out; mode "reader": a shell loop reads the port (the host side's
# test while powerd-guest has no channel reader).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/sbin:/usr/bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
exec >/dev/console 2>&1

for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console; do
	[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
ip link set lo up
uptime_s() { cut -d' ' -f1 /proc/uptime; }
echo "=== BOOTED up=$(uptime_s) ==="

find_port() {
	for n in /sys/class/virtio-ports/*/name; do
		[ -f "$n" ] && [ "$(cat "$n")" = org.powerd.energy.0 ] && basename "$(dirname "$n")" && return 0
	done
	return 1
}
port=
i=0
wait_ds=1200 # powerd_e2e.port_wait=SECONDS (120): how long to look for the port
for arg in $(cat /proc/cmdline); do
	case "$arg" in powerd_e2e.port_wait=*) wait_ds=$((${arg#*=} * 5)) ;; esac
done
while [ $i -lt $wait_ds ]; do
	port=$(find_port) && break
	i=$((i + 1))
	sleep 0.2
done
echo "=== PORT ${port:-NONE} up=$(uptime_s) ==="

mkdir -p /etc/powerd
cat >/etc/powerd/guest.yaml <<EOF
source: auto
tree_out: /run/powerd/sys/class/powercap
interval: 1s
listen: 127.0.0.1:9732
attribution: none
log_level: info
EOF
mode=reader
[ -x /usr/sbin/powerd-guest ] && /usr/sbin/powerd-guest --check-config -c /etc/powerd/guest.yaml \
	>/dev/null 2>&1 && mode=guest
echo "=== MODE $mode ==="

if [ $mode = guest ]; then
	/usr/sbin/powerd-guest -c /etc/powerd/guest.yaml &
	if [ -x /usr/bin/node_exporter ]; then
		/usr/bin/node_exporter --path.sysfs=/run/powerd/sys --collector.disable-defaults \
			--collector.rapl --web.listen-address=127.0.0.1:9100 >/tmp/ne.log 2>&1 &
	fi
	(while :; do
		e=$(cat /run/powerd/sys/class/powercap/intel-rapl:0/energy_uj 2>/dev/null)
		ne=$(timeout 5 wget -q -O - http://127.0.0.1:9100/metrics 2>/dev/null |
			awk '/^node_rapl_package_joules_total/ { print $NF; exit }')
		echo "TREE $(uptime_s) ${e:-none} ${ne:-none}"
		# (node_exporter's sample only where the initramfs has it: e2e-proxmox.sh's has not)
		[ -n "$e" ] && { [ -n "$ne" ] || [ ! -x /usr/bin/node_exporter ]; } && : >/tmp/tree-ready
		sleep 1
	done) &
elif [ -n "$port" ]; then
	# qemu's end closes on save or migration: the port then reads EOF until it is back
	(while :; do
		while read -r line; do
			echo "REC $(uptime_s) $line"
		done <"/dev/$port"
		sleep 0.2
	done) &
fi

phase_for() { # name seconds
	echo "=== PHASE $1 up=$(uptime_s) ==="
	sleep "$2"
}
burn=6
for arg in $(cat /proc/cmdline); do
	case "$arg" in powerd_e2e.burn=*) burn=${arg#*=} ;; esac
done
# The idle phase measures the guest at rest: under TCG, node_exporter's and powerd-guest's start
# burn seconds of CPU, so it begins once both have served a first sample (60 s at most).
i=0
while [ $mode = guest ] && [ ! -e /tmp/tree-ready ] && [ $i -lt 300 ]; do
	i=$((i + 1))
	sleep 0.2
done
phase_for idle0 5
(while :; do :; done) &
burner=$!
if [ "$burn" = forever ]; then
	echo "=== PHASE burn up=$(uptime_s) ==="
	while :; do sleep 10; done
fi
phase_for burn "$burn"
kill $burner
echo "=== PHASE steady up=$(uptime_s) ==="
while :; do sleep 10; done
