"""A gateway CA and an enrolled agent's attestation state, in process, for the verifier's tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from agent.api.attestation import Attestor
from agent.provisioning import attestation_key
from agent.provisioning.identity import IDENTITY_DIR, MachineFacts, make_csr
from centre.agent.v1 import common_pb2, idcard_pb2
from gateway.ca import CertificateAuthority

PORTAL = "https://portal.example.gov.vn"
AGENT_ID = "hn-bd-001-001"
CENTRE = "HN-BD-001"
PROVINCE = "HN"
FACE = b"\xff\xd8\xff\xe0 a face, as JPEG bytes \xff\xd9"


def make_ca(directory: Path, name: str = "HN centre-gateway CA") -> CertificateAuthority:
    return CertificateAuthority.load_or_create(directory, name=name)


def enrol_attestor(state_dir: Path, ca: CertificateAuthority, *, lifetime: dt.timedelta = dt.timedelta(days=30),
                   now: dt.datetime | None = None, client_auth: bool = False) -> Attestor:
    """Lay out what enrolment leaves (``identity/attestation-cert.pem`` + ``ca.pem``) for the key in
    ``state_dir``. ``client_auth``: certify the key as a client certificate instead (a wrong usage)."""
    key = attestation_key.load_or_create(state_dir / attestation_key.KEY_FILE)
    csr = x509.load_der_x509_csr(make_csr(key, MachineFacts("machine-1", "counter-1", "")))
    sign = ca.sign_agent if client_auth else ca.sign_attestation
    cert = sign(csr, AGENT_ID, CENTRE, PROVINCE, lifetime, now)
    identity = state_dir / IDENTITY_DIR
    identity.mkdir(parents=True, exist_ok=True)
    from cryptography.hazmat.primitives import serialization
    (identity / attestation_key.CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (identity / "ca.pem").write_bytes(ca.cert_pem)
    return Attestor(state_dir)


def sample_read() -> idcard_pb2.ReadCardResponse:
    """A CCCD read with every part the payload covers (fictitious holder)."""
    import hashlib

    personal = idcard_pb2.PersonalData(
        document_type="ID", issuing_state="VNM", document_number="203004567", id_number="001203004567",
        full_name="Trần Thị Thử Nghiệm", sex="F", nationality="VNM", nationality_name="Việt Nam",
        place_of_residence="Số 1 Đường Kiểm Thử, Phường Mô Phỏng", father_name="Trần Văn Cha",
        date_of_birth=common_pb2.Date(year=1990, month=1, day=15),
        date_of_expiry=common_pb2.Date(year=2030, month=1, day=15),
        extra_fields=[idcard_pb2.ExtraField(index=17, values=["giá trị"])])
    for name in ("document_type", "issuing_state", "document_number", "nationality", "sex"):
        personal.sources[name] = idcard_pb2.FIELD_SOURCE_DG1
    for name in ("id_number", "full_name", "nationality_name", "place_of_residence", "father_name",
                 "date_of_birth", "date_of_expiry"):
        personal.sources[name] = idcard_pb2.FIELD_SOURCE_DG13
    personal.sources["spouse_name"] = idcard_pb2.FIELD_SOURCE_MISSING
    return idcard_pb2.ReadCardResponse(
        personal=personal,
        face=idcard_pb2.FaceImage(jpeg=FACE, original_mime_type="image/jpeg", width=2, height=2,
                                  sha256=hashlib.sha256(FACE).hexdigest()),
        verification=idcard_pb2.Verification(passive=idcard_pb2.VERDICT_INVALID,
                                             active=idcard_pb2.VERDICT_NOT_SUPPORTED,
                                             chip=idcard_pb2.VERDICT_VALID, data=idcard_pb2.VERDICT_VALID,
                                             details=["DG2 hash mismatch"]),
        data_groups_read=[1, 2, 13, 14], access_protocol="PACE", device_id="idcard-3f2a")
