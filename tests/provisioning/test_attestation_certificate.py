"""The attestation key's certificate comes from the gateway CA at enrolment and renewal, so a portal's
backend verifies card reads with the CA certificate alone (real gateway process, both storage backends)."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.api.attestation import Attestor
from agent.attestation_verify import ATTESTATION_EKU, VerifiedRead, verify_card_read
from agent.errors import AttestationRejectedError
from agent.provisioning import attestation_key
from agent.provisioning.enroll import enroll, renew_sync
from agent.provisioning.identity import IdentityStore, MachineFacts, make_csr, new_key
from centre.agent.v1 import idcard_pb2
from centre.gateway.v1 import enrollment_pb2, enrollment_pb2_grpc
from tests.gateway.client import heartbeat
from tests.provisioning.conftest import CENTRE
from tests.provisioning.pki import ProvisioningGateway, facts, ping, reporting_stub
from tests.web.attestation_pki import PORTAL, sample_read

NONCE = b"backend-nonce-41"


def _enrolled(gw: ProvisioningGateway, state: Path, serial: str = "") -> IdentityStore:
    store = IdentityStore(state)
    enroll(store, gw.enroll_target, gw.token(CENTRE), facts(1, serial), ca_file=str(gw.ca_file))
    return store


def _attestation_cert(store: IdentityStore) -> x509.Certificate:
    return x509.load_pem_x509_certificate((store.dir / attestation_key.CERT_FILE).read_bytes())


def _verify(gw: ProvisioningGateway, att: idcard_pb2.Attestation) -> VerifiedRead:
    """What a portal backend does: the province gateway's CA certificate is all it holds."""
    return verify_card_read(att.payload, att.signature, list(att.certificate_chain),
                            ca_certificate=gw.ca_file.read_bytes(), expected_challenge=NONCE,
                            expected_origin=PORTAL, max_age=dt.timedelta(minutes=5))


def _spki(key: object) -> bytes:
    assert hasattr(key, "public_bytes")
    der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def test_an_active_pc_attests_under_the_gateway_ca(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    pgateway.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-BD-0007")
    store = _enrolled(pgateway, tmp_path / "state", serial="SN-BD-0007")
    cert = _attestation_cert(store)
    assert stat.S_IMODE((store.dir / attestation_key.CERT_FILE).stat().st_mode) == 0o600
    # a second key: certified for attestation only, apart from the identity key and its usage
    key = attestation_key.load_or_create(store.state_dir / attestation_key.KEY_FILE)
    assert _spki(cert.public_key()) == _spki(key.public_key()) != _spki(store.key().public_key())
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ATTESTATION_EKU]
    read = _verify(pgateway, Attestor(store.state_dir).attest(sample_read(), PORTAL, NONCE))
    assert (read.enrolled, read.agent_id, read.centre, read.province) == (True, "hn-bd-001-001", CENTRE, "HN")


def test_the_attestation_certificate_is_no_identity(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    pgateway.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-BD-0008")
    store = _enrolled(pgateway, tmp_path / "state", serial="SN-BD-0008")
    assert ping(store, pgateway.target).agent_id == "hn-bd-001-001"  # the identity works
    creds = grpc.ssl_channel_credentials(
        root_certificates=store.ca_pem(),
        private_key=(store.state_dir / attestation_key.KEY_FILE).read_bytes(),
        certificate_chain=(store.dir / attestation_key.CERT_FILE).read_bytes())
    with grpc.secure_channel(pgateway.target, creds) as channel, pytest.raises(grpc.RpcError) as refused:
        reporting_stub(channel).Heartbeat(heartbeat(), timeout=10)
    assert refused.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE)


def test_the_gateway_refuses_the_identity_key_as_attestation_key(pgateway: ProvisioningGateway) -> None:
    key = new_key()
    csr = make_csr(key, MachineFacts("f" * 32, "pc", ""))
    request = enrollment_pb2.EnrollRequest(token=pgateway.token(CENTRE), csr_der=csr, attestation_csr_der=csr,
                                           machine=enrollment_pb2.MachineIdentity(machine_id="f" * 32, hostname="pc"))
    with grpc.secure_channel(pgateway.enroll_target, grpc.ssl_channel_credentials(pgateway.ca_file.read_bytes())) \
            as channel, pytest.raises(grpc.RpcError) as refused:
        enrollment_pb2_grpc.EnrollmentStub(channel).Enroll(request, timeout=10)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "identity key" in (refused.value.details() or "")


def test_a_pending_pc_attests_self_signed_until_approved_and_renewed(pgateway: ProvisioningGateway,
                                                                     tmp_path: Path) -> None:
    store = _enrolled(pgateway, tmp_path / "state")
    assert store.info().status == "pending"
    assert not store.has_attestation_certificate()
    attestor = Attestor(store.state_dir)
    att = attestor.attest(sample_read(), PORTAL, NONCE)
    with pytest.raises(AttestationRejectedError) as refused:
        _verify(pgateway, att)
    assert refused.value.reason == "SELF_SIGNED"
    pgateway.cli("approve", "hn-bd-001-001")
    renew_sync(store)
    assert store.has_attestation_certificate()
    assert _verify(pgateway, attestor.attest(sample_read(), PORTAL, NONCE)).enrolled  # same key, now certified


def test_renewal_renews_the_attestation_certificate(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    pgateway.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-BD-0009")
    store = _enrolled(pgateway, tmp_path / "state", serial="SN-BD-0009")
    before = _attestation_cert(store)
    renew_sync(store)
    after = _attestation_cert(store)
    assert after.serial_number != before.serial_number
    assert after.not_valid_after_utc >= before.not_valid_after_utc
    assert _spki(after.public_key()) == _spki(before.public_key())  # the key stays: backends may pin it
    assert _verify(pgateway, Attestor(store.state_dir).attest(sample_read(), PORTAL, NONCE)).enrolled


def test_enrol_again_fetches_a_missing_attestation_certificate(pgateway: ProvisioningGateway,
                                                               tmp_path: Path) -> None:
    """A PC enrolled by a version without attestation certificates gets one from `centre-agent enroll`."""
    pgateway.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-BD-0010")
    store = _enrolled(pgateway, tmp_path / "state", serial="SN-BD-0010")
    (store.dir / attestation_key.CERT_FILE).unlink()
    outcome = enroll(store, pgateway.enroll_target, "used-up", facts(1, "SN-BD-0010"), ca_file=str(pgateway.ca_file))
    assert outcome.already
    assert "attestation certificate issued" in outcome.detail
    assert _verify(pgateway, Attestor(store.state_dir).attest(sample_read(), PORTAL, NONCE)).enrolled


async def test_the_running_agent_fetches_its_attestation_certificate_once_approved(
        pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    import asyncio

    from agent.provisioning.enroll import CertificateRenewer

    store = await asyncio.to_thread(_enrolled, pgateway, tmp_path / "state")
    assert store.info().status == "pending"
    renewer = CertificateRenewer(store, retry_min=0.2, check_max=0.2, attestation_retry=0.5)
    assert renewer.due_in() == 0  # no attestation certificate: ask at once
    task = asyncio.create_task(renewer.run())
    try:
        await asyncio.wait_for(renewer.renewed.wait(), 30)
        assert not store.has_attestation_certificate()  # still pending: none issued
        assert renewer.due_in() > 0  # and no tight loop
        await asyncio.to_thread(pgateway.cli, "approve", "hn-bd-001-001")
        for _ in range(300):
            if store.has_attestation_certificate():
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
    assert store.has_attestation_certificate()
    assert renewer.due_in() > 1  # back to half the certificate's lifetime
