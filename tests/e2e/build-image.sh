#!/usr/bin/env bash
# The root of a Debian 12 VM for tests/e2e/e2e-image.sh, built only from Debian's packages:
# debootstrap (minbase) with systemd, udev, Debian's own kernel (linux-image-amd64) and its
# initramfs, qemu-guest-agent, curl, prometheus-node-exporter and the shared libraries the
# powerd-guest package depends on, so that `apt-get install ./powerd-guest_*.deb` needs no network.
# Nothing of powerd is in it: the test installs the package into a per-run copy.
#
#   build-image.sh OUTDIR [MIRROR]
#
# OUTDIR gets root/ (the file tree that `mkfs.ext4 -d` makes a disk of), vmlinuz and initrd.img
# (for a direct kernel boot with root=/dev/vda: no bootloader) and kernel-version. It is made in
# OUTDIR.tmp and renamed at the end, so an interrupted build leaves no half image. The test keys
# OUTDIR on this file's hash: any change here builds a new image.
set -euo pipefail
out=${1:?usage: build-image.sh OUTDIR [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
tmp=$out.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
r=$tmp/root

pkgs=(
	systemd-sysv udev kmod linux-image-amd64 qemu-guest-agent curl prometheus-node-exporter
	# powerd-guest's dependencies (shlibs and control): the package installs offline
	libevent-2.1-7 libyaml-0-2 zlib1g procps adduser
)
include=$(
	IFS=,
	echo "${pkgs[*]}"
)
debootstrap --variant=minbase --include="$include" bookworm "$r" "$mirror"

# The kernel and initramfs Debian made (initramfs-tools, MODULES=most: virtio_blk and ext4 in it)
kver=$(basename "$(ls -d "$r"/lib/modules/*/ | head -1)")
cp "$r/boot/vmlinuz-$kver" "$tmp/vmlinuz"
cp "$r/boot/initrd.img-$kver" "$tmp/initrd.img"
echo "$kver" >"$tmp/kernel-version"
rm -f "$r/boot/vmlinuz-$kver" "$r/boot/initrd.img-$kver" "$r/vmlinuz" "$r/initrd.img" \
	"$r/vmlinuz.old" "$r/initrd.img.old"

# Smaller: modules for hardware a virtio VM does not have, documentation, apt's caches. The
# module index is rebuilt for what stays.
m=$r/lib/modules/$kver/kernel
rm -rf "$m/drivers/gpu" "$m/drivers/net/wireless" "$m/drivers/net/ethernet" "$m/drivers/media" \
	"$m/drivers/infiniband" "$m/drivers/staging" "$m/drivers/isdn" "$m/drivers/bluetooth" \
	"$m/drivers/iio" "$m/drivers/hid" "$m/drivers/usb" "$m/drivers/scsi" "$m/drivers/mtd" \
	"$m/drivers/net/can" "$m/sound" "$m/net/wireless" "$m/net/mac80211" "$m/net/bluetooth" \
	"$m/fs/ocfs2" "$m/fs/xfs" "$m/fs/btrfs" "$m/fs/nfs" "$m/fs/nfsd" "$m/fs/gfs2" "$m/fs/ceph" \
	"$m/fs/smb"
chroot "$r" depmod -a "$kver"
rm -rf "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/var/cache/apt/*.bin \
	"$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*_Packages
find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'en*' ! -name locale.alias \
	-exec rm -rf {} + 2>/dev/null || true

# A disk of its own: the root is /dev/vda, no swap, nothing else mounted.
echo powerd-e2e-vm >"$r/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpowerd-e2e-vm\n' >"$r/etc/hosts"
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' >"$r/etc/fstab"

du -sm "$r" | cut -f1 >"$tmp/size-mib"
rm -rf "$out"
mv "$tmp" "$out"
