#!/usr/bin/env bash
# Build the systemd-sysext image of powerd-guest for Flatcar Container Linux (a squashfs, as in
# Flatcar's documentation), from the statically linked powerd-guest-static (Flatcar has glibc and
# libsystemd, not libevent, libyaml or zlib) and the units of units/.
#
#   usr/bin/powerd-guest
#   usr/lib/systemd/system/powerd-guest.service      ExecStart= rewritten to /usr/bin
#   usr/lib/systemd/system/var-scaphandre.mount
#   usr/lib/extension-release.d/extension-release.powerd-guest
#
# systemd-sysext only merges an image whose extension-release file is named after the image:
# install it as /etc/extensions/powerd-guest.raw (a symlink is fine; conf/butane/guest.bu makes
# one). Flatcar reads /usr/lib/extension-release.d with ID=flatcar; SYSEXT_LEVEL=1.0 is what its
# os-release carries.
#
# usage: build-sysext.sh --binary FILE --units DIR --version V --output FILE.raw
set -euo pipefail

name=powerd-guest
binary='' units='' version='' output=''
while [ $# -gt 0 ]; do
	case "$1" in
	--binary) binary=$2; shift 2 ;;
	--units) units=$2; shift 2 ;;
	--version) version=$2; shift 2 ;;
	--output) output=$2; shift 2 ;;
	*) echo "build-sysext.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
if [ -z "$binary" ] || [ -z "$units" ] || [ -z "$version" ] || [ -z "$output" ]; then
	echo "usage: build-sysext.sh --binary FILE --units DIR --version V --output FILE.raw" >&2
	exit 2
fi
if ! command -v mksquashfs >/dev/null; then
	echo "build-sysext.sh: mksquashfs not found (apt-get install squashfs-tools)" >&2
	exit 1
fi
for lib in libevent libyaml libz.so; do
	if ldd "$binary" | grep -q "$lib"; then
		echo "build-sysext.sh: $binary links $lib dynamically; Flatcar lacks it" >&2
		exit 1
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
install -d -m 0755 "$root/usr/bin" "$root/usr/lib/systemd/system" \
	"$root/usr/lib/extension-release.d"
install -m 0755 "$binary" "$root/usr/bin/$name"
strip --strip-unneeded "$root/usr/bin/$name"
sed 's|^ExecStart=/usr/sbin/powerd-guest|ExecStart=/usr/bin/powerd-guest|' \
	"$units/powerd-guest.service" >"$root/usr/lib/systemd/system/powerd-guest.service"
grep -q '^ExecStart=/usr/bin/powerd-guest' "$root/usr/lib/systemd/system/powerd-guest.service" || {
	echo "build-sysext.sh: no ExecStart=/usr/sbin/powerd-guest to rewrite in $units" >&2
	exit 1
}
install -m 0644 "$units/var-scaphandre.mount" "$root/usr/lib/systemd/system/"
# The unit's user and the port's group; Flatcar's Ignition config also puts it in /etc/sysusers.d,
# which systemd-sysusers reads before the image is merged at the first boot.
install -d -m 0755 "$root/usr/lib/sysusers.d"
install -m 0644 "$units/powerd-guest.sysusers" "$root/usr/lib/sysusers.d/powerd-guest.conf"
cat >"$root/usr/lib/extension-release.d/extension-release.$name" <<RELEASE
ID=flatcar
SYSEXT_LEVEL=1.0
ARCHITECTURE=x86-64
VERSION_ID=$version
RELEASE
chmod 0644 "$root/usr/lib/extension-release.d/extension-release.$name"

# Reproducible: owners root, times from SOURCE_DATE_EPOCH (0 if unset).
epoch=${SOURCE_DATE_EPOCH:-0}
rm -f "$output.tmp"
mksquashfs "$root" "$output.tmp" -all-root -noappend -no-progress -quiet \
	-mkfs-time "$epoch" -all-time "$epoch" >/dev/null
mv "$output.tmp" "$output"
echo "build-sysext.sh: $output"
