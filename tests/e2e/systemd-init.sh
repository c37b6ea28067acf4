#!/bin/busybox sh
# shellcheck shell=dash
# /init of the end-to-end test's systemd guest: load the virtio, 9p and virtio_console (the energy
# channel's port) modules, mount the root filesystem the host exports over 9p (tag "rootfs"), and
# hand over to systemd.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
exec >/dev/console 2>&1
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache \
	9pnet 9pnet_virtio 9p virtio_console; do
	[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
echo "=== INITRAMFS up=$(cut -d' ' -f1 /proc/uptime) ==="
if ! mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=262144 rootfs /newroot; then
	echo "=== ROOT-MOUNT-FAILED ==="
	poweroff -f
fi
mkdir -p /newroot/dev && mount --move /dev /newroot/dev
umount /proc
exec switch_root /newroot /sbin/init
