#!/usr/bin/env bash
# conf/prometheus and conf/grafana: the rules load and compute what their names say (promtool
# check rules + promtool test rules on synthetic series), the scrape config is a valid Prometheus
# configuration, a broken rule file is rejected (the check can fail), and the Grafana dashboard
# is well-formed JSON of schemaVersion >= 36 whose every query uses ${DS_PROMETHEUS} and only
# metric names of DESIGN.md §3 and §7 (powerd_domain_info), with a per-project panel.
set -euo pipefail
src=${1:?usage: test-prometheus.sh SOURCE_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v promtool >/dev/null || { echo "SKIP: promtool not installed"; exit 77; }

promtool check rules "$src/conf/prometheus/rules.yml"

# The scrape jobs inside a complete prometheus.yml that also loads the rules.
{
	printf 'global:\n  scrape_interval: 15s\n  evaluation_interval: 30s\n'
	printf 'rule_files: ["%s"]\n' "$src/conf/prometheus/rules.yml"
	grep -v '^#' "$src/conf/prometheus/scrape.yml"
} >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"
grep -q ':9731' "$src/conf/prometheus/scrape.yml"
grep -q ':9732' "$src/conf/prometheus/scrape.yml"

# The check can fail: a rule with a broken expression and one with a bad name are refused.
cat >"$tmp/broken.yml" <<'RULES'
groups:
  - name: broken
    rules:
      - record: powerd:broken
        expr: sum by (instance) (rate(powerd_power_watts[5m])
RULES
if promtool check rules "$tmp/broken.yml" >"$tmp/out" 2>&1; then
	echo "FAIL: promtool accepted a rule with unbalanced parentheses"; exit 1
fi
sed -i 's/expr: .*/expr: up/; s/record: .*/record: "not a metric name"/' "$tmp/broken.yml"
if promtool check rules "$tmp/broken.yml" >"$tmp/out" 2>&1; then
	echo "FAIL: promtool accepted an invalid record name"; exit 1
fi

# The recording rules compute what their names promise, on series with known values.
cp "$src/conf/prometheus/rules.yml" "$tmp/rules.yml"
cat >"$tmp/rules_test.yml" <<'TESTS'
rule_files: [rules.yml]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      # 60 J/30 s = 2 W to the domain, 300 J/30 s = 10 W for the host
      - series: 'powerd_domain_energy_joules_total{instance="hv1:9731",domain="vm1",zone="package-0"}'
        values: '0+60x240'
      - series: 'powerd_host_energy_joules_total{instance="hv1:9731",zone="package-0"}'
        values: '0+300x240'
      - series: 'powerd_domain_power_watts{instance="hv1:9731",domain="vm1",zone="package-0"}'
        values: '2x20 4x20'
      - series: 'powerd_domains{instance="hv1:9731"}'
        values: '3x240'
      - series: 'powerd_power_watts{instance="vm1:9732",zone="package-0"}'
        values: '5x240'
      - series: 'powerd_libvirt_connected{instance="hv1:9731"}'
        values: '1x10 0x30'
      - series: 'powerd_errors_total{instance="hv1:9731",kind="tree"}'
        values: '0x10 1+1x30'
    promql_expr_test:
      - expr: powerd:domain_power_watts:avg5m
        eval_time: 5m
        exp_samples:
          - labels: 'powerd:domain_power_watts:avg5m{instance="hv1:9731",domain="vm1",zone="package-0"}'
            value: 2
      - expr: powerd:host_energy_joules:increase1h
        eval_time: 2h
        exp_samples:
          - labels: 'powerd:host_energy_joules:increase1h{instance="hv1:9731",zone="package-0"}'
            value: 36000
      - expr: powerd:host_attributed_ratio:rate5m
        eval_time: 1h
        exp_samples:
          - labels: 'powerd:host_attributed_ratio:rate5m{instance="hv1:9731"}'
            value: 0.2
      - expr: powerd:domains:count
        eval_time: 10m
        exp_samples:
          - labels: 'powerd:domains:count{instance="hv1:9731"}'
            value: 3
      - expr: instance:powerd_power_watts:avg5m
        eval_time: 10m
        exp_samples:
          - labels: 'instance:powerd_power_watts:avg5m{instance="vm1:9732"}'
            value: 5
    alert_rule_test:
      - alertname: PowerdGuestSourceDown
        eval_time: 10m
        exp_alerts: []
      - alertname: PowerdHostLibvirtDisconnected
        eval_time: 4m
        exp_alerts: []
      - alertname: PowerdHostLibvirtDisconnected
        eval_time: 12m
        exp_alerts:
          - exp_labels: {severity: warning, instance: "hv1:9731"}
            exp_annotations:
              summary: "powerd-host on hv1:9731 lost libvirt: new domains get no tree"
TESTS
(cd "$tmp" && promtool test rules rules_test.yml)

# OpenStack: energy and power per project, flavor and instance on two projects over two
# hypervisors (tests/packaging/rules-openstack.test.yml); and the fixture can fail: joined on
# the domain name alone, the rules meet the two hosts' instance-00000001 and are refused.
cp "$src/tests/packaging/rules-openstack.test.yml" "$tmp/"
(cd "$tmp" && promtool test rules rules-openstack.test.yml)
grep -q 'on (instance, domain) group_left' "$tmp/rules.yml"
sed -i 's/on (instance, domain) group_left/on (domain) group_left/' "$tmp/rules.yml"
if (cd "$tmp" && promtool test rules rules-openstack.test.yml) >"$tmp/out" 2>&1; then
	echo "FAIL: the OpenStack rules joined on the domain name alone passed their test"; exit 1
fi

# The dashboard.
python3 - "$src/conf/grafana/powerd.json" "$src" <<'PY'
import glob, json, re, sys
d = json.load(open(sys.argv[1]))
# the names the daemons actually export, from their sources
exported = set()
for f in glob.glob(sys.argv[2] + "/hostd/*.c") + glob.glob(sys.argv[2] + "/guestd/*.c"):
    exported |= set(re.findall(r'"(powerd_[a-z_]+)"', open(f).read()))
rules = open(sys.argv[2] + "/conf/prometheus/rules.yml").read()
for m in set(re.findall(r"(?<![:\w])(powerd_[a-z_]+)", rules)):
    assert m in exported or not exported, "rules.yml: %s is not exported by the daemons" % m
assert d["schemaVersion"] >= 36, d["schemaVersion"]
assert any(i["name"] == "DS_PROMETHEUS" for i in d["__inputs"]), "no DS_PROMETHEUS input"
names = [v["name"] for v in d["templating"]["list"]]
assert "host" in names and "guest" in names, names
known = {"powerd_host_energy_joules_total", "powerd_host_power_watts",
         "powerd_domain_energy_joules_total", "powerd_domain_power_watts", "powerd_domains",
         "powerd_energy_joules_total", "powerd_power_watts", "powerd_unit_energy_joules_total",
         "powerd_unit_power_watts", "powerd_source_up", "powerd_source_estimated",
         "powerd_errors_total", "powerd_libvirt_connected", "powerd_tick_duration_seconds",
         "powerd_host_energy_estimated", "powerd_domain_info"}
exprs = []
for p in d["panels"]:
    if p["type"] == "row":
        continue
    assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    for t in p["targets"]:
        assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        exprs.append(t["expr"])
        for m in re.findall(r"\b(powerd_[a-z_]+)", t["expr"]):
            assert m in known, "%s: unknown metric %s" % (p["title"], m)
            assert m in exported or not exported, "%s: %s is not exported" % (p["title"], m)
        assert re.search(r'instance=~"\$(host|guest)"', t["expr"]), "not templated: " + t["expr"]
joined = "\n".join(exprs)
for want in ["powerd_host_power_watts", "powerd_domain_power_watts", "powerd_domains",
             "powerd_power_watts", "topk(10, powerd_unit_power_watts",
             "sum by (project_id, project_name) (powerd_domain_power_watts",
             "on (instance, domain) group_left (project_id, project_name) powerd_domain_info"]:
    assert want in joined, "dashboard lacks " + want
print("dashboard: %d queries ok" % len(exprs))
PY
echo "test-prometheus: ok"
