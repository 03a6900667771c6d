"""Installer's path: centre add -> token -> enroll -> the agent reports over mTLS -> devices at the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc

from centre.gateway.v1 import fleet_pb2, fleet_pb2_grpc
from tests.gateway.client import ADMIN_MD
from tests.gateway.gateway_process import REPO
from tests.provisioning.conftest import CENTRE
from tests.provisioning.pki import ProvisioningGateway
from tests.support.agent_process import start_agent


def test_enrolled_agent_reports_devices_over_mtls(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    token = pgateway.token(CENTRE)
    state = tmp_path / "agent" / "state"
    enrolled = subprocess.run([sys.executable, "-m", "agent", "enroll", "--gateway", pgateway.enroll_target,
                               "--token", token, "--ca", str(pgateway.ca_file), "--centre", CENTRE,
                               "--state-dir", str(state)],
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO,
                              timeout=60)
    assert enrolled.returncode == 0, enrolled.stderr
    assert "status pending" in enrolled.stdout
    pgateway.cli("approve", "hn-bd-001-001")
    config = tmp_path / "agent.toml"
    # no gateway, token or names in the config: they all come from the enrolled identity
    config.write_text("""
[uplink]
heartbeat_seconds = 0.5
diff_seconds = 0.2
first_delay_max_seconds = 0.1
""")
    agent = start_agent(tmp_path / "agent", config=config)
    try:
        creds = grpc.ssl_channel_credentials(pgateway.ca_file.read_bytes())
        with grpc.secure_channel(pgateway.enroll_target, creds) as channel:
            fleet = fleet_pb2_grpc.FleetQueryStub(channel)
            record = None
            for _ in range(150):
                agents = fleet.ListAgents(fleet_pb2.ListAgentsRequest(centre=CENTRE), metadata=ADMIN_MD,
                                          timeout=10).agents
                if agents and len(agents[0].devices) >= 5:
                    record = agents[0]
                    break
                time.sleep(0.2)
        assert record is not None, f"devices never reached the gateway; agent log: {agent.log()[-2000:]}"
        assert (record.agent.agent_id, record.agent.province) == ("hn-bd-001-001", "HN")
        assert record.health.certificate_not_after > time.time()
    finally:
        agent.stop()
    # the enrolment token is in no file and no log of either side
    files = [p for root in (tmp_path / "agent", pgateway.workdir) for p in root.rglob("*") if p.is_file()]
    assert files
    assert all(token.encode() not in p.read_bytes() for p in files)
