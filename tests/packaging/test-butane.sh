#!/usr/bin/env bash
# conf/butane/{guest,host}.bu: each is exactly what packaging/butane-units.sh generates from units/
# and conf/ (so the inlined units cannot drift), translates with butane2ign.py into Ignition 3.3.0
# that ignition-validate accepts without a warning, and decodes back to the very files it carries.
# The checks can fail: ignition-validate refuses a config with a relative path or a unit name
# without a type, butane2ign refuses unknown keys and other versions, and the YAML subset parser
# gives known answers on a small sample.
set -euo pipefail
src=${1:?usage: test-butane.sh SOURCE_DIR}
py=$(command -v python3 || true)
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
[ -n "$py" ] || { echo "SKIP: no python3"; exit 77; }
command -v ignition-validate >/dev/null ||
	{ echo "SKIP: ignition-validate not installed (apt-get install ignition)"; exit 77; }
b2i="$py $src/tests/packaging/butane2ign.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
	echo "FAIL: $*"; exit 1
}

for role in guest host; do
	"$src/packaging/butane-units.sh" $role "$src" >"$tmp/$role.bu"
	diff -u "$src/conf/butane/$role.bu" "$tmp/$role.bu" ||
		fail "conf/butane/$role.bu is stale: packaging/butane-units.sh $role >conf/butane/$role.bu"
	$b2i "$src/conf/butane/$role.bu" -o "$tmp/$role.ign" || fail "butane2ign $role.bu"
	ignition-validate "$tmp/$role.ign" >"$tmp/$role.val" 2>&1 || { cat "$tmp/$role.val"; fail "$role.ign invalid"; }
	[ ! -s "$tmp/$role.val" ] || { cat "$tmp/$role.val"; fail "$role.ign: ignition-validate warns"; }
done

# Decode what Ignition would write and compare with the sources.
"$py" - "$src" "$tmp/guest.ign" "$tmp/host.ign" <<'PY'
import json, os, sys, urllib.parse
src, guest, host = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
def fail(msg):
    sys.exit("FAIL: " + msg)
def files(ign):
    out = {}
    for f in ign.get("storage", {}).get("files", []):
        s = f["contents"]["source"]
        out[f["path"]] = (f.get("mode"), urllib.parse.unquote(s[len("data:,"):]) if s.startswith("data:,") else s)
    return out
def units(ign):
    return {u["name"]: u for u in ign.get("systemd", {}).get("units", [])}
def read(rel):
    with open(os.path.join(src, rel)) as f:
        return f.read()
assert guest["ignition"]["version"] == "3.3.0"
g = files(guest)
if os.path.exists(os.path.join(src, "conf/guest.yaml")):
    if g.get("/etc/powerd/guest.yaml") != (0o644, read("conf/guest.yaml")):
        fail("guest.yaml does not decode to conf/guest.yaml")
raw = [p for p in g if p.startswith("/opt/extensions/powerd-guest/") and p.endswith(".raw")]
if len(raw) != 1 or not g[raw[0]][1].startswith("https://"):
    fail("no sysext image fetched into /opt/extensions/powerd-guest/")
links = {l["path"]: l for l in guest["storage"].get("links", [])}
l = links.get("/etc/extensions/powerd-guest.raw")
if not l or l["target"] != raw[0] or l.get("hard"):
    fail("no symlink /etc/extensions/powerd-guest.raw -> %s" % raw[0])
gu = units(guest)
for name in ("var-scaphandre.mount", "powerd-guest.service"):
    if not os.path.exists(os.path.join(src, "units", name)):
        continue
    u = gu.get(name)
    if not u or u.get("contents") != read("units/" + name) or u.get("enabled") is not True:
        fail("%s is not units/%s, enabled" % (name, name))
# the unit's user and the port's group, and the rule that gives the port to that group
for path, rel in (("/etc/sysusers.d/powerd-guest.conf", "units/powerd-guest.sysusers"),
                  ("/etc/udev/rules.d/60-powerd-guest.rules", "units/60-powerd-guest.rules")):
    if os.path.exists(os.path.join(src, rel)) and g.get(path) != (0o644, read(rel)):
        fail("guest: %s is not %s, 0644" % (path, rel))
drop = gu.get("powerd-guest.service", {}).get("dropins", [])
if os.path.exists(os.path.join(src, "units/powerd-guest.service")):
    if not drop or "ExecStart=\nExecStart=/usr/bin/powerd-guest\n" not in drop[0]["contents"]:
        fail("powerd-guest.service has no drop-in moving ExecStart to the sysext's /usr/bin")
h = files(host)
if h.get("/opt/bin/powerd-host", (None,))[0] != 0o755:
    fail("host: /opt/bin/powerd-host not 0755")
if os.path.exists(os.path.join(src, "units/powerd-libvirt-hook")):
    if h.get("/etc/libvirt/hooks/qemu.d/powerd") != (0o755, read("units/powerd-libvirt-hook")):
        fail("host: hook is not units/powerd-libvirt-hook, 0755")
if os.path.exists(os.path.join(src, "units/powerd-host.service")):
    u = units(host).get("powerd-host.service")
    if not u or u.get("contents") != read("units/powerd-host.service") or u.get("enabled") is not True:
        fail("host: powerd-host.service is not units/powerd-host.service, enabled")
print("decoded contents match the sources")
PY

# ignition-validate must refuse broken configs (or the checks above prove nothing).
"$py" - "$tmp/guest.ign" "$tmp" <<'PY'
import json, sys
ign = json.load(open(sys.argv[1]))
bad = json.loads(json.dumps(ign)); bad["storage"]["files"][0]["path"] = "opt/relative.raw"
json.dump(bad, open(sys.argv[2] + "/bad-path.ign", "w"))
bad = json.loads(json.dumps(ign)); bad["systemd"]["units"][0]["name"] = "no-unit-type"
json.dump(bad, open(sys.argv[2] + "/bad-unit.ign", "w"))
bad = json.loads(json.dumps(ign)); bad["ignition"]["version"] = "9.9.9"
json.dump(bad, open(sys.argv[2] + "/bad-version.ign", "w"))
PY
for bad in bad-path bad-unit bad-version; do
	if ignition-validate "$tmp/$bad.ign" >/dev/null 2>&1; then
		fail "ignition-validate accepted $bad.ign"
	fi
done

# butane2ign refuses what it does not translate.
sed 's/^version: 1.0.0/version: 1.1.0/' "$src/conf/butane/guest.bu" >"$tmp/v.bu"
sed 's/^  links:/  linkz:/' "$src/conf/butane/guest.bu" >"$tmp/k.bu"
for bad in v k; do
	if $b2i "$tmp/$bad.bu" >/dev/null 2>&1; then
		fail "butane2ign accepted $bad.bu"
	fi
done

# The YAML subset parser on a sample with known answers.
cat >"$tmp/sample.bu" <<'BU'
variant: flatcar   # trailing comment
version: 1.0.0
storage:
  files:
    - path: "/etc/a b"
      mode: 0600
      overwrite: true
      contents:
        inline: |
          x: 1 # not a comment inside a block

          50% #done
    - path: '/etc/it''s'
      contents:
        inline: |-
          no newline
systemd:
  units:
  - name: a.service
    enabled: false
    dropins:
      - name: x.conf
        contents: "[Service]\nNice=5\n"
BU
$b2i "$tmp/sample.bu" -o "$tmp/sample.ign"
"$py" - "$tmp/sample.ign" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
f = i["storage"]["files"]
assert f[0]["path"] == "/etc/a b" and f[0]["mode"] == 0o600 and f[0]["overwrite"] is True, f[0]
assert f[0]["contents"]["source"] == "data:,x%3A%201%20%23%20not%20a%20comment%20inside%20a%20block%0A%0A50%25%20%23done%0A", f[0]
assert f[1]["path"] == "/etc/it's" and f[1]["contents"]["source"] == "data:,no%20newline", f[1]
u = i["systemd"]["units"][0]
assert u == {"name": "a.service", "enabled": False,
             "dropins": [{"name": "x.conf", "contents": "[Service]\nNice=5\n"}]}, u
PY
ignition-validate "$tmp/sample.ign" >/dev/null
echo "test-butane: ok"
