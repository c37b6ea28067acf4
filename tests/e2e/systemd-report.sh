#!/bin/bash
# Run in the systemd guest once multi-user.target is reached (powerd-e2e-report.service): print
# to the serial console how powerd-guest's units came up, and one scrape of its metrics.
exec >/dev/ttyS0 2>&1
echo "=== SYSTEMD-REPORT up=$(cut -d' ' -f1 /proc/uptime) ==="
for _ in $(seq 30); do
	[ "$(systemctl is-active powerd-guest.service)" = active ] && break
	sleep 1
done
echo "IS-ENABLED $(systemctl is-enabled powerd-guest.service)"
echo "IS-ACTIVE $(systemctl is-active powerd-guest.service)"
echo "MOUNT $(findmnt -n -o FSTYPE,OPTIONS /var/scaphandre)"
systemctl show powerd-guest.service -p WatchdogUSec -p Type -p ActiveState -p SubState -p NRestarts \
	-p StatusText | sed 's/^/SHOW /'
echo "=== SYSTEMD-SCRAPE ==="
if exec 3<>/dev/tcp/127.0.0.1/9732; then
	printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	timeout 5 cat <&3 | tr -d '\r' | grep -v '^#'
	exec 3<&-
fi
echo "=== END ==="
systemctl --no-pager status powerd-guest.service | head -12
echo "=== SYSTEMD-REPORT-DONE ==="
systemctl poweroff
