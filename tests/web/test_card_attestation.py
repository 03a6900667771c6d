"""ID-card reads over the browser listener: attestation, audit, and no personal data in the logs."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import stat

import httpx
import pytest

from agent.api.attestation import card_data_digest, verify_attestation
from agent.attestation_verify import verify_card_read
from agent.errors import AttestationRejectedError, DataFormatError
from agent.simulator.emrtd.profiles import SAMPLE_DG13
from agent.simulator.idcard import SIMULATED_ID, SIMULATED_KEY
from centre.agent.v1 import idcard_pb2
from tests.web.conftest import PORTAL, RunningAgent

READ = "/centre.agent.v1.IdCardService/ReadCard"
MRZ = {"documentNumber": SIMULATED_KEY.document_number, "dateOfBirth": SIMULATED_KEY.date_of_birth,
       "dateOfExpiry": SIMULATED_KEY.date_of_expiry}
SAMPLE_NAME = str(SAMPLE_DG13[2])
SAMPLE_ID = SIMULATED_ID


def read_card(agent: RunningAgent, token: str, challenge: bytes | None) -> httpx.Response:
    body: dict[str, object] = {"mrz": MRZ}
    if challenge is not None:
        body["challenge"] = base64.b64encode(challenge).decode()
    return httpx.post(agent.url + READ, json=body, timeout=120,
                      headers={"Origin": PORTAL, "Authorization": f"Bearer {token}"})


def test_read_with_challenge_is_attested(agent: RunningAgent, portal_token: str) -> None:
    nonce = b"portal-nonce-7f3a9c"
    r = read_card(agent, portal_token, nonce)
    assert r.status_code == 200, r.text
    from google.protobuf import json_format

    msg = json_format.Parse(r.content, idcard_pb2.ReadCardResponse(), ignore_unknown_fields=True)
    assert msg.personal.full_name == SAMPLE_NAME
    payload = verify_attestation(msg.attestation)
    assert (payload["v"], payload["type"]) == (2, "centre.idcard.read")
    assert payload["origin"] == PORTAL
    assert base64.b64decode(payload["challenge"]) == nonce
    assert payload["device_id"] == msg.device_id
    # the whole result is signed: personal data with sources, face digest, verdicts, protocol, groups
    assert payload["personal"] == json_format.MessageToDict(msg.personal, preserving_proto_field_name=True,
                                                            always_print_fields_with_no_presence=True)
    assert payload["personal"]["full_name"] == SAMPLE_NAME
    assert payload["personal"]["sources"]["full_name"] == "FIELD_SOURCE_DG13"
    assert payload["face_sha256"] == msg.face.sha256 == hashlib.sha256(msg.face.jpeg).hexdigest()
    assert payload["verification"] == {
        "passive": idcard_pb2.Verdict.Name(msg.verification.passive).removeprefix("VERDICT_").lower(),
        "active": idcard_pb2.Verdict.Name(msg.verification.active).removeprefix("VERDICT_").lower(),
        "chip": idcard_pb2.Verdict.Name(msg.verification.chip).removeprefix("VERDICT_").lower(),
        "data": "valid", "details": list(msg.verification.details)}
    assert payload["access_protocol"] == msg.access_protocol
    assert payload["data_groups_read"] == sorted(msg.data_groups_read)
    assert payload["data_sha256"] == card_data_digest(msg)  # what version-1 verifiers recompute
    assert msg.attestation.payload == json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                                 ensure_ascii=False).encode()
    # not enrolled: a self-signed certificate, and the payload says so
    agent_id = hashlib.sha256(msg.attestation.public_key).hexdigest()
    assert payload["agent"] == {"id": agent_id, "centre": "", "province": "", "enrolled": False}
    chain = list(msg.attestation.certificate_chain)
    ca_pem = b"unused: a self-signed key never chains to a CA"
    with pytest.raises(AttestationRejectedError) as refused:
        verify_card_read(msg.attestation.payload, msg.attestation.signature, chain, ca_certificate=ca_pem,
                         expected_challenge=nonce, expected_origin=PORTAL, max_age=dt.timedelta(minutes=5))
    assert refused.value.reason == "SELF_SIGNED"
    read = verify_card_read(msg.attestation.payload, msg.attestation.signature, chain, ca_certificate=ca_pem,
                            expected_challenge=nonce, expected_origin=PORTAL, max_age=dt.timedelta(minutes=5),
                            trusted_self_signed={agent_id}, face_jpeg=msg.face.jpeg)
    assert (read.personal["full_name"], read.enrolled) == (SAMPLE_NAME, False)
    key_file = agent.state_dir / "attestation-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_tampered_attestation_does_not_verify(agent: RunningAgent, portal_token: str) -> None:
    from google.protobuf import json_format

    r = read_card(agent, portal_token, b"n1")
    msg = json_format.Parse(r.content, idcard_pb2.ReadCardResponse(), ignore_unknown_fields=True)
    for old, new in ((PORTAL.encode(), b"https://evil.example"), (SAMPLE_NAME.encode(), "Nguyễn Văn Khác".encode()),
                     (b'"data":"valid"', b'"data":"invalid"')):
        assert old in msg.attestation.payload
        forged = idcard_pb2.Attestation()
        forged.CopyFrom(msg.attestation)
        forged.payload = msg.attestation.payload.replace(old, new)
        with pytest.raises(DataFormatError):
            verify_attestation(forged)


def test_same_key_signs_every_read(agent: RunningAgent, portal_token: str) -> None:
    from google.protobuf import json_format

    keys = set()
    for nonce in (b"a", b"b"):
        r = read_card(agent, portal_token, nonce)
        msg = json_format.Parse(r.content, idcard_pb2.ReadCardResponse(), ignore_unknown_fields=True)
        keys.add(msg.attestation.public_key)
    assert len(keys) == 1


def test_read_without_challenge_has_no_attestation(agent: RunningAgent, portal_token: str) -> None:
    r = read_card(agent, portal_token, None)
    assert r.status_code == 200
    assert "attestation" not in r.json()


def test_oversized_challenge_rejected(agent: RunningAgent, portal_token: str) -> None:
    r = read_card(agent, portal_token, b"x" * 65)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_argument"


def test_audit_names_the_read_and_no_personal_data(agent: RunningAgent, portal_token: str) -> None:
    assert read_card(agent, portal_token, b"audit").status_code == 200
    r = httpx.post(agent.url + READ, json={"mrz": {**MRZ, "dateOfBirth": "900116"}}, timeout=120,
                   headers={"Origin": PORTAL, "Authorization": f"Bearer {portal_token}"})
    assert r.json()["code"] == "permission_denied"  # wrong MRZ key
    lines = [json.loads(line) for line in agent.log_text().splitlines() if line.startswith("{")]
    reads = [rec for rec in lines if rec["logger"] == "centre.audit" and rec.get("operation") == "ReadCard"]
    assert any(rec["outcome"] == "OK" and PORTAL in rec["msg"] for rec in reads)
    assert any(rec["outcome"] == "PERMISSION_DENIED" for rec in reads)
    text = agent.log_text()
    for secret in (SAMPLE_NAME, SAMPLE_ID, SIMULATED_KEY.document_number, SIMULATED_KEY.date_of_birth,
                   str(SAMPLE_DG13[9]), "THI THU NGHIEM"):
        assert secret not in text
        assert json.dumps(secret)[1:-1] not in text  # nor its JSON-escaped form
    assert portal_token not in text
