"""Prometheus metrics: fleet gauges with bounded labels, and the gateway's own health.

Labels are province, centre, device kind, state/status and severity: all from
small, validated sets. Never a PC, serial number or device id: per-PC detail is
served by the fleet API and the dashboard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.fleet import FleetSnapshot
from gateway.model import CERT_WARNING_MS, DEVICE_STATES, AgentStatus


class GatewayMetrics:
    """The gateway's self-metrics, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rpcs = PromCounter("centre_gateway_rpc", "RPCs handled, by method and status code",
                                ["method", "code"], registry=registry)
        self.latency = Histogram("centre_gateway_rpc_seconds", "RPC handling time", ["method"], registry=registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.shed = PromCounter("centre_gateway_shed", "Calls refused by admission control", ["method"],
                                registry=registry)
        self.entries = PromCounter("centre_gateway_report_entries", "Report entries by outcome",
                                   ["result"], registry=registry)
        self.write_batch = Histogram("centre_gateway_write_batch_reports", "Reports per storage transaction",
                                     registry=registry, buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))
        self.write_seconds = Histogram("centre_gateway_write_batch_seconds", "Time per storage transaction",
                                       registry=registry)
        self.beats_flushed = PromCounter("centre_gateway_heartbeats_flushed", "Heartbeats written to storage",
                                         registry=registry)
        self.beats_pending = Gauge("centre_gateway_heartbeats_pending", "Heartbeats waiting for the next flush",
                                   registry=registry)

    def on_batch(self, reports: int, seconds: float) -> None:
        self.write_batch.observe(reports)
        self.write_seconds.observe(seconds)

    def on_flush(self, beats: int, seconds: float) -> None:
        self.beats_flushed.inc(beats)


class FleetCollector(Collector):
    """Fleet gauges from the latest :class:`FleetSnapshot` (set before each scrape)."""

    def __init__(self) -> None:
        self.snapshot: FleetSnapshot | None = None

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        agents = GaugeMetricFamily("centre_fleet_agents", "Agents by liveness",
                                   labels=["province", "centre", "status"])
        devices = GaugeMetricFamily("centre_fleet_devices", "Devices by kind and state",
                                    labels=["province", "centre", "kind", "state"])
        problems = GaugeMetricFamily("centre_fleet_device_problems", "Device problems by kind and severity",
                                     labels=["province", "centre", "kind", "severity"])
        supplies = GaugeMetricFamily("centre_fleet_devices_supply_low", "Devices with a supply at or below 10 %",
                                     labels=["province", "centre", "kind"])
        certs = GaugeMetricFamily("centre_fleet_certificates_expiring",
                                  "Agents whose client certificate expires within 14 days (or has expired)",
                                  labels=["province", "centre"])
        if snapshot is not None:
            agent_counts: Counter[tuple[str, str, str]] = Counter()
            device_counts: Counter[tuple[str, str, str, str]] = Counter()
            problem_counts: Counter[tuple[str, str, str, str]] = Counter()
            supply_counts: Counter[tuple[str, str, str]] = Counter()
            cert_counts: Counter[tuple[str, str]] = Counter()
            centres: set[tuple[str, str]] = set()
            for view in snapshot.agents:
                p, c = view.row.agent.province, view.row.agent.centre
                centres.add((p, c))
                agent_counts[(p, c, view.status.value)] += 1
                not_after = view.row.health.certificate_not_after * 1000
                if not_after and not_after - snapshot.taken_ms < CERT_WARNING_MS:
                    cert_counts[(p, c)] += 1
                for device in view.devices:
                    r = device.report
                    device_counts[(p, c, r.kind, r.state)] += 1
                    for _, severity, _ in r.problems():
                        problem_counts[(p, c, r.kind, severity.label)] += 1
                    if r.supply_low:
                        supply_counts[(p, c, r.kind)] += 1
            for p, c in sorted(centres):
                for status in AgentStatus:  # explicit zeros so alerts see a series go to 0
                    agents.add_metric([p, c, status.value], agent_counts[(p, c, status.value)])
                certs.add_metric([p, c], cert_counts[(p, c)])
            for (p, c, kind, state), n in sorted(device_counts.items()):
                assert state in DEVICE_STATES
                devices.add_metric([p, c, kind, state], n)
            for labels, n in sorted(problem_counts.items()):
                problems.add_metric(list(labels), n)
            for labels3, n in sorted(supply_counts.items()):
                supplies.add_metric(list(labels3), n)
        yield from (agents, devices, problems, supplies, certs)
