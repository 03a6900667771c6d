"""The whole path: a simulated agent process with [uplink] configured reports to a gateway process."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.gateway.client import GatewayClient
from tests.gateway.gateway_process import AGENT_TOKEN, GatewayProcess
from tests.support.agent_process import start_agent


def test_agent_devices_reach_the_gateway_without_personal_data(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path / "gw")
    gateway.start()
    try:
        config = tmp_path / "agent.toml"
        config.write_text(f"""
[uplink]
gateway = "{gateway.target}"
token = "{AGENT_TOKEN}"
agent_id = "hn-bd-001-pc07"
province = "HN"
centre = "HN-BD-001"
heartbeat_seconds = 0.5
diff_seconds = 0.2
first_delay_max_seconds = 0.1
""")
        agent = start_agent(tmp_path / "agent", config=config)
        try:
            read = agent.cli("idcard", "read", "--doc-number", "203004567", "--birth-date", "900115",
                             "--expiry-date", "300115", "--json")
            assert read.returncode == 0, read.stderr
            card = json.loads(read.stdout)
            client = GatewayClient(gateway.target)
            try:
                record = None
                for _ in range(100):
                    agents = client.agents("HN-BD-001")
                    if agents and len(agents[0].devices) >= 5:
                        record = agents[0]
                        break
                    time.sleep(0.2)
                assert record is not None, "the agent's devices never reached the gateway"
                assert record.agent.agent_id == "hn-bd-001-pc07"
                assert len(record.devices) >= 5
            finally:
                client.close()
        finally:
            agent.stop()
        # the canary: nothing the card said is in the gateway's database or log
        blobs = [p.read_bytes() for p in (tmp_path / "gw").rglob("*") if p.is_file()]
        for secret in (card["full_name"], card["id_number"], card["document_number"]):
            assert all(secret.encode() not in blob for blob in blobs)
    finally:
        gateway.stop()
