#!/usr/bin/env bash
# The Debian packages, end to end on this machine (root, Debian; systemd need not be PID 1):
#  - `cmake --install` into a DESTDIR lands every file where it belongs (hook 0755) and a second
#    install keeps an edited /etc/powerd/*.yaml;
#  - cpack builds powerd-host and powerd-guest component by component, with shlibs dependencies,
#    maintainer scripts and /etc/powerd/*.yaml as conffiles, and no file in both packages;
#  - `apt-get install ./powerd-*.deb` succeeds (postinst must not fail without systemd), files land,
#    the services are enabled, and `systemd-analyze verify` is clean on every installed unit;
#  - a reinstall keeps an edited conffile; remove keeps it; purge removes it, /etc/powerd, every
#    path of `dpkg -L` and the enablement symlinks, leaving the inspected paths as they were.
# Idempotent: a previous run's leftovers are purged first, and an exit trap purges on failure.
set -euo pipefail
src=${1:?usage: test-deb.sh SOURCE_DIR BUILD_DIR}
build=${2:?}
pkgs=(powerd-host powerd-guest)

if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null ||
	! command -v cpack >/dev/null; then
	echo "SKIP: needs root on a Debian system with cpack"; exit 77
fi
export DEBIAN_FRONTEND=noninteractive
# Other builds of this tree may run this test, and other people apt-get: take turns.
exec 9>/run/lock/powerd-test-deb.lock 2>/dev/null || exec 9>/tmp/powerd-test-deb.lock
flock 9
apt=(apt-get -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends)
tmp=$(mktemp -d)
fail() {
	echo "FAIL: $*"; exit 1
}
purge_all() {
	local installed=()
	for p in "${pkgs[@]}"; do
		if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
			installed+=("$p")
		fi
	done
	[ ${#installed[@]} = 0 ] || "${apt[@]}" purge "${installed[@]}" >/dev/null 2>&1
}
cleanup() {
	purge_all || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# What install may touch; compared before install and after purge.
snapshot() {
	local p
	for p in /etc/powerd /etc/libvirt/hooks /etc/systemd/system /usr/share/powerd \
		/var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked; do
		[ -e "$p" ] && find "$p" -printf '%p %m %y %l\n'
	done
	ls -d /usr/sbin/powerd* /lib/systemd/system/powerd* /lib/systemd/system/var-scaphandre.mount \
		/usr/share/man/man[58]/powerd* 2>/dev/null || true
}

purge_all
snapshot | sort >"$tmp/before"

# --- cmake --install into a DESTDIR ---------------------------------------------------------------
root=$tmp/root
DESTDIR=$root cmake --install "$build" --prefix /usr >/dev/null
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /usr/lib/systemd/system)
for f in /usr/sbin/powerd-host /usr/sbin/powerd-guest /usr/share/man/man8/powerd-host.8.gz \
	/usr/share/man/man8/powerd-guest.8.gz /usr/share/man/man5/powerd-host.yaml.5.gz \
	/usr/share/man/man5/powerd-guest.yaml.5.gz; do
	[ -f "$root$f" ] || fail "cmake --install: $f missing"
done
for u in powerd-host.service powerd-host.socket powerd-guest.service var-scaphandre.mount; do
	if [ -f "$src/units/$u" ]; then
		cmp -s "$src/units/$u" "$root$unitdir/$u" || fail "cmake --install: $unitdir/$u"
	fi
done
for role in host guest; do
	[ -f "$src/conf/$role.yaml" ] || continue
	cmp -s "$src/conf/$role.yaml" "$root/usr/share/powerd/$role.yaml" || fail "example $role.yaml"
	cmp -s "$src/conf/$role.yaml" "$root/etc/powerd/$role.yaml" || fail "/etc/powerd/$role.yaml"
	echo "# edited" >>"$root/etc/powerd/$role.yaml"
done
if [ -f "$src/units/powerd-libvirt-hook" ]; then
	[ "$(stat -c %a "$root/etc/libvirt/hooks/qemu.d/powerd")" = 755 ] || fail "hook mode"
fi
if [ -f "$src/units/powerd-pve-hook" ]; then
	[ "$(stat -c %a "$root/usr/share/powerd/powerd-hook")" = 755 ] || fail "Proxmox hook mode"
	cmp -s "$src/units/powerd-pve-hook" "$root/usr/share/powerd/powerd-hook" ||
		fail "Proxmox hook is not units/powerd-pve-hook"
fi
DESTDIR=$root cmake --install "$build" --prefix /usr >/dev/null
for role in host guest; do
	[ -f "$src/conf/$role.yaml" ] || continue
	tail -1 "$root/etc/powerd/$role.yaml" | grep -q '^# edited$' ||
		fail "a second cmake --install overwrote the edited /etc/powerd/$role.yaml"
done
echo "cmake --install: layout ok, edited configs kept"

# --- the packages ----------------------------------------------------------------------------------
for comp in host guest; do
	(cd "$build" && cpack -G DEB -B "$tmp/deb" -D CPACK_COMPONENTS_ALL=$comp >"$tmp/cpack-$comp.log") ||
		{ cat "$tmp/cpack-$comp.log"; fail "cpack $comp"; }
done
host_deb=$(ls "$tmp"/deb/powerd-host_*.deb)
guest_deb=$(ls "$tmp"/deb/powerd-guest_*.deb)
for deb in "$host_deb" "$guest_deb"; do
	dpkg-deb -f "$deb" Depends | grep -q 'libc6' || fail "$deb: no shlibs dependencies"
	dpkg-deb -I "$deb" postinst prerm postrm >/dev/null || fail "$deb: maintainer scripts missing"
done
dpkg-deb -f "$guest_deb" Depends | grep -q 'libevent' || fail "powerd-guest does not depend on libevent"
[ "$(dpkg-deb -I "$host_deb" conffiles)" = /etc/powerd/host.yaml ] || fail "host conffiles"
[ "$(dpkg-deb -I "$guest_deb" conffiles)" = /etc/powerd/guest.yaml ] || fail "guest conffiles"
both=$(comm -12 <(dpkg-deb -c "$host_deb" | awk '$1 !~ /^d/ {print $6}' | sort) \
	<(dpkg-deb -c "$guest_deb" | awk '$1 !~ /^d/ {print $6}' | sort))
[ -z "$both" ] || fail "files in both packages: $both"

# Paths of the packages that exist before they are installed (shared directories).
for deb in "$host_deb" "$guest_deb"; do
	dpkg-deb -c "$deb" | awk '{print $6}' | sed -E 's|^\.||; s|/$||'
done | sort -u | while read -r path; do
	[ -n "$path" ] && { [ -e "$path" ] || [ -L "$path" ]; } && echo "$path"
done >"$tmp/preexisting" || true

# Both at once: proves they co-install. No recommends: the test must not grow the machine.
"${apt[@]}" install "$host_deb" "$guest_deb" >"$tmp/apt.log" 2>&1 ||
	{ cat "$tmp/apt.log"; fail "apt-get install"; }
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" | grep -q 'install ok installed' || fail "$p not installed"
done
[ -x /usr/sbin/powerd-host ] && [ -x /usr/sbin/powerd-guest ] || fail "binaries"
for f in /usr/share/man/man8/powerd-host.8.gz /usr/share/man/man8/powerd-guest.8.gz \
	/usr/share/man/man5/powerd-host.yaml.5.gz /usr/share/man/man5/powerd-guest.yaml.5.gz \
	/etc/powerd/host.yaml /etc/powerd/guest.yaml; do
	[ -f "$f" ] || fail "$f not installed"
done
if command -v man >/dev/null; then
	for page in powerd-host powerd-guest powerd-host.yaml powerd-guest.yaml; do
		man -w "$page" >/dev/null 2>&1 || fail "man cannot find $page once installed"
	done
fi
units=()
for u in powerd-host.service powerd-host.socket powerd-guest.service var-scaphandre.mount; do
	[ -f "$src/units/$u" ] || continue
	[ -f "$unitdir/$u" ] || fail "$unitdir/$u not installed"
	units+=("$unitdir/$u")
done
for u in powerd-host.service powerd-host.socket powerd-guest.service; do
	[ -f "$unitdir/$u" ] || continue
	ls /etc/systemd/system/*.wants/"$u" >/dev/null 2>&1 || fail "$u not enabled by postinst"
done
getent passwd powerd >/dev/null || fail "postinst did not create the system user powerd"
getent group powerd >/dev/null || fail "postinst did not create the group powerd"
if [ -f "$src/units/powerd-guest.sysusers" ]; then
	sysusersdir=$(pkg-config --variable=sysusersdir systemd 2>/dev/null || echo /usr/lib/sysusers.d)
	cmp -s "$src/units/powerd-guest.sysusers" "$sysusersdir/powerd-guest.conf" ||
		fail "$sysusersdir/powerd-guest.conf not installed"
	# What it makes where nobody made it before (this machine may have powerd from earlier runs).
	mkdir -p "$tmp/sysroot/etc"
	systemd-sysusers --root="$tmp/sysroot" "$sysusersdir/powerd-guest.conf" >/dev/null 2>&1 ||
		fail "systemd-sysusers refuses powerd-guest.conf"
	grep -q '^powerd:x:[0-9]*:[0-9]*:.*:/nonexistent:' "$tmp/sysroot/etc/passwd" &&
		grep -q '^powerd:x:' "$tmp/sysroot/etc/group" ||
		fail "powerd-guest.conf does not make the system user and group powerd"
	dpkg-deb -I "$guest_deb" postinst | grep -q 'systemd-sysusers powerd-guest.conf' ||
		fail "powerd-guest's postinst does not run systemd-sysusers"
fi
udevdir=$(pkg-config --variable=udevdir udev 2>/dev/null || echo /lib/udev)
[ ! -f "$src/units/60-powerd-guest.rules" ] ||
	cmp -s "$src/units/60-powerd-guest.rules" "$udevdir/rules.d/60-powerd-guest.rules" ||
	cmp -s "$src/units/60-powerd-guest.rules" "/usr$udevdir/rules.d/60-powerd-guest.rules" ||
	fail "60-powerd-guest.rules not installed"
if [ -f "$src/units/powerd-libvirt-hook" ]; then
	[ "$(stat -c %a /etc/libvirt/hooks/qemu.d/powerd)" = 755 ] || fail "hook not installed 0755"
fi
if [ -f "$src/units/powerd-pve-hook" ]; then
	[ "$(stat -c %a /usr/share/powerd/powerd-hook)" = 755 ] || fail "Proxmox hook not 0755"
fi
# Proxmox VE nodes have no libvirt daemon: the package must not force one (libvirt0, the
# library, comes from shlibs).
if dpkg-deb -f "$host_deb" Depends | grep -q 'libvirt-daemon'; then
	fail "host .deb depends on a libvirt daemon"
fi
if [ ${#units[@]} -gt 0 ]; then
	systemd-analyze verify "${units[@]}" >"$tmp/verify" 2>&1 || true
	if [ -s "$tmp/verify" ]; then
		cat "$tmp/verify"; fail "systemd-analyze verify is not clean"
	fi
fi
echo "installed: ${pkgs[*]}; units verified: ${units[*]:-none yet}"

# An edited conffile survives a reinstall and a remove; purge takes it.
echo "# edited" >>/etc/powerd/host.yaml
"${apt[@]}" install --reinstall "$host_deb" >"$tmp/apt.log" 2>&1 ||
	{ cat "$tmp/apt.log"; fail "reinstall"; }
tail -1 /etc/powerd/host.yaml | grep -q '^# edited$' || fail "reinstall overwrote an edited conffile"
dpkg-query -L powerd-host powerd-guest | sort -u >"$tmp/listed"
"${apt[@]}" remove powerd-host >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "remove"; }
[ ! -e /usr/sbin/powerd-host ] || fail "remove left the binary"
[ ! -e /etc/libvirt/hooks/qemu.d/powerd ] || fail "remove left the libvirt hook"
[ -f /etc/powerd/host.yaml ] || fail "remove (not purge) deleted the conffile"
"${apt[@]}" purge powerd-host powerd-guest >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "purge"; }

[ ! -e /etc/powerd ] || fail "/etc/powerd remains after purge: $(ls -A /etc/powerd)"
while read -r path; do
	[ -n "$path" ] && [ "$path" != /. ] || continue
	# a directory the packages share with the system (/usr/sbin) existed before and stays
	if [ -e "$path" ] || [ -L "$path" ]; then
		grep -qxF "$path" "$tmp/preexisting" || fail "purge left $path"
	fi
done <"$tmp/listed"
snapshot | sort >"$tmp/after"
if ! diff -u "$tmp/before" "$tmp/after"; then
	fail "install + purge did not leave the machine as it was"
fi
echo "test-deb: ok"
