"""Alert rules and the Grafana dashboard only use metrics and labels the gateway exports."""

from __future__ import annotations

import json
import re

import httpx
import yaml  # type: ignore[import-untyped]  # PyYAML comes with uvicorn[standard]

from tests.gateway.client import AGENT_MD, GatewayClient, heartbeat, printer, report, status_update
from tests.gateway.gateway_process import REPO, GatewayProcess

_NAME = re.compile(r"\b(centre_(?:fleet|gateway)_[a-z_]+)")


def _exported(gateway: GatewayProcess) -> set[str]:
    client = GatewayClient(gateway.target)
    client.reporting.Heartbeat(heartbeat(), metadata=AGENT_MD, timeout=10)
    client.reporting.ReportDevices(report(status_update(1, printer(toner=3))), metadata=AGENT_MD, timeout=10)
    client.close()
    text = httpx.get(gateway.http + "/metrics", timeout=10, trust_env=False).text
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "counter":
                names.add(name + "_total")
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


def test_alert_rules_use_exported_metrics_grouped_by_centre(gateway: GatewayProcess) -> None:
    exported = _exported(gateway)
    rules = yaml.safe_load((REPO / "packaging/prometheus/alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    for needed in ("CentreDeviceDown", "CentreSupplyLow", "CentreAgentSilent", "CentreCertificateExpiring"):
        rule = alerts[needed]
        assert "by (province, centre" in rule["expr"], needed
        assert "centre" in rule["annotations"]["summary"]
    for name, rule in alerts.items():
        used = set(_NAME.findall(rule["expr"]))
        assert used, name
        assert used <= exported, (name, used - exported)


def test_grafana_dashboard_queries_exported_metrics(gateway: GatewayProcess) -> None:
    exported = _exported(gateway)
    dashboard = json.loads((REPO / "packaging/grafana/centre-fleet.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        used = set(_NAME.findall(expr))
        assert used, expr
        assert used <= exported, (expr, used - exported)
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"province", "centre"}
