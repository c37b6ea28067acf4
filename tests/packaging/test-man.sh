#!/usr/bin/env bash
# The man pages: each renders without groff/man warnings, and the OPTIONS section of
# powerd-host(8) / powerd-guest(8) lists exactly the options the daemon's --help prints (every
# --help option documented, no documented option the daemon lacks). powerd.yaml(5) names every
# key of conf/host.yaml and conf/guest.yaml. Exits 77 (skipped) if neither daemon has a --help yet.
set -euo pipefail
src=${1:?usage: test-man.sh SOURCE_DIR HOST_BIN GUEST_BIN}
host_bin=${2:?}
guest_bin=${3:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
checked=0

for page in "$src"/man/*.[0-9]; do
	if ! MANWIDTH=80 man --warnings -l "$page" >/dev/null 2>"$tmp/warn" || [ -s "$tmp/warn" ]; then
		echo "FAIL: $page renders with warnings:"; cat "$tmp/warn"; fail=1
	fi
done

# Long and short options in a text: "--check-config", "-c" (not "-" inside words).
options_of() {
	grep -oE '(^|[][ ,|(])--?[a-zA-Z][a-zA-Z-]*' | sed -E 's/^[][ ,|(]//' | sort -u
}

# The OPTIONS (and COMMANDS, whose options --help lists too) sections of a man page source,
# with roff escapes undone.
man_options() {
	awk '/^\.SH /{ on = ($2 == "OPTIONS" || $2 == "COMMANDS") } on' "$1" | sed -E 's/\\-/-/g; s/\\f[BIRP]//g; s/"//g' |
		grep -E '^\.(TP|B|BR|BI|IP)|^-' | options_of
}

for daemon in host guest; do
	bin=$host_bin
	[ $daemon = guest ] && bin=$guest_bin
	page=$src/man/powerd-$daemon.8
	if ! "$bin" --help >"$tmp/help" 2>&1 || ! grep -q -- '--' "$tmp/help"; then
		echo "SKIP: powerd-$daemon --help prints no options yet"
		continue
	fi
	options_of <"$tmp/help" >"$tmp/help.opts"
	man_options "$page" >"$tmp/man.opts"
	if [ ! -s "$tmp/help.opts" ]; then
		echo "FAIL: no options parsed from powerd-$daemon --help"; fail=1; continue
	fi
	missing=$(comm -23 "$tmp/help.opts" "$tmp/man.opts")
	extra=$(comm -13 "$tmp/help.opts" "$tmp/man.opts")
	if [ -n "$missing" ]; then
		echo "FAIL: powerd-$daemon --help options missing from $page:" $missing; fail=1
	fi
	if [ -n "$extra" ]; then
		echo "FAIL: $page documents options powerd-$daemon --help lacks:" $extra; fail=1
	fi
	echo "powerd-$daemon: options $(tr "\n" " " <"$tmp/help.opts")"
	checked=$((checked + 1))
done

# Every key of the shipped configs (top level and nested) is documented in powerd.yaml(5).
sed 's/\\-/-/g' "$src/man/powerd.yaml.5" | grep -E '^\.(BR?|TQ) ' >"$tmp/keys.man" || true
for conf in "$src"/conf/host.yaml "$src"/conf/guest.yaml; do
	[ -f "$conf" ] || continue
	for key in $(grep -oE '^ *[a-z_]+:' "$conf" | tr -d ' :' | sort -u); do
		if ! grep -qE "\b$key\b" "$tmp/keys.man"; then
			echo "FAIL: $(basename "$conf") key $key is not documented in powerd.yaml.5"; fail=1
		fi
	done
done

[ $fail = 0 ] || exit 1
[ $checked -gt 0 ] || exit 77
echo "test-man: ok"
