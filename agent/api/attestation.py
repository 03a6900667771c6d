"""Signed card reads (attestations): the whole read result, signed with the agent's attestation key.

The payload format and how a portal backend checks it are in the README ("Card-read
attestation"); the key and its certificate in :mod:`agent.provisioning.attestation_key`;
the checks a backend runs in :mod:`agent.attestation_verify`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from agent.attestation_verify import ALGORITHM, PAYLOAD_TYPE, PAYLOAD_VERSION
from agent.errors import ConfigError, DataFormatError
from agent.provisioning import attestation_key
from agent.provisioning.identity import IDENTITY_DIR
from centre.agent.v1 import idcard_pb2 as pb

KEY_FILE = attestation_key.KEY_FILE
SELF_SIGNED_LIFETIME = dt.timedelta(days=365)


def canonical_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def card_data_digest(response: pb.ReadCardResponse) -> str:
    """Hex SHA-256 of the canonical JSON of the personal data (proto field names, defaults omitted)
    and the face image's SHA-256. Kept in the payload as ``data_sha256`` for verifiers written
    against version 1, which recompute it from the fields beside the attestation."""
    personal = json_format.MessageToDict(response.personal, preserving_proto_field_name=True)
    return hashlib.sha256(canonical_json({"face_sha256": response.face.sha256, "personal": personal})).hexdigest()


def _verdicts(verification: pb.Verification) -> dict[str, Any]:
    """Every verdict field of Verification (new ones included without a change here), by name:
    "valid", "invalid", "not_supported", "unknown_issuer" or "unspecified"; plus the details."""
    out: dict[str, Any] = {}
    for field in verification.DESCRIPTOR.fields:
        if field.type == FieldDescriptor.TYPE_ENUM:
            name = pb.Verdict.Name(getattr(verification, field.name))
            out[field.name] = name.removeprefix("VERDICT_").lower()
    out["details"] = list(verification.details)
    return out


def read_payload(response: pb.ReadCardResponse, agent: dict[str, Any], origin: str, challenge: bytes,
                 read_at_ms: int) -> dict[str, Any]:
    """The signed document: everything the read returned except the face bytes (their digest) and raw
    data groups."""
    personal = json_format.MessageToDict(response.personal, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    return {
        "v": PAYLOAD_VERSION, "type": PAYLOAD_TYPE, "agent": agent, "device_id": response.device_id,
        "read_at_ms": read_at_ms, "challenge": base64.b64encode(challenge).decode("ascii"), "origin": origin,
        "access_protocol": response.access_protocol, "data_groups_read": sorted(response.data_groups_read),
        "verification": _verdicts(response.verification), "personal": personal,
        "face_sha256": response.face.sha256, "data_sha256": card_data_digest(response)}


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _self_signed(key: ec.EllipticCurvePrivateKey, agent_id: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id)])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + SELF_SIGNED_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def _subject(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


class Attestor:
    """Signs card reads. Enrolled (``identity/attestation-cert.pem`` certifies the attestation key): the
    chain is that certificate and the CA chain the agent holds, read afresh for each read so a renewal
    takes effect at once. Not enrolled: a self-signed certificate, and the payload says
    ``"enrolled": false``. The key is created on first use, so an agent whose state directory is
    read-only still starts; only attested reads then fail, with a ConfigError."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self._state_dir = Path(state_dir)
        self._path = self._state_dir / KEY_FILE
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._self_signed: x509.Certificate | None = None
        self.public_key_der = b""
        self.agent_id = ""  # SPKI SHA-256 of the key: the id of a self-signed agent

    def _signing_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            try:
                self._key = attestation_key.load_or_create(self._path)
            except OSError as exc:
                raise ConfigError(f"cannot create attestation key {self._path}: {exc.strerror}") from None
            self.public_key_der = _spki(self._key)
            self.agent_id = hashlib.sha256(self.public_key_der).hexdigest()
        return self._key

    def _enrolled_chain(self) -> tuple[dict[str, Any], list[bytes]] | None:
        identity = self._state_dir / IDENTITY_DIR
        try:
            cert = x509.load_pem_x509_certificate((identity / attestation_key.CERT_FILE).read_bytes())
            cas = x509.load_pem_x509_certificates((identity / "ca.pem").read_bytes())
        except (OSError, ValueError):
            return None
        if cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo) != self.public_key_der:
            return None  # a certificate for another key (the key file was replaced): not ours
        agent = {"id": _subject(cert, NameOID.COMMON_NAME), "centre": _subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME),
                 "province": _subject(cert, NameOID.STATE_OR_PROVINCE_NAME), "enrolled": True}
        return agent, [c.public_bytes(serialization.Encoding.DER) for c in (cert, *cas)]

    def chain(self) -> tuple[dict[str, Any], list[bytes]]:
        """(the payload's ``agent`` object, DER certificate chain)."""
        key = self._signing_key()
        enrolled = self._enrolled_chain()
        if enrolled is not None:
            return enrolled
        if self._self_signed is None:
            self._self_signed = _self_signed(key, self.agent_id)
        return ({"id": self.agent_id, "centre": "", "province": "", "enrolled": False},
                [self._self_signed.public_bytes(serialization.Encoding.DER)])

    def attest(self, response: pb.ReadCardResponse, origin: str, challenge: bytes,
               now: float | None = None) -> pb.Attestation:
        key = self._signing_key()
        agent, chain = self.chain()
        read_at_ms = round((time.time() if now is None else now) * 1000)
        payload = canonical_json(read_payload(response, agent, origin, challenge, read_at_ms))
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
        return pb.Attestation(payload=payload, signature=signature, algorithm=ALGORITHM,
                              public_key=self.public_key_der, certificate_chain=chain)


def verify_attestation(att: pb.Attestation) -> dict[str, Any]:
    """Check the signature with the embedded key only; return the payload. For tests and for
    verifiers that pinned the agent's key (version 1); a portal backend uses
    :func:`agent.attestation_verify.verify_card_read`, which checks the chain to the CA."""
    key = serialization.load_der_public_key(att.public_key)
    if att.algorithm != ALGORITHM or not isinstance(key, ec.EllipticCurvePublicKey):
        raise DataFormatError("unsupported attestation algorithm")
    try:
        key.verify(att.signature, att.payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise DataFormatError("attestation signature does not verify") from None
    data: dict[str, Any] = json.loads(att.payload)
    return data
