"""A provisioning-enabled gateway process and helpers that act as a counter PC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc

from agent.provisioning.identity import IdentityStore, MachineFacts
from centre.gateway.v1 import enrollment_pb2, enrollment_pb2_grpc, reporting_pb2_grpc
from tests.gateway.gateway_process import REPO, GatewayProcess


class ProvisioningGateway(GatewayProcess):
    """``centre-gateway run`` with ``[identity] enabled``: enrolment port + mTLS reporting port."""

    def __init__(self, workdir: Path, *, lifetime_days: float = 30.0, grace_days: float = 30.0,
                 **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        self.state_dir = workdir / "state"
        self.lifetime_days = lifetime_days
        self.grace_days = grace_days
        self.enroll_port = 0

    @property
    def enroll_target(self) -> str:
        return f"127.0.0.1:{self.enroll_port}"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "ca" / "ca.pem"

    def _write_config(self) -> None:
        super()._write_config()
        with self.config_path.open("a") as f:
            f.write(f"""
[identity]
enabled = true
enroll_listen = "127.0.0.1:{self.enroll_port}"
state_dir = "{self.state_dir}"
server_names = ["127.0.0.1", "localhost"]
cert_lifetime_days = {self.lifetime_days}
grace_days = {self.grace_days}
access_refresh_seconds = 0.2
""")

    def start(self, timeout: float = 60.0) -> None:
        super().start(timeout)
        self.enroll_port = self._ready_fields["enroll"]
        self._write_config()  # pin the enrolment port too

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        result = subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--config", str(self.config_path)],
                                capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"centre-gateway {args}: {result.returncode} {result.stderr}")
        return result

    def token(self, centre: str, uses: int = 1, ttl: str = "8h") -> str:
        out = self.cli("token", "create", "--centre", centre, "--uses", str(uses), "--ttl", ttl).stdout
        return out.splitlines()[0]

    def agents(self, *extra: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.cli("agents", "--json", *extra).stdout)["agents"]
        return rows


def facts(n: int, serial: str = "") -> MachineFacts:
    return MachineFacts(f"{n:032x}", f"counter-pc-{n:02d}", serial)


def mtls_channel(store: IdentityStore, target: str) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=store.ca_pem(), private_key=store.key_pem(),
                                         certificate_chain=store.cert_pem())
    return grpc.secure_channel(target, creds)


def ping(store: IdentityStore, target: str) -> enrollment_pb2.PingResponse:
    with mtls_channel(store, target) as channel:
        reply: enrollment_pb2.PingResponse = enrollment_pb2_grpc.AgentCheckStub(channel).Ping(
            enrollment_pb2.PingRequest(), timeout=10)
        return reply


def reporting_stub(channel: grpc.Channel) -> reporting_pb2_grpc.AgentReportingStub:
    return reporting_pb2_grpc.AgentReportingStub(channel)
