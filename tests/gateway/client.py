"""A small gRPC client for gateway tests: builds valid reports and calls the services."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from centre.gateway.v1 import fleet_pb2, fleet_pb2_grpc, reporting_pb2, reporting_pb2_grpc
from tests.gateway.gateway_process import ADMIN_TOKEN, AGENT_TOKEN

AGENT_MD = (("authorization", f"Bearer {AGENT_TOKEN}"),)
ADMIN_MD = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


def identity(agent_id: str = "hn-bd-001-pc01", centre: str = "HN-BD-001", province: str = "HN",
             ) -> reporting_pb2.AgentIdentity:
    return reporting_pb2.AgentIdentity(agent_id=agent_id, province=province, centre=centre)


State: TypeAlias = reporting_pb2.DeviceState.ValueType


def printer(device_id: str = "printer-1", state: State = reporting_pb2.DEVICE_STATE_READY, *,
            toner: int = 80, last_error: str = "") -> reporting_pb2.DeviceStatus:
    return reporting_pb2.DeviceStatus(
        device_id=device_id, kind="printer", backend="ipp", name="HP LaserJet M404", vendor="HP",
        model="M404", state=state, last_error=last_error,
        supplies=[reporting_pb2.Supply(name="Black Toner", kind="toner", level_percent=toner, color="black")],
        counters={"pages_printed": 42})


def heartbeat(agent: reporting_pb2.AgentIdentity | None = None, epoch: int = 1) -> reporting_pb2.HeartbeatRequest:
    return reporting_pb2.HeartbeatRequest(
        agent=agent or identity(), interval_seconds=60, epoch=epoch, last_seq=0,
        health=reporting_pb2.AgentHealth(version="0.1.0", uptime_seconds=5, host="pc01", config_hash="abc"))


def report(*updates: reporting_pb2.DeviceUpdate, agent: reporting_pb2.AgentIdentity | None = None,
           epoch: int = 1) -> reporting_pb2.ReportDevicesRequest:
    return reporting_pb2.ReportDevicesRequest(agent=agent or identity(), epoch=epoch, updates=list(updates))


def status_update(seq: int, status: reporting_pb2.DeviceStatus) -> reporting_pb2.DeviceUpdate:
    return reporting_pb2.DeviceUpdate(seq=seq, observed_at_ms=1_700_000_000_000 + seq, status=status)


class GatewayClient:
    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.reporting = reporting_pb2_grpc.AgentReportingStub(self.channel)
        self.fleet = fleet_pb2_grpc.FleetQueryStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def agents(self, centre: str = "") -> list[fleet_pb2.AgentRecord]:
        reply = self.fleet.ListAgents(fleet_pb2.ListAgentsRequest(centre=centre), metadata=ADMIN_MD, timeout=10)
        return list(reply.agents)

    def problems(self) -> list[fleet_pb2.Problem]:
        return list(self.fleet.ListProblems(fleet_pb2.ListProblemsRequest(), metadata=ADMIN_MD, timeout=10).problems)
