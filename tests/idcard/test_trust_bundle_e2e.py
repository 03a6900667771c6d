"""End to end: the gateway's trust bundle reaches an enrolled agent, with no file copied by hand.

Real processes throughout: ``centre-gateway run`` (identity on, SQLite and PostgreSQL), the
operator's ``centre-gateway trust import`` of a master list signed by ``openssl cms``,
``centre-agent enroll``, ``centre-agent run`` with only the ``pcsc`` backend and no
``csca_dir``, our pcscd + vpcd + the eMRTD emulator, and the CLI as the client.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from agent.drivers.idcard import mrz
from agent.drivers.idcard.trust_bundle import BUNDLE_FILE
from agent.simulator.emrtd import sample_cccd
from centre.agent.v1 import agent_pb2, agent_pb2_grpc
from centre.gateway.v1 import fleet_pb2, fleet_pb2_grpc
from tests.gateway.client import ADMIN_MD
from tests.gateway.conftest import postgres, store_spec  # noqa: F401 - shared fixtures
from tests.idcard.pcsc_testbed import REPO_ROOT, PcscdPeer, VpcdCardProcess, wait_for_card
from tests.idcard.test_pcsc_agent import pcsc_device
from tests.provisioning.conftest import CENTRE, pgateway, pgateway_factory  # noqa: F401 - shared fixtures
from tests.provisioning.master_list import openssl_master_list
from tests.provisioning.pki import ProvisioningGateway
from tests.support.agent_process import AgentProcess, start_agent

KEY = mrz.parse(sample_cccd().mrz).key()


def _read(agent: AgentProcess, device_id: str) -> dict[str, Any]:
    out = agent.cli("idcard", "read", "--device", device_id, "--doc-number", KEY.document_number,
                    "--birth-date", KEY.date_of_birth, "--expiry-date", KEY.date_of_expiry, "--no-face", "--json")
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _health(agent: AgentProcess) -> agent_pb2.AgentHealth:
    with grpc.insecure_channel(f"unix://{agent.socket}") as channel:
        reply: agent_pb2.AgentHealth = agent_pb2_grpc.AgentServiceStub(channel).GetHealth(
            agent_pb2.GetHealthRequest(), timeout=30)
    return reply


def _reported_version(gateway: ProvisioningGateway) -> str:
    """The trust bundle version the gateway last heard from the agent (waits for one)."""
    creds = grpc.ssl_channel_credentials(gateway.ca_file.read_bytes())
    with grpc.secure_channel(gateway.enroll_target, creds) as channel:
        fleet = fleet_pb2_grpc.FleetQueryStub(channel)
        for _ in range(200):
            agents = fleet.ListAgents(fleet_pb2.ListAgentsRequest(centre=CENTRE), metadata=ADMIN_MD,
                                      timeout=10).agents
            if agents and agents[0].health.trust_bundle_version:
                return str(agents[0].health.trust_bundle_version)
            time.sleep(0.1)
    raise AssertionError("no heartbeat with a trust bundle version reached the gateway")


def _held_version(state: Path, wanted: str, agent: AgentProcess) -> None:
    """Wait until the agent's saved bundle is ``wanted`` (it fetches every 0.5 s)."""
    path = state / BUNDLE_FILE
    for _ in range(200):
        if path.exists() and json.loads(path.read_text())["version"] == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"the agent never held bundle {wanted}; agent log: {agent.log()[-2000:]}")


def test_master_list_imported_at_the_gateway_makes_cards_valid_at_the_counter(
        pgateway: ProvisioningGateway, running_pcscd: PcscdPeer,  # noqa: F811 - fixture
        vpcd_card: Callable[..., VpcdCardProcess], tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    card = vpcd_card("--csca-out", str(pki / "card-csca.der"))
    wait_for_card(card.reader)
    card_csca = (pki / "card-csca.der").read_bytes()
    master_list = openssl_master_list(pki / "ml", [card_csca])

    imported = pgateway.cli("trust", "import", str(master_list)).stdout
    assert "2 csca entries, 2 new" in imported
    listing = json.loads(pgateway.cli("trust", "list", "--json").stdout)
    subjects = {e["subject"] for e in listing["entries"]}
    card_subject = x509.load_der_x509_certificate(card_csca).subject.rfc4514_string()
    assert card_subject in subjects
    assert all(e["source"] == f"master list {master_list.name}" and e["country"] == "VN"
               for e in listing["entries"])

    state = tmp_path / "agent" / "state"
    enrolled = subprocess.run([sys.executable, "-m", "agent", "enroll", "--gateway", pgateway.enroll_target,
                               "--token", pgateway.token(CENTRE), "--ca", str(pgateway.ca_file),
                               "--centre", CENTRE, "--state-dir", str(state)],
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                              cwd=REPO_ROOT, timeout=60)
    assert enrolled.returncode == 0, enrolled.stderr
    pgateway.cli("approve", "hn-bd-001-001")
    config = tmp_path / "agent.toml"
    # no csca_dir: the only CSCAs the agent has are the gateway's
    config.write_text("[idcard]\ntrust_refresh_seconds = 0.5\n\n[drivers.pcsc]\nenabled = true\n\n"
                      "[uplink]\nheartbeat_seconds = 0.5\nfirst_delay_max_seconds = 0.1\n")
    agent = start_agent(tmp_path / "agent", simulate=False, config=config)
    try:
        _held_version(state, listing["version"], agent)
        saved = state / BUNDLE_FILE
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        health = _health(agent)
        assert health.trust_bundle_version == listing["version"]
        assert health.trust_bundle_age_seconds < 60
        assert _reported_version(pgateway) == listing["version"]  # the uplink's heartbeat carries it
        device = pcsc_device(agent)
        result = _read(agent, device["id"])
        assert result["verification"]["passive"] == "valid", result["verification"]

        card_entry = next(e for e in listing["entries"] if e["subject"] == card_subject)
        pgateway.cli("trust", "remove", card_entry["fingerprint"][:16])
        after = json.loads(pgateway.cli("trust", "list", "--json").stdout)
        assert after["version"] != listing["version"]
        assert card_subject not in {e["subject"] for e in after["entries"]}
        _held_version(state, after["version"], agent)
        result = _read(agent, device["id"])
        assert result["verification"]["passive"] == "unknown_issuer", result["verification"]
    finally:
        agent.stop()
