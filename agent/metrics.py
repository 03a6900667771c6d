"""Agent metrics for Prometheus, served on a loopback port.

Labels are bounded: family, state, operation (an RPC name), outcome (a gRPC code
name). No device ids, no serials, never personal data.
"""

from __future__ import annotations

from collections import Counter as TallyCounter
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.domain.device import DeviceFamily, DeviceInfo, DeviceState


class _DeviceCollector(Collector):
    def __init__(self, devices: Callable[[], Iterable[DeviceInfo]]) -> None:
        self._devices = devices

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("centre_agent_devices", "Devices by family and state",
                                   labels=["family", "state"])
        counts = TallyCounter((d.family.value, d.state.value) for d in self._devices())
        for fam in DeviceFamily:
            for state in DeviceState:
                family.add_metric([fam.value, state.value], counts.get((fam.value, state.value), 0))
        yield family


class AgentMetrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call] # *_created series double the page for no use here
        self.registry = CollectorRegistry(auto_describe=True)
        self.operations = Counter("centre_agent_operations", "Operations by RPC and outcome",
                                  ["operation", "outcome"], registry=self.registry)
        self.latency = Histogram("centre_agent_operation_seconds", "Operation latency by RPC", ["operation"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                          10, 30, 60))
        self.leases = Gauge("centre_agent_leases_held", "Device leases held", registry=self.registry)
        self.event_clients = Gauge("centre_agent_event_clients", "Connected event-stream clients",
                                   registry=self.registry)
        self.backend_up = Gauge("centre_agent_backend_up", "1 when a driver backend started",
                                ["backend"], registry=self.registry)
        self.uplink_dropped = Counter("centre_agent_uplink_dropped", "Telemetry records dropped by the "
                                      "uplink buffer bounds", registry=self.registry)

    def watch_devices(self, devices: Callable[[], Iterable[DeviceInfo]]) -> None:
        self.registry.register(_DeviceCollector(devices))

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP server on a loopback address; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
