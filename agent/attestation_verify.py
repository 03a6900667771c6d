"""Verify a card-read attestation, as a portal's backend does: with the province's CA certificate only.

Self-contained on purpose (the standard library, ``cryptography`` and :mod:`agent.errors`; no
protobuf, no native device libraries), so a portal backend can vendor or import it alone. The
format is described in the README ("Card-read attestation"); the TypeScript SDK has the same
checks (``clients/js/src/attestation.ts``).

Usage::

    from agent.attestation_verify import verify_card_read
    read = verify_card_read(att.payload, att.signature, att.certificate_chain,
                            ca_certificate=open("province-ca.pem", "rb").read(),
                            expected_challenge=nonce, expected_origin="https://portal.example.gov.vn",
                            max_age=datetime.timedelta(minutes=5))
    read.personal["full_name"], read.verification["passive"], read.agent_id

Trust the fields of ``read.payload``, not the ones that travelled beside it: the signature covers them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.errors import AttestationRejectedError

#: Extended key usage of attestation certificates (a UUID-derived OID, ITU-T X.667 arc 2.25):
#: the gateway CA puts it on the attestation key's certificate and on nothing else.
ATTESTATION_EKU = x509.ObjectIdentifier("2.25.334255837514931465700786113405480142468")
PAYLOAD_TYPE = "centre.idcard.read"
PAYLOAD_VERSION = 2
ALGORITHM = "ecdsa-p256-sha256"
#: How far ahead of the verifier's clock a read may be dated (the counter PC's clock drifts).
CLOCK_SKEW = dt.timedelta(minutes=5)
_MAX_CHAIN = 4


@dataclass(frozen=True, slots=True)
class VerifiedRead:
    """A read whose attestation held. ``payload`` is the whole signed result."""

    payload: dict[str, Any]
    agent_id: str
    centre: str     # "" for a self-signed (not enrolled) agent
    province: str   # ""  likewise
    enrolled: bool  # False: accepted only because its key was listed in ``trusted_self_signed``
    read_at: dt.datetime

    @property
    def personal(self) -> dict[str, Any]:
        value: dict[str, Any] = self.payload["personal"]
        return value

    @property
    def verification(self) -> dict[str, Any]:
        value: dict[str, Any] = self.payload["verification"]
        return value


def _reject(reason: str, message: str) -> AttestationRejectedError:
    return AttestationRejectedError(f"attestation rejected: {message}", reason=reason)


def spki_sha256(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the certificate's DER SubjectPublicKeyInfo: the agent id of a self-signed key."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _load_cert(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise _reject("MALFORMED", "a certificate does not parse") from None


def _name(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return basic.ca and usage.key_cert_sign


def _check_dates(cert: x509.Certificate, now: dt.datetime, what: str) -> None:
    if now > cert.not_valid_after_utc:
        raise _reject("CERTIFICATE_EXPIRED", f"{what} expired {cert.not_valid_after_utc.isoformat()}")
    if now < cert.not_valid_before_utc:
        raise _reject("CERTIFICATE_EXPIRED", f"{what} not valid before {cert.not_valid_before_utc.isoformat()}")


def _chain_to(leaf: x509.Certificate, intermediates: list[x509.Certificate], anchor: x509.Certificate,
              now: dt.datetime) -> None:
    """Leaf -> (intermediates the agent sent) -> the CA given by the verifier; every link a CA
    certificate allowed to sign certificates, every certificate within its validity."""
    _check_dates(anchor, now, "the CA certificate")
    current = leaf
    for _ in range(_MAX_CHAIN):
        if _issued_by(current, anchor):
            return
        parent = next((c for c in intermediates if c is not current and _is_ca(c) and _issued_by(current, c)), None)
        if parent is None:
            break
        _check_dates(parent, now, "an intermediate CA certificate")
        current = parent
    raise _reject("UNTRUSTED_CHAIN", "the attestation certificate is not issued by the given CA")


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        ekus = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise _reject("WRONG_KEY_USAGE", "the certificate lacks key usage or extended key usage") from None
    if not usage.digital_signature or ATTESTATION_EKU not in ekus:
        raise _reject("WRONG_KEY_USAGE", "the certificate is not an attestation certificate")
    if ExtendedKeyUsageOID.CLIENT_AUTH in ekus or ExtendedKeyUsageOID.SERVER_AUTH in ekus:
        raise _reject("WRONG_KEY_USAGE", "an attestation certificate must not also authenticate TLS peers")


def _self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert)


def _payload(data: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _reject("MALFORMED", "payload is not JSON") from None
    if not isinstance(payload, dict) or payload.get("v") != PAYLOAD_VERSION or payload.get("type") != PAYLOAD_TYPE:
        raise _reject("MALFORMED", f"payload is not a {PAYLOAD_TYPE} version {PAYLOAD_VERSION}")
    for key, kind in (("agent", dict), ("personal", dict), ("verification", dict), ("challenge", str),
                      ("origin", str), ("read_at_ms", int), ("face_sha256", str)):
        if not isinstance(payload.get(key), kind):
            raise _reject("MALFORMED", f"payload field {key} missing or of the wrong type")
    return payload


def verify_card_read(payload: bytes, signature: bytes, certificate_chain: Sequence[bytes], *,
                     ca_certificate: bytes, expected_challenge: bytes, expected_origin: str,
                     max_age: dt.timedelta, now: dt.datetime | None = None,
                     trusted_self_signed: Collection[str] = (), face_jpeg: bytes | None = None) -> VerifiedRead:
    """Check an attestation; return the signed result or raise :class:`AttestationRejectedError`.

    ``certificate_chain``: DER certificates, the attestation certificate first (``Attestation.
    certificate_chain``). ``ca_certificate``: the province gateway's CA certificate (PEM or DER), the
    only trust anchor. ``expected_challenge``: the nonce this backend issued for this read (use each
    once). ``max_age``: how old the read may be. ``trusted_self_signed``: SPKI SHA-256 hex of agent
    keys the backend chose to trust although not enrolled (the agent id such an agent reports);
    empty by default, so self-signed attestations are refused. ``face_jpeg``: when given, its
    SHA-256 must be the signed ``face_sha256``.
    """
    now = now or dt.datetime.now(dt.UTC)
    if not certificate_chain:
        raise _reject("MALFORMED", "no certificate chain")
    certs = [_load_cert(bytes(der)) for der in certificate_chain[:_MAX_CHAIN + 1]]
    leaf = certs[0]
    enrolled = True
    if _self_signed(leaf):
        if spki_sha256(leaf) not in trusted_self_signed:
            raise _reject("SELF_SIGNED", "self-signed attestation key (the agent is not enrolled)")
        enrolled = False
        _check_dates(leaf, now, "the attestation certificate")
    else:
        _chain_to(leaf, certs[1:], _load_cert(ca_certificate), now)
        _check_dates(leaf, now, "the attestation certificate")
        _check_leaf_usage(leaf)
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise _reject("WRONG_KEY_USAGE", "the attestation key is not ECDSA P-256")
    try:
        key.verify(bytes(signature), bytes(payload), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _reject("BAD_SIGNATURE", "the signature does not verify (payload altered or another key)") from None
    body = _payload(bytes(payload))
    agent = body["agent"]
    agent_id = _name(leaf, NameOID.COMMON_NAME) if enrolled else spki_sha256(leaf)
    centre = _name(leaf, NameOID.ORGANIZATIONAL_UNIT_NAME) if enrolled else ""
    province = _name(leaf, NameOID.STATE_OR_PROVINCE_NAME) if enrolled else ""
    if (agent.get("id"), agent.get("centre", ""), agent.get("province", ""), agent.get("enrolled")) != (
            agent_id, centre, province, enrolled):
        raise _reject("AGENT_MISMATCH", "the payload names another agent than the certificate")
    try:
        challenge = base64.b64decode(body["challenge"], validate=True)
    except (binascii.Error, ValueError):
        raise _reject("MALFORMED", "challenge is not base64") from None
    if not expected_challenge or not hmac.compare_digest(challenge, expected_challenge):
        raise _reject("CHALLENGE_MISMATCH", "the read answers another challenge (replayed?)")
    if body["origin"] != expected_origin:
        raise _reject("ORIGIN_MISMATCH", f"the read was made for origin {body['origin']!r}")
    read_at = dt.datetime.fromtimestamp(body["read_at_ms"] / 1000, dt.UTC)
    if read_at > now + CLOCK_SKEW:
        raise _reject("STALE", "the read is dated in the future (check the counter PC's clock)")
    if now - read_at > max_age:
        raise _reject("STALE", f"the read is older than {max_age}")
    if face_jpeg is not None and hashlib.sha256(face_jpeg).hexdigest() != body["face_sha256"]:
        raise _reject("FACE_MISMATCH", "the face image is not the one the agent read")
    return VerifiedRead(body, agent_id, centre, province, enrolled, read_at)
