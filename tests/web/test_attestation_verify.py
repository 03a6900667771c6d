"""A portal backend verifies card-read attestations with the province CA certificate only
(agent/attestation_verify.py): the whole result is signed, and every check refuses what it must."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.api.attestation import Attestor, canonical_json
from agent.attestation_verify import ATTESTATION_EKU, VerifiedRead, spki_sha256, verify_card_read
from agent.errors import AttestationRejectedError, UnauthenticatedError
from agent.provisioning import attestation_key
from centre.agent.v1 import idcard_pb2
from gateway.ca import CertificateAuthority, identity_of
from tests.web.attestation_pki import AGENT_ID, CENTRE, FACE, PORTAL, PROVINCE, enrol_attestor, make_ca, sample_read

NONCE = b"portal-nonce-5d1e"
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return make_ca(tmp_path / "ca")


@pytest.fixture
def attested(tmp_path: Path, ca: CertificateAuthority) -> idcard_pb2.Attestation:
    return enrol_attestor(tmp_path / "state", ca).attest(sample_read(), PORTAL, NONCE)


def check(att: idcard_pb2.Attestation, ca: CertificateAuthority, **overrides: Any) -> VerifiedRead:
    kwargs: dict[str, Any] = {"ca_certificate": ca.cert_pem, "expected_challenge": NONCE,
                              "expected_origin": PORTAL, "max_age": 5 * MINUTE}
    kwargs.update(overrides)
    return verify_card_read(att.payload, att.signature, list(att.certificate_chain), **kwargs)


def rejected(reason: str, call: Callable[[], object]) -> None:
    with pytest.raises(AttestationRejectedError) as info:
        call()
    assert info.value.reason == reason, info.value.message


def test_valid_attestation_carries_the_whole_result(attested: idcard_pb2.Attestation,
                                                    ca: CertificateAuthority) -> None:
    read = check(attested, ca, face_jpeg=FACE)
    assert (read.agent_id, read.centre, read.province, read.enrolled) == (AGENT_ID, CENTRE, PROVINCE, True)
    body = read.payload
    assert (body["v"], body["type"]) == (2, "centre.idcard.read")
    assert read.personal["full_name"] == "Trần Thị Thử Nghiệm"
    assert read.personal["sources"]["full_name"] == "FIELD_SOURCE_DG13"
    assert read.personal["sources"]["spouse_name"] == "FIELD_SOURCE_MISSING"
    assert read.personal["spouse_name"] == ""  # every field is present, empty ones too
    assert read.personal["extra_fields"] == [{"index": 17, "values": ["giá trị"]}]
    assert read.verification == {"passive": "invalid", "active": "not_supported", "chip": "valid",
                                 "data": "valid", "details": ["DG2 hash mismatch"]}
    assert (body["access_protocol"], body["data_groups_read"]) == ("PACE", [1, 2, 13, 14])
    assert (body["device_id"], body["origin"]) == ("idcard-3f2a", PORTAL)
    assert abs(dt.datetime.now(dt.UTC) - read.read_at) < MINUTE
    # canonical JSON: sorted keys, no whitespace, UTF-8 text as is
    assert attested.payload == canonical_json(json.loads(attested.payload))
    assert "Trần".encode() in attested.payload
    assert [x509.load_der_x509_certificate(c).subject for c in attested.certificate_chain][1] == ca.cert.subject


def _tampered(att: idcard_pb2.Attestation, change: Callable[[dict[str, Any]], None]) -> idcard_pb2.Attestation:
    body = json.loads(att.payload)
    change(body)
    forged = idcard_pb2.Attestation()
    forged.CopyFrom(att)
    forged.payload = canonical_json(body)
    assert forged.payload != att.payload
    return forged


@pytest.mark.parametrize("change", [
    pytest.param(lambda b: b["verification"].update(passive="valid"), id="verdict-invalid-to-valid"),
    pytest.param(lambda b: b["personal"].update(full_name="Nguyễn Văn Khác"), id="name"),
    pytest.param(lambda b: b["personal"]["sources"].update(full_name="FIELD_SOURCE_DG1"), id="field-source"),
    pytest.param(lambda b: b.update(face_sha256="00" * 32), id="face-digest"),
    pytest.param(lambda b: b.update(device_id="idcard-other"), id="reader"),
    pytest.param(lambda b: b.update(data_groups_read=[1, 2]), id="data-groups"),
    pytest.param(lambda b: b.update(origin="https://evil.example"), id="origin"),
])
def test_each_tampered_field_breaks_the_signature(attested: idcard_pb2.Attestation, ca: CertificateAuthority,
                                                  change: Callable[[dict[str, Any]], None]) -> None:
    rejected("BAD_SIGNATURE", lambda: check(_tampered(attested, change), ca))


def test_a_face_other_than_the_signed_one_is_refused(attested: idcard_pb2.Attestation,
                                                     ca: CertificateAuthority) -> None:
    rejected("FACE_MISMATCH", lambda: check(attested, ca, face_jpeg=FACE + b"\0"))


def test_foreign_ca_is_refused(tmp_path: Path, attested: idcard_pb2.Attestation) -> None:
    other = make_ca(tmp_path / "other-ca", name="HN centre-gateway CA")  # same name, another key
    rejected("UNTRUSTED_CHAIN", lambda: check(attested, other))


def test_an_agent_enrolled_at_a_foreign_gateway_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    foreign = enrol_attestor(tmp_path / "foreign", make_ca(tmp_path / "foreign-ca", name="evil CA"))
    att = foreign.attest(sample_read(), PORTAL, NONCE)
    rejected("UNTRUSTED_CHAIN", lambda: check(att, ca))


def test_replayed_challenge_and_other_origin_are_refused(attested: idcard_pb2.Attestation,
                                                         ca: CertificateAuthority) -> None:
    rejected("CHALLENGE_MISMATCH", lambda: check(attested, ca, expected_challenge=b"the-next-nonce"))
    rejected("CHALLENGE_MISMATCH", lambda: check(attested, ca, expected_challenge=b""))
    rejected("ORIGIN_MISMATCH", lambda: check(attested, ca, expected_origin="https://other.example.gov.vn"))


def test_old_and_future_reads_are_refused(tmp_path: Path, attested: idcard_pb2.Attestation,
                                          ca: CertificateAuthority) -> None:
    now = dt.datetime.now(dt.UTC)
    rejected("STALE", lambda: check(attested, ca, now=now + 6 * MINUTE))
    assert check(attested, ca, now=now + 4 * MINUTE).enrolled
    # the counter PC's clock runs ahead
    ahead = enrol_attestor(tmp_path / "ahead", ca).attest(sample_read(), PORTAL, NONCE,
                                                         now=(now + 10 * MINUTE).timestamp())
    rejected("STALE", lambda: check(ahead, ca, now=now))


def test_expired_certificate_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    attestor = enrol_attestor(tmp_path / "state", ca, lifetime=dt.timedelta(days=30), now=long_ago)
    att = attestor.attest(sample_read(), PORTAL, NONCE)
    rejected("CERTIFICATE_EXPIRED", lambda: check(att, ca))


def test_a_client_certificate_cannot_attest(tmp_path: Path, ca: CertificateAuthority) -> None:
    attestor = enrol_attestor(tmp_path / "state", ca, client_auth=True)  # the identity's usage, not attestation
    att = attestor.attest(sample_read(), PORTAL, NONCE)
    rejected("WRONG_KEY_USAGE", lambda: check(att, ca))


def test_the_gateway_refuses_an_attestation_certificate_as_an_identity(
        attested: idcard_pb2.Attestation) -> None:
    cert = x509.load_der_x509_certificate(attested.certificate_chain[0])
    assert ATTESTATION_EKU in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    with pytest.raises(UnauthenticatedError):
        identity_of(cert)


def test_self_signed_is_refused_unless_its_key_is_trusted(tmp_path: Path, ca: CertificateAuthority) -> None:
    attestor = Attestor(tmp_path / "state")  # never enrolled
    att = attestor.attest(sample_read(), PORTAL, NONCE)
    assert json.loads(att.payload)["agent"] == {"id": attestor.agent_id, "centre": "", "province": "",
                                                "enrolled": False}
    rejected("SELF_SIGNED", lambda: check(att, ca))
    leaf = x509.load_der_x509_certificate(att.certificate_chain[0])
    read = check(att, ca, trusted_self_signed={spki_sha256(leaf)})
    assert (read.enrolled, read.agent_id) == (False, attestor.agent_id)
    rejected("SELF_SIGNED", lambda: check(att, ca, trusted_self_signed={"ab" * 32}))


def test_a_self_signed_payload_cannot_claim_to_be_enrolled(tmp_path: Path, ca: CertificateAuthority) -> None:
    attestor = Attestor(tmp_path / "state")
    att = attestor.attest(sample_read(), PORTAL, NONCE)
    body = json.loads(att.payload)
    body["agent"] = {"id": AGENT_ID, "centre": CENTRE, "province": PROVINCE, "enrolled": True}
    forged = idcard_pb2.Attestation()
    forged.CopyFrom(att)
    forged.payload = canonical_json(body)
    key = attestation_key.load_or_create(tmp_path / "state" / attestation_key.KEY_FILE)
    forged.signature = key.sign(forged.payload, ec.ECDSA(hashes.SHA256()))  # the agent's own key signs the lie
    leaf = x509.load_der_x509_certificate(att.certificate_chain[0])
    rejected("AGENT_MISMATCH", lambda: check(forged, ca, trusted_self_signed={spki_sha256(leaf)}))


def test_enrolled_attestor_follows_a_renewed_certificate(tmp_path: Path, ca: CertificateAuthority) -> None:
    state = tmp_path / "state"
    attestor = enrol_attestor(state, ca)
    first = attestor.attest(sample_read(), PORTAL, NONCE)
    enrol_attestor(state, ca)  # renewal: same key, new certificate, in place
    second = attestor.attest(sample_read(), PORTAL, NONCE)
    assert first.public_key == second.public_key
    assert first.certificate_chain[0] != second.certificate_chain[0]
    assert check(second, ca).enrolled


def test_garbage_is_malformed(attested: idcard_pb2.Attestation, ca: CertificateAuthority) -> None:
    rejected("MALFORMED", lambda: verify_card_read(attested.payload, attested.signature, [], ca_certificate=ca.cert_pem,
                                                   expected_challenge=NONCE, expected_origin=PORTAL, max_age=MINUTE))
    rejected("MALFORMED", lambda: verify_card_read(attested.payload, attested.signature, [b"not a certificate"],
                                                   ca_certificate=ca.cert_pem, expected_challenge=NONCE,
                                                   expected_origin=PORTAL, max_age=MINUTE))


def test_the_verifier_imports_no_protobuf_and_no_device_library() -> None:
    """A portal backend installs `cryptography` and copies or imports this one module."""
    import subprocess
    import sys

    code = ("import sys, agent.attestation_verify; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('agent', 'google', 'grpc', 'centre')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert out.stdout.strip() == "['agent', 'agent.attestation_verify', 'agent.errors']"


def test_a_certificate_for_another_key_is_not_used(tmp_path: Path, ca: CertificateAuthority) -> None:
    state = tmp_path / "state"
    enrol_attestor(state, ca)
    (state / attestation_key.KEY_FILE).unlink()  # the key was replaced (restored from another PC...)
    attestor = Attestor(state)
    att = attestor.attest(sample_read(), PORTAL, NONCE)
    assert json.loads(att.payload)["agent"]["enrolled"] is False  # self-signed, never a mismatched chain
    rejected("SELF_SIGNED", lambda: check(att, ca))
