#!/bin/busybox sh
# shellcheck shell=dash
# /init of the end-to-end test's busybox guest. Mounts the powerd share, tries to write into it,
# runs powerd-guest and scrapes it in a loop, printing every exposition to the serial console
# between markers that tests/e2e/e2e.sh parses:
#   === SHARE fs=<fs> ok|FAILED ===      the share mounted (or not) at /var/scaphandre
#   WRITE-TEST: EROFS|denied|ok <msg>    result of creating a file in the share
#   === SCRAPE <n> up=<uptime s> phase=<phase> ===  ... exposition ...  SHARE-UJ <energy_uj>
#   === END ===
#   === PHASE <name> up=<uptime s> ===   burn (a CPU busy loop) / idle / steady
# Parameters come from the kernel command line: powerd_e2e.fs=9p|virtiofs,
# powerd_e2e.burn=SECONDS, powerd_e2e.idle=SECONDS. powerd_e2e.mode=load (the attribution
# experiment, tests/e2e/e2e-attribution.sh) does none of that: it mounts the 9p tag "control" and
# keeps a vCPU busy for the percentage of each second that control/duty says (re-read every
# second; "=== LOAD duty=<n> up=<s> ===" on each change; duty "io" writes 4 MiB to /dev/vda with
# an fsync instead, again and again).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mkdir -p /proc /sys /dev /tmp /run /var/scaphandre
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
exec >/dev/console 2>&1

fs=9p burn=6 idle=6 mode=scrape
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	powerd_e2e.mode=*) mode=${arg#*=} ;;
	powerd_e2e.fs=*) fs=${arg#*=} ;;
	powerd_e2e.burn=*) burn=${arg#*=} ;;
	powerd_e2e.idle=*) idle=${arg#*=} ;;
	esac
done

uptime_s() { cut -d' ' -f1 /proc/uptime; }

for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache \
	9pnet 9pnet_virtio 9p fuse virtiofs virtio_console virtio_blk; do
	[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
ip link set lo up

# centiseconds of uptime, without a fork ("0.07" is 7, not octal)
uptime_cs() {
	read -r up _ </proc/uptime
	f=${up#*.}
	echo $((${up%.*} * 100 + ${f#0}))
}
load_loop() {
	mkdir -p /ctl
	mount -t 9p -o trans=virtio,version=9p2000.L,ro control /ctl || echo "=== CONTROL-MOUNT-FAILED ==="
	last=
	while :; do
		duty=$(cat /ctl/duty 2>/dev/null)
		if [ "$duty" = io ]; then
			[ "$last" != io ] && echo "=== LOAD duty=io up=$(uptime_s) ===" && last=io
			dd if=/dev/zero of=/dev/vda bs=64k count=64 conv=fsync 2>/dev/null || sleep 1
			continue
		fi
		case "$duty" in '' | *[!0-9]*) duty=0 ;; esac
		[ "$duty" -gt 100 ] && duty=100
		[ "$duty" != "$last" ] && echo "=== LOAD duty=$duty up=$(uptime_s) ===" && last=$duty
		end=$(($(uptime_cs) + duty))
		while [ "$(uptime_cs)" -lt $end ]; do :; done
		rest=$((100 - duty))
		if [ $rest -ge 100 ]; then sleep 1; elif [ $rest -gt 0 ]; then sleep "0.$(printf %02d $rest)"; fi
	done
}
[ "$mode" = load ] && load_loop

echo "=== BOOTED up=$(uptime_s) ==="
ok=FAILED
for _ in 1 2 3 4 5 6 7 8 9 10; do
	if [ "$fs" = virtiofs ]; then
		mount -t virtiofs scaphandre /var/scaphandre && ok=ok
	else
		mount -t 9p -o trans=virtio,version=9p2000.L,ro scaphandre /var/scaphandre && ok=ok
	fi
	[ $ok = ok ] && break
	sleep 1
done
echo "=== SHARE fs=$fs $ok up=$(uptime_s) ==="
grep scaphandre /proc/mounts
ls -la /var/scaphandre /var/scaphandre/intel-rapl:0

# The share must be read-only for the guest: 9p <readonly/> gives EROFS, a read-only bind under
# virtiofs gives EROFS too; "ok" means the guest wrote into the host's tree.
err=$(touch /var/scaphandre/e2e-write-probe 2>&1)
case "$?:$err" in
0:*) echo "WRITE-TEST: ok (created a file in the share)" ;;
*[Rr]ead-only*) echo "WRITE-TEST: EROFS $err" ;;
*) echo "WRITE-TEST: denied $err" ;;
esac

mkdir -p /etc/powerd
cat >/etc/powerd/guest.yaml <<EOF
source: /var/scaphandre
interval: 1s
listen: 127.0.0.1:9732
attribution: none
log_level: info
EOF
echo "=== GUEST-START up=$(uptime_s) ==="
/usr/sbin/powerd-guest -c /etc/powerd/guest.yaml &
guest_pid=$!

n=0
phase=start
scrape() {
	n=$((n + 1))
	# (not wget -T: it crashes in Debian's busybox-static 1.35)
	if timeout 5 wget -q -O /tmp/scrape http://127.0.0.1:9732/metrics 2>/tmp/wget.err; then
		echo "=== SCRAPE $n up=$(uptime_s) phase=$phase ==="
		grep -v '^#' /tmp/scrape
		echo "SHARE-UJ $(cat /var/scaphandre/intel-rapl:0/energy_uj 2>&1)"
		echo "=== END ==="
	else
		echo "=== SCRAPE-FAILED $n up=$(uptime_s) phase=$phase $(cat /tmp/wget.err) ==="
		kill -0 $guest_pid 2>/dev/null || echo "=== POWERD-GUEST-EXITED ==="
	fi
}

# Wait (bounded) for the first successful scrape.
i=0
until timeout 5 wget -q -O /dev/null http://127.0.0.1:9732/metrics 2>/dev/null; do
	i=$((i + 1))
	if [ $i -ge 60 ] || ! kill -0 $guest_pid 2>/dev/null; then
		echo "=== GUEST-NOT-READY up=$(uptime_s) ==="
		break
	fi
	sleep 0.5
done
sleep 1.2 # two samples: a rate
phase=ready
scrape

phase_for() { # name seconds
	phase=$1
	echo "=== PHASE $1 up=$(uptime_s) ==="
	end=$(($(cut -d. -f1 /proc/uptime) + $2))
	while [ "$(cut -d. -f1 /proc/uptime)" -lt $end ]; do
		scrape
		sleep 1
	done
	scrape
}

phase_for idle0 3
(while :; do :; done) &
burner=$!
phase_for burn "$burn"
kill $burner
phase_for idle "$idle"
echo "=== PHASE steady up=$(uptime_s) ==="
phase=steady
while :; do
	scrape
	sleep 1
done
