#!/usr/bin/env bash
# The Flatcar systemd-sysext image (cmake --build BUILD --target sysext): exactly the expected
# files with the expected modes, a powerd-guest that links neither libevent, libyaml nor zlib
# dynamically (Flatcar lacks them) and runs, a unit whose ExecStart points into the image, the
# units otherwise identical to units/, and an extension-release file named after the image that
# systemd-sysext will accept on Flatcar.
set -euo pipefail
src=${1:?usage: test-sysext.sh SOURCE_DIR BUILD_DIR}
build=${2:?}
command -v mksquashfs >/dev/null && command -v unsquashfs >/dev/null ||
	{ echo "SKIP: squashfs-tools not installed"; exit 77; }
[ -f "$src/units/powerd-guest.service" ] || { echo "SKIP: units/powerd-guest.service not written yet"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
	echo "FAIL: $*"; exit 1
}

cmake --build "$build" --target sysext >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "build"; }
img=$build/powerd-guest.raw
file -b "$img" 2>/dev/null | grep -qi squashfs || [ "$(head -c4 "$img")" = hsqs ] || fail "not a squashfs"

unsquashfs -lls "$img" | awk '$1 !~ /^d/ {print $1, $2, $6}' | sed 's| squashfs-root| |' |
	sort -k3 >"$tmp/list"
cat >"$tmp/want" <<'WANT'
-rwxr-xr-x root/root /usr/bin/powerd-guest
-rw-r--r-- root/root /usr/lib/extension-release.d/extension-release.powerd-guest
-rw-r--r-- root/root /usr/lib/systemd/system/powerd-guest.service
-rw-r--r-- root/root /usr/lib/systemd/system/var-scaphandre.mount
-rw-r--r-- root/root /usr/lib/sysusers.d/powerd-guest.conf
WANT
diff -u "$tmp/want" "$tmp/list" || fail "image layout"

unsquashfs -q -n -d "$tmp/x" "$img" >/dev/null
bin=$tmp/x/usr/bin/powerd-guest
ldd "$bin" >"$tmp/ldd"
if grep -E 'libevent|libyaml|libz\.so' "$tmp/ldd"; then
	fail "powerd-guest in the image links these dynamically"
fi
grep -q 'libc\.so\.6' "$tmp/ldd" || fail "expected a dynamically linked glibc binary: $(cat "$tmp/ldd")"
"$bin" --version | grep -q '^powerd-guest ' || fail "the image's powerd-guest does not run"

svc=$tmp/x/usr/lib/systemd/system/powerd-guest.service
grep -qx 'ExecStart=/usr/bin/powerd-guest' "$svc" || fail "ExecStart not rewritten to /usr/bin"
diff <(grep -v '^ExecStart=' "$src/units/powerd-guest.service") <(grep -v '^ExecStart=' "$svc") ||
	fail "powerd-guest.service differs from units/ beyond ExecStart"
cmp -s "$src/units/var-scaphandre.mount" "$tmp/x/usr/lib/systemd/system/var-scaphandre.mount" ||
	fail "var-scaphandre.mount differs from units/"
cmp -s "$src/units/powerd-guest.sysusers" "$tmp/x/usr/lib/sysusers.d/powerd-guest.conf" ||
	fail "sysusers.d/powerd-guest.conf differs from units/powerd-guest.sysusers"

rel=$tmp/x/usr/lib/extension-release.d/extension-release.powerd-guest
grep -qx 'ID=flatcar' "$rel" || fail "extension-release: ID"
grep -qx 'SYSEXT_LEVEL=1.0' "$rel" || fail "extension-release: SYSEXT_LEVEL"
grep -qx 'ARCHITECTURE=x86-64' "$rel" || fail "extension-release: ARCHITECTURE"
# Every line is KEY=VALUE as os-release(5) wants, or systemd-sysext ignores the image.
if grep -vqE '^[A-Z_]+=[^[:space:]]+$' "$rel"; then
	fail "extension-release has a malformed line"
fi

# systemd-sysext itself accepts the extension on a Flatcar-like root (os-release ID=flatcar,
# SYSEXT_LEVEL=1.0), and refuses it under another name (the release file must match the name).
# In a private mount namespace with its own /run: nothing leaks to this machine's mounts.
try_merge() {
	unshare -m --propagation private sh -c \
		'mount -t tmpfs tmpfs /run && systemd-sysext --root="$1" merge' sh "$1" 2>&1
}
if command -v systemd-sysext >/dev/null && command -v unshare >/dev/null && [ "$(id -u)" = 0 ] &&
	unshare -m --propagation private true 2>/dev/null; then
	fake=$tmp/flatcar
	mkdir -p "$fake/usr/lib" "$fake/var/lib/extensions"
	printf 'ID=flatcar\nVERSION_ID=3975.2.0\nSYSEXT_LEVEL=1.0\n' >"$fake/usr/lib/os-release"
	cp -a "$tmp/x" "$fake/var/lib/extensions/powerd-guest"
	try_merge "$fake" >"$tmp/merge" || true
	grep -q "Using extensions 'powerd-guest'" "$tmp/merge" ||
		{ cat "$tmp/merge"; fail "systemd-sysext does not accept the extension on Flatcar"; }
	mv "$fake/var/lib/extensions/powerd-guest" "$fake/var/lib/extensions/powerd"
	try_merge "$fake" >"$tmp/merge" || true
	if grep -q "Using extensions" "$tmp/merge"; then
		fail "systemd-sysext accepted the extension under a name its release file does not carry"
	fi
	echo "systemd-sysext accepts the extension as powerd-guest, refuses it as powerd"
else
	echo "note: systemd-sysext merge not tried (needs root, unshare and systemd-sysext)"
fi

# Rebuilding (the target always runs) gives the same bytes: the image is reproducible.
sum1=$(sha256sum <"$img")
rm -f "$img"
cmake --build "$build" --target sysext >/dev/null 2>&1
[ "$(sha256sum <"$img")" = "$sum1" ] || fail "the image is not reproducible"
echo "test-sysext: ok"
