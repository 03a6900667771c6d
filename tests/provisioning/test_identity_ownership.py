"""Enrolment as root leaves an identity the service user can read, and renewal keeps it so.

The README has the installer run ``centre-agent enroll`` as root while the service runs as
``centre-agent``, the owner of the state directory. Here ``nobody`` plays the service user:
the state directory is handed to it, enrolment runs as root (this test process), and the
agent then runs as ``nobody`` and must report to the gateway with that identity.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc

from agent.provisioning.enroll import renew_sync
from centre.gateway.v1 import fleet_pb2, fleet_pb2_grpc
from tests.gateway.client import ADMIN_MD
from tests.gateway.gateway_process import REPO
from tests.provisioning.conftest import CENTRE, SERVICE_USER
from tests.provisioning.pki import ProvisioningGateway
from tests.support.agent_process import as_user, start_agent

FILES = ("ca.pem", "cert.pem", "identity.json", "key.pem")


def _service_ids() -> tuple[int, int]:
    account = pwd.getpwnam(SERVICE_USER)
    return account.pw_uid, account.pw_gid


def _owner_and_modes(identity: Path) -> dict[str, tuple[int, int, int]]:
    entries = {".": identity, **{p.name: p for p in identity.iterdir()}}
    return {name: (p.lstat().st_uid, p.lstat().st_gid, stat.S_IMODE(p.lstat().st_mode)) for name, p in entries.items()}


def _expected(uid: int, gid: int) -> dict[str, tuple[int, int, int]]:
    return {".": (uid, gid, 0o700), **{name: (uid, gid, 0o600) for name in FILES}}


def _enroll_cli(gw: ProvisioningGateway, state: Path, token: str, *prefix: str,
                ca: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "agent", "enroll", "--gateway", gw.enroll_target,
                           "--token", token, "--ca", str(ca or gw.ca_file), "--centre", CENTRE,
                           "--state-dir", str(state)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO,
                          timeout=60)


def _reported_devices(gw: ProvisioningGateway) -> int:
    creds = grpc.ssl_channel_credentials(gw.ca_file.read_bytes())
    with grpc.secure_channel(gw.enroll_target, creds) as channel:
        fleet = fleet_pb2_grpc.FleetQueryStub(channel)
        for _ in range(150):
            agents = fleet.ListAgents(fleet_pb2.ListAgentsRequest(centre=CENTRE), metadata=ADMIN_MD,
                                      timeout=10).agents
            if agents and len(agents[0].devices) >= 5:
                return len(agents[0].devices)
            time.sleep(0.2)
    return 0


def test_root_enrolment_gives_the_identity_to_the_service_user_who_then_reports(
        pgateway: ProvisioningGateway, service_home: Path) -> None:
    state = service_home / "agent" / "state"
    enrolled = _enroll_cli(pgateway, state, pgateway.token(CENTRE))
    assert enrolled.returncode == 0, enrolled.stderr
    uid, gid = _service_ids()
    assert _owner_and_modes(state / "identity") == _expected(uid, gid)
    # no staging or old directory left behind; the attestation key beside the identity, also the service's
    assert sorted(p.name for p in state.iterdir()) == ["attestation-key.pem", "identity"]
    key = (state / "attestation-key.pem").lstat()
    assert (key.st_uid, key.st_gid, stat.S_IMODE(key.st_mode)) == (uid, gid, 0o600)
    pgateway.cli("approve", "hn-bd-001-001")
    config = service_home / "agent.toml"
    config.write_text("[uplink]\nheartbeat_seconds = 0.5\ndiff_seconds = 0.2\nfirst_delay_max_seconds = 0.1\n")
    config.chmod(0o644)
    agent = start_agent(service_home / "agent", config=config, user=SERVICE_USER)
    try:
        assert _reported_devices(pgateway) >= 5, f"the agent did not report: {agent.log()[-2000:]}"
    finally:
        agent.stop()
    assert "PermissionError" not in agent.log()


def test_enrolment_as_the_service_user_itself(pgateway: ProvisioningGateway, service_home: Path) -> None:
    state = service_home / "agent" / "state"
    ca = service_home / "gateway-ca.pem"
    shutil.copyfile(pgateway.ca_file, ca)
    ca.chmod(0o644)
    enrolled = _enroll_cli(pgateway, state, pgateway.token(CENTRE), *as_user(SERVICE_USER), ca=ca)
    assert enrolled.returncode == 0, enrolled.stderr
    assert _owner_and_modes(state / "identity") == _expected(*_service_ids())


def test_renewal_by_root_keeps_the_service_owner(pgateway: ProvisioningGateway, service_home: Path) -> None:
    from agent.provisioning.identity import IdentityStore

    state = service_home / "agent" / "state"
    assert _enroll_cli(pgateway, state, pgateway.token(CENTRE)).returncode == 0
    store = IdentityStore(state)
    before = store.cert_pem()
    renew_sync(store)  # as root, like `centre-agent enroll` renewing an expired certificate
    assert store.cert_pem() != before
    assert _owner_and_modes(state / "identity") == _expected(*_service_ids())


def test_renewal_by_the_running_service_keeps_its_files_private(
        pgateway: ProvisioningGateway, service_home: Path) -> None:
    state = service_home / "agent" / "state"
    assert _enroll_cli(pgateway, state, pgateway.token(CENTRE)).returncode == 0
    renewed = subprocess.run(
        [*as_user(SERVICE_USER), sys.executable, "-c",
         "import sys; from pathlib import Path; from agent.provisioning.enroll import renew_sync; "
         "from agent.provisioning.identity import IdentityStore; renew_sync(IdentityStore(Path(sys.argv[1])))",
         str(state)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO, timeout=60)
    assert renewed.returncode == 0, renewed.stderr
    assert _owner_and_modes(state / "identity") == _expected(*_service_ids())


def test_enrol_again_hands_a_root_owned_identity_back(pgateway: ProvisioningGateway, service_home: Path) -> None:
    """An identity written by an earlier version (root-owned, the service locked out) is repaired
    by re-running the README's command."""
    state = service_home / "agent" / "state"
    assert _enroll_cli(pgateway, state, pgateway.token(CENTRE)).returncode == 0
    identity = state / "identity"
    for path in (identity, *identity.iterdir()):
        os.chown(path, 0, 0)
    (identity / "ca.pem").chmod(0o644)
    again = _enroll_cli(pgateway, state, "used-up")
    assert again.returncode == 0, again.stderr
    assert "already enrolled as hn-bd-001-001" in again.stdout
    assert "handed identity, ca.pem, cert.pem, identity.json, key.pem back to the service user" in again.stdout
    assert _owner_and_modes(identity) == _expected(*_service_ids())
