"""Enrolment against a real gateway process, both storage backends: the happy path and the attacks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.errors import ForbiddenError, UnauthenticatedError
from agent.provisioning.enroll import GatewayUnreachableError, enroll
from agent.provisioning.identity import IdentityStore, key_pem
from centre.gateway.v1 import enrollment_pb2, enrollment_pb2_grpc
from tests.gateway.client import heartbeat, identity
from tests.gateway.gateway_process import REPO
from tests.gateway.postgres_server import free_port
from tests.provisioning.conftest import CENTRE
from tests.provisioning.pki import ProvisioningGateway, facts, mtls_channel, ping, reporting_stub


def _enroll(gw: ProvisioningGateway, state: Path, token: str, n: int = 1, serial: str = "",
            centre: str = "") -> IdentityStore:
    store = IdentityStore(state)
    enroll(store, gw.enroll_target, token, facts(n, serial), ca_file=str(gw.ca_file), expected_centre=centre)
    return store


def test_cli_enrol_is_idempotent_wipes_the_token_file_and_keeps_files_private(
        pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(pgateway.token(CENTRE, uses=1) + "\n")
    state = tmp_path / "agent-state"
    args = [sys.executable, "-m", "agent", "enroll", "--gateway", pgateway.enroll_target,
            "--token-file", str(token_file), "--ca", str(pgateway.ca_file), "--state-dir", str(state)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "enrolled as hn-bd-001-001 in centre HN-BD-001" in first.stdout
    assert not token_file.exists()
    ident = state / "identity"
    assert stat.S_IMODE(ident.stat().st_mode) == 0o700
    for name in ("key.pem", "cert.pem", "ca.pem", "identity.json"):
        assert stat.S_IMODE((ident / name).stat().st_mode) == 0o600
    # the token is nowhere in the state dir
    token_text = "cen1_"
    assert all(token_text not in p.read_text() for p in ident.iterdir())
    # a second run (token used up, file gone) says it is already enrolled and succeeds
    again = subprocess.run([*args[:6], "--token", "used-up", *args[8:]], capture_output=True, text=True, env=env,
                           cwd=REPO, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "already enrolled as hn-bd-001-001" in again.stdout
    # the gateway's generated CA key is private too
    assert stat.S_IMODE((pgateway.state_dir / "ca" / "ca.key").stat().st_mode) == 0o600
    rows = pgateway.agents()
    assert [(r["agent_id"], r["status"], r["hostname"]) for r in rows] == [
        ("hn-bd-001-001", "pending", os.uname().nodename[:253])]


def test_expired_token_refused(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    token = pgateway.token(CENTRE, ttl="1s")
    time.sleep(1.2)
    with pytest.raises(ForbiddenError, match="expired"):
        _enroll(pgateway, tmp_path / "a", token)
    assert not (tmp_path / "a" / "identity").exists()


def test_used_up_token_refused(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    token = pgateway.token(CENTRE, uses=2)
    _enroll(pgateway, tmp_path / "a", token, 1)
    _enroll(pgateway, tmp_path / "b", token, 2)
    with pytest.raises(ForbiddenError, match="no uses left"):
        _enroll(pgateway, tmp_path / "c", token, 3)


def test_revoked_and_unknown_tokens_refused(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    out = pgateway.cli("token", "create", "--centre", CENTRE, "--uses", "5").stdout.splitlines()
    token, token_id = out[0], out[1].split()[2].rstrip(":")
    pgateway.cli("token", "revoke", token_id)
    with pytest.raises(ForbiddenError, match="revoked"):
        _enroll(pgateway, tmp_path / "a", token)
    with pytest.raises(UnauthenticatedError, match="unknown enrolment token"):
        _enroll(pgateway, tmp_path / "a", token + "x")


def test_foreign_centre_token_refused(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    other = pgateway.token("HN-CG-002", uses=5)
    with pytest.raises(ForbiddenError, match="another centre"):
        _enroll(pgateway, tmp_path / "a", other, centre=CENTRE)
    # a PC pre-registered for Ba Dinh cannot be enrolled with Cau Giay's token
    pgateway.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-BD-0001")
    with pytest.raises(ForbiddenError, match="pre-registered for another centre"):
        _enroll(pgateway, tmp_path / "a", other, serial="SN-BD-0001")
    assert pgateway.agents() == []


def test_gateway_ignores_the_csr_subject(pgateway: ProvisioningGateway) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    forged = (x509.CertificateSigningRequestBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hn-cg-002-001"),
                                       x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "HN-CG-002")]))
              .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                  "urn:centre-agent:HN:HN-CG-002:hn-cg-002-001")]), critical=False)
              .sign(key, hashes.SHA256()))
    request = enrollment_pb2.EnrollRequest(
        token=pgateway.token(CENTRE), csr_der=forged.public_bytes(serialization.Encoding.DER),
        machine=enrollment_pb2.MachineIdentity(machine_id="ab" * 16, hostname="pc"))
    creds = grpc.ssl_channel_credentials(pgateway.ca_file.read_bytes())
    with grpc.secure_channel(pgateway.enroll_target, creds) as channel:
        issued = enrollment_pb2_grpc.EnrollmentStub(channel).Enroll(request, timeout=10).identity
    cert = x509.load_pem_x509_certificate(issued.certificate_pem)
    assert issued.agent_id == "hn-bd-001-001"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hn-bd-001-001"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == CENTRE
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [s.value for s in sans] == ["urn:centre-agent:HN:HN-BD-001:hn-bd-001-001"]


def test_replayed_enrolment_refused_and_costs_no_use(pgateway: ProvisioningGateway) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    token = pgateway.token(CENTRE, uses=2)
    request = enrollment_pb2.EnrollRequest(token=token, csr_der=csr,
                                           machine=enrollment_pb2.MachineIdentity(machine_id="cd" * 16))
    with grpc.secure_channel(pgateway.enroll_target, grpc.ssl_channel_credentials(pgateway.ca_file.read_bytes())) \
            as channel:
        stub = enrollment_pb2_grpc.EnrollmentStub(channel)
        stub.Enroll(request, timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Enroll(request, timeout=10)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "already enrolled" in (refused.value.details() or "")
    assert [r["flags"] for r in pgateway.agents()] == [["clone-key"]]


def test_unreachable_gateway_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with pytest.raises(GatewayUnreachableError, match="cannot reach the gateway"):
        enroll(IdentityStore(state), f"127.0.0.1:{free_port()}", "cen1_whatever", facts(1), timeout=3)
    assert list(state.iterdir()) == []


def test_cli_reports_unreachable_gateway(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = subprocess.run([sys.executable, "-m", "agent", "enroll", "--gateway", f"127.0.0.1:{free_port()}",
                             "--token", "cen1_x", "--state-dir", str(state)], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO, timeout=60)
    assert result.returncode == 1
    assert "cannot reach the gateway" in result.stderr
    assert "nothing was written" in result.stderr
    assert not (state / "identity").exists()


def test_pending_then_approved_then_revoked(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    store = _enroll(pgateway, tmp_path / "a", pgateway.token(CENTRE))
    assert [r["agent_id"] for r in pgateway.agents("--pending")] == ["hn-bd-001-001"]
    with pytest.raises(grpc.RpcError) as pending:
        ping(store, pgateway.target)
    assert pending.value.code() is grpc.StatusCode.PERMISSION_DENIED
    pgateway.cli("approve", "hn-bd-001-001")
    time.sleep(0.5)  # access list refresh (0.2 s in tests)
    assert pgateway.agents("--pending") == []
    reply = ping(store, pgateway.target)
    assert (reply.agent_id, reply.centre, reply.province) == ("hn-bd-001-001", CENTRE, "HN")
    pgateway.cli("revoke", "hn-bd-001-001")
    time.sleep(0.5)
    with pytest.raises(grpc.RpcError) as revoked:
        ping(store, pgateway.target)
    assert revoked.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "revoked" in (revoked.value.details() or "")


def test_preregistered_pc_is_active_and_identity_comes_from_the_certificate(
        pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    pgateway.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-BD-0002")
    store = _enroll(pgateway, tmp_path / "a", pgateway.token(CENTRE), serial="SN-BD-0002")
    assert store.info().status == "active"
    with mtls_channel(store, pgateway.target) as channel:
        # the request claims to be someone else in another centre: the certificate wins
        reply = reporting_stub(channel).Heartbeat(heartbeat(identity("hn-cg-002-009", "HN-CG-002")), timeout=10)
    assert reply.server_time_ms > 0
    time.sleep(0.5)  # heartbeat flush (0.2 s)
    from centre.gateway.v1 import fleet_pb2, fleet_pb2_grpc
    from tests.gateway.client import ADMIN_MD
    with grpc.secure_channel(pgateway.enroll_target, grpc.ssl_channel_credentials(pgateway.ca_file.read_bytes())) \
            as channel:
        agents = fleet_pb2_grpc.FleetQueryStub(channel).ListAgents(fleet_pb2.ListAgentsRequest(), metadata=ADMIN_MD,
                                                                   timeout=10).agents
    assert [(a.agent.agent_id, a.agent.centre) for a in agents] == [("hn-bd-001-001", CENTRE)]


def test_reporting_port_requires_a_certificate_from_our_ca(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    # no client certificate at all
    creds = grpc.ssl_channel_credentials(pgateway.ca_file.read_bytes())
    with grpc.secure_channel(pgateway.target, creds) as channel, pytest.raises(grpc.RpcError) as anonymous:
        reporting_stub(channel).Heartbeat(heartbeat(), timeout=10)
    assert anonymous.value.code() is grpc.StatusCode.UNAVAILABLE
    # a certificate naming an agent of this gateway, issued by another CA
    from gateway.ca import CertificateAuthority
    rogue = CertificateAuthority.load_or_create(tmp_path / "rogue-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    import datetime as dt
    cert = rogue.sign_agent(csr, "hn-bd-001-001", CENTRE, "HN", dt.timedelta(days=1))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    creds = grpc.ssl_channel_credentials(pgateway.ca_file.read_bytes(), key_pem(key), cert_pem)
    with grpc.secure_channel(pgateway.target, creds) as channel, pytest.raises(grpc.RpcError) as foreign:
        reporting_stub(channel).Heartbeat(heartbeat(), timeout=10)
    assert foreign.value.code() is grpc.StatusCode.UNAVAILABLE
    # ... nor can it be renewed into a real one
    store = IdentityStore(tmp_path / "rogue-agent")
    store.install(key, cert_pem, pgateway.ca_file.read_bytes(),
                  __import__("agent.provisioning.identity", fromlist=["IdentityInfo"]).IdentityInfo(
                      "hn-bd-001-001", CENTRE, "HN", pgateway.target, pgateway.enroll_target, "active"))
    from agent.provisioning.enroll import renew_sync
    with pytest.raises(UnauthenticatedError, match="not issued by this gateway"):
        renew_sync(store)


def test_clone_detection_by_machine_id(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    pgateway.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-1")
    token = pgateway.token(CENTRE, uses=3)
    first = _enroll(pgateway, tmp_path / "a", token, 7, serial="SN-1")
    # a disk image of that PC boots on another host: same machine id
    second = _enroll(pgateway, tmp_path / "b", token, 7, serial="SN-1")
    assert first.info().status == "active"
    assert second.info().status == "pending"
    rows = {r["agent_id"]: r for r in pgateway.agents()}
    assert rows["hn-bd-001-001"]["flags"] == ["clone-suspect"]
    assert rows["hn-bd-001-002"]["flags"] == ["clone-of:hn-bd-001-001"]
    assert rows["hn-bd-001-002"]["status"] == "pending"
    # the original keeps working, the clone does not report until an operator decides
    assert ping(first, pgateway.target).agent_id == "hn-bd-001-001"
    with pytest.raises(grpc.RpcError):
        ping(second, pgateway.target)


def test_fleet_cli_uses_the_enrolment_port_when_identity_is_on(pgateway: ProvisioningGateway) -> None:
    out = pgateway.cli("fleet", "--json")
    assert '"centres": []' in out.stdout


def test_concurrent_enrolments_cannot_overspend_a_token(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    token = pgateway.token(CENTRE, uses=2)

    def attempt(n: int) -> str:
        try:
            _enroll(pgateway, tmp_path / f"pc{n}", token, 20 + n)
            return "ok"
        except ForbiddenError as exc:
            return exc.message

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    assert results.count("ok") == 2
    assert sorted(r for r in results if r != "ok") == ["gateway refused: enrolment token has no uses left"] * 4
    assert len(pgateway.agents()) == 2
