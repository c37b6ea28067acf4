#!/usr/bin/env bash
# The documentation's links (ctest docs_links): first the checker itself, on files made here
# that hold one known good or broken link each (a checker that passes everything would pass the
# tree too), then every relative link and #anchor of README.md, docs/*.md and tests/e2e/README.md.
set -euo pipefail
src=${1:?usage: test-links.sh SOURCE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# Debian's python3 (scripts/deps installs it), not whatever a PATH puts first.
py=/usr/bin/python3
[ -x $py ] || { echo "SKIP: no /usr/bin/python3 (scripts/deps installs python3)"; exit 77; }
check() { $py "$here/check-links.py" "$@"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/docs"
cat >"$tmp/docs/target.md" <<'EOF'
# Target

## Where a domain's CPU time comes from

## powerd-host (`/etc/powerd/host.yaml`)

## Repeated

## Repeated

```sh
# not a heading: inside fenced code
```
EOF
fail=0
expect() { # ok|broken MARKDOWN-LINE [what the failure must say]
	printf '# Case\n\n%s\n' "$2" >"$tmp/docs/case.md"
	if check --files "$tmp/docs/case.md" >"$tmp/out" 2>&1; then got=ok; else got=broken; fi
	if [ "$got" != "$1" ] || { [ -n "${3:-}" ] && ! grep -qF -- "$3" "$tmp/out"; }; then
		echo "FAIL: self-test: expected $1${3:+ ($3)} for: $2"; cat "$tmp/out"; fail=1
	fi
}
expect ok '[t](target.md)'
expect ok '[t](target.md#target)'
expect ok "[t](target.md#where-a-domains-cpu-time-comes-from)"
expect ok '[t](target.md#powerd-host-etcpowerdhostyaml)'
expect ok '[t](target.md#repeated-1)'
expect ok '[self](#case)'
expect ok '[dir](../docs)'
expect ok '[web](https://example.invalid/nowhere) and `[code](missing.md)`'
expect ok $'```\n[fenced](missing.md)\n```'
expect broken '[t](missing.md)' 'no such file'
expect broken '[t](target.md#nowhere)' 'no heading with anchor #nowhere'
expect broken '[t](target.md#repeated-2)' 'no heading with anchor #repeated-2'
expect broken '[t](target.md#not-a-heading-inside-fenced-code)' 'no heading with anchor'
expect broken '[self](#no-such-heading)' 'no heading with anchor #no-such-heading'
expect broken 'text [t](target.md) and ![img](gone.png)' 'gone.png: no such file'
expect broken '[ref]: ../nowhere/file.md' 'no such file'
expect broken '<a href="target.md#nope">x</a>' 'no heading with anchor #nope'
[ $fail = 0 ] || exit 1
echo "self-test: 17 cases as expected"

check "$src"
