"""The gateway as a real process, over gRPC on loopback, on both storage backends."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from centre.gateway.v1 import fleet_pb2, reporting_pb2, reporting_pb2_grpc
from tests.gateway.client import (
    ADMIN_MD,
    AGENT_MD,
    GatewayClient,
    heartbeat,
    identity,
    printer,
    report,
    status_update,
)
from tests.gateway.gateway_process import REPO, GatewayProcess


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[GatewayClient]:
    c = GatewayClient(gateway.target)
    yield c
    c.close()


def test_heartbeat_then_report_then_query(client: GatewayClient) -> None:
    hb = client.reporting.Heartbeat(heartbeat(), metadata=AGENT_MD, timeout=10)
    assert hb.acked_seq == 0
    assert hb.snapshot_requested
    assert hb.server_time_ms > 0
    snapshot = reporting_pb2.DeviceUpdate(seq=1, observed_at_ms=1, snapshot=reporting_pb2.DeviceSnapshot(
        devices=[printer("p1"), printer("p2", toner=5)]))
    reply = client.reporting.ReportDevices(report(snapshot), metadata=AGENT_MD, timeout=10)
    assert (reply.acked_seq, reply.applied) == (1, 1)
    hb = client.reporting.Heartbeat(heartbeat(), metadata=AGENT_MD, timeout=10)
    assert hb.acked_seq == 1
    assert not hb.snapshot_requested
    [agent] = client.agents()
    assert agent.status == fleet_pb2.AGENT_STATUS_ONLINE
    assert agent.health.version == "0.1.0"
    assert sorted(d.device_id for d in agent.devices) == ["p1", "p2"]
    [problem] = client.problems()
    assert (problem.device_id, problem.code, problem.severity) == ("p2", "supply-low", reporting_pb2.SEVERITY_WARNING)
    summary = client.fleet.GetFleetSummary(fleet_pb2.GetFleetSummaryRequest(), metadata=ADMIN_MD, timeout=10)
    [centre] = summary.centres
    assert (centre.centre, centre.agents_online, centre.devices_total, centre.devices_with_problems) == \
        ("HN-BD-001", 1, 2, 1)
    hits = client.fleet.Search(fleet_pb2.SearchRequest(query="bd-001"), metadata=ADMIN_MD, timeout=10).hits
    assert hits
    assert hits[0].agent.agent_id == "hn-bd-001-pc01"


def test_replays_are_deduplicated(client: GatewayClient) -> None:
    batch = report(status_update(1, printer(state=reporting_pb2.DEVICE_STATE_READY)),
                   status_update(2, printer(state=reporting_pb2.DEVICE_STATE_ERROR, last_error="MEDIA_JAM")))
    assert client.reporting.ReportDevices(batch, metadata=AGENT_MD, timeout=10).applied == 2
    again = client.reporting.ReportDevices(batch, metadata=AGENT_MD, timeout=10)
    assert (again.acked_seq, again.applied) == (2, 0)
    [agent] = client.agents()
    assert agent.devices[0].state == reporting_pb2.DEVICE_STATE_ERROR


def _malformed() -> list[reporting_pb2.ReportDevicesRequest]:
    good = status_update(1, printer())
    bad_kind = printer()
    bad_kind.kind = "toaster"
    no_state = printer()
    no_state.state = reporting_pb2.DEVICE_STATE_UNSPECIFIED
    bad_error = printer(last_error="Nguyen Van A jammed it")
    bad_level = printer(toner=300)
    unordered = report(status_update(2, printer()), status_update(2, printer()))
    no_change = report(reporting_pb2.DeviceUpdate(seq=1))
    return [
        reporting_pb2.ReportDevicesRequest(epoch=1, updates=[good]),  # no agent
        report(good, agent=identity(agent_id="bad id with spaces")),
        report(good, agent=identity(centre="")),
        report(good, epoch=0),
        report(),
        report(status_update(1, bad_kind)), report(status_update(1, no_state)),
        report(status_update(1, bad_error)), report(status_update(1, bad_level)),
        unordered, no_change,
    ]


def test_malformed_reports_are_invalid_argument_without_state_change(client: GatewayClient) -> None:
    client.reporting.ReportDevices(report(status_update(1, printer("keep"))), metadata=AGENT_MD, timeout=10)
    before = client.agents()
    for request in _malformed():
        with pytest.raises(grpc.RpcError) as err:
            client.reporting.ReportDevices(request, metadata=AGENT_MD, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    assert [(a.agent.agent_id, [d.device_id for d in a.devices]) for a in client.agents()] == \
        [(a.agent.agent_id, [d.device_id for d in a.devices]) for a in before]
    # a bad batch is rejected whole: the valid first entry did not land either
    mixed = report(status_update(2, printer("new")), status_update(3, printer(toner=-5)))
    with pytest.raises(grpc.RpcError) as err:
        client.reporting.ReportDevices(mixed, metadata=AGENT_MD, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [d.device_id for d in client.agents()[0].devices] == ["keep"]


def test_oversized_report_is_invalid_argument(client: GatewayClient) -> None:
    big = [status_update(i + 1, reporting_pb2.DeviceStatus(
        device_id=f"d{i}", kind="printer", name="x" * 120, state=reporting_pb2.DEVICE_STATE_READY,
        supplies=[reporting_pb2.Supply(name="s" * 60, kind="toner", level_percent=50)] * 32)) for i in range(480)]
    request = report(*big)
    assert request.ByteSize() > 1024 * 1024
    with pytest.raises(grpc.RpcError) as err:
        client.reporting.ReportDevices(request, metadata=AGENT_MD, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert client.agents() == []


def test_heartbeat_validation_and_auth(client: GatewayClient) -> None:
    bad = heartbeat()
    bad.interval_seconds = 0
    with pytest.raises(grpc.RpcError) as err:
        client.reporting.Heartbeat(bad, metadata=AGENT_MD, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        client.reporting.Heartbeat(heartbeat(), metadata=(("authorization", "Bearer wrong"),), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        client.fleet.ListAgents(fleet_pb2.ListAgentsRequest(), metadata=AGENT_MD, timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert client.agents() == []


def test_admission_control_sheds_with_retry_hint(gateway_factory: Callable[..., GatewayProcess]) -> None:
    gw = gateway_factory(admission_rate=20.0, admission_burst=20.0)
    client = GatewayClient(gw.target)

    def call(i: int) -> tuple[grpc.StatusCode, str]:
        try:
            client.reporting.Heartbeat(heartbeat(identity(agent_id=f"pc{i}")), metadata=AGENT_MD, timeout=10)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            trailing: Any = exc.trailing_metadata()
            hints = [str(value) for key, value in trailing or () if key == "retry-after-ms"]
            return exc.code(), hints[0] if hints else ""

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(200)))
    client.close()
    codes = {code for code, _ in results}
    assert codes == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    hints = [int(h) for code, h in results if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert hints
    assert all(h > 0 for h in hints)
    metrics = httpx.get(gw.http + "/metrics", timeout=10, trust_env=False).text
    assert 'centre_gateway_shed_total{method="Heartbeat"}' in metrics


def test_heartbeats_flush_in_batches_and_metrics_have_bounded_labels(
        client: GatewayClient, gateway: GatewayProcess) -> None:
    for i in range(5):
        client.reporting.Heartbeat(heartbeat(identity(agent_id=f"pc-{i}", centre=f"HN-C{i % 2}")),
                                   metadata=AGENT_MD, timeout=10)
    client.reporting.ReportDevices(report(status_update(1, printer("p9", toner=0)), agent=identity("pc-0", "HN-C0")),
                                   metadata=AGENT_MD, timeout=10)
    assert len(client.agents()) == 5
    text = httpx.get(gateway.http + "/metrics", timeout=10, trust_env=False).text
    assert 'centre_fleet_agents{centre="HN-C0",province="HN",status="online"} 3.0' in text
    assert 'centre_fleet_devices_supply_low{centre="HN-C0",kind="printer",province="HN"} 1.0' in text
    assert "centre_gateway_rpc_seconds_bucket" in text
    assert "pc-0" not in text
    assert "p9" not in text


def test_cli_fleet_and_problems(client: GatewayClient, gateway: GatewayProcess) -> None:
    client.reporting.ReportDevices(report(status_update(1, printer("p1", reporting_pb2.DEVICE_STATE_ERROR,
                                                                   last_error="MEDIA_JAM"))),
                                   metadata=AGENT_MD, timeout=10)
    base = [sys.executable, "-m", "gateway.cli"]
    out = subprocess.run([*base, "fleet", "--json", "--config", str(gateway.config_path)], cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert json.loads(out)["centres"][0]["devices_with_problems"] == 1
    out = subprocess.run([*base, "devices", "--problem", "--json", "--config", str(gateway.config_path)], cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    [problem] = json.loads(out)["problems"]
    assert (problem["code"], problem["severity"], problem["device_id"]) == ("device-error", "error", "p1")
    text = subprocess.run([*base, "devices", "--problem", "--config", str(gateway.config_path)], cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=60).stdout
    assert "device-error" in text
    assert "HN-BD-001" in text


def test_workers_share_the_port_and_the_database(gateway_factory: Callable[..., GatewayProcess]) -> None:
    gw = gateway_factory(workers=2)
    [worker] = gw.worker_pids()
    channels = [grpc.insecure_channel(gw.target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(8)]
    try:
        for i, channel in enumerate(channels):
            stub = reporting_pb2_grpc.AgentReportingStub(channel)
            agent = identity(agent_id=f"w-{i}", centre=f"HN-W{i % 2}")
            stub.Heartbeat(heartbeat(agent), metadata=AGENT_MD, timeout=10)
            stub.ReportDevices(report(status_update(1, printer(f"p{i}")), agent=agent), metadata=AGENT_MD, timeout=10)
    finally:
        for channel in channels:
            channel.close()
    client = GatewayClient(gw.target)
    assert sorted(a.agent.agent_id for a in client.agents() if a.devices) == [f"w-{i}" for i in range(8)]
    client.close()
    gw.stop()
    assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text()
