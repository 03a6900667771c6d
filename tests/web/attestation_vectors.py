"""Test vectors for the attestation verifiers: attestations made by the Python agent code, each with
the verifier inputs and the outcome both verifiers must give ("ok" or a reject reason).

``python -m tests.web.attestation_vectors [FILE]`` writes them (default: the committed
``clients/js/tests/attestation-vectors.json``, which the SDK's ``npm test`` checks in Node and
``tests/web/test_attestation_vectors.py`` checks in Python). The tests also make a fresh set and
run the Node verifier on it, so the two verifiers agree on what the agent signs today.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.api.attestation import Attestor, canonical_json
from centre.agent.v1 import idcard_pb2
from tests.web.attestation_pki import FACE, PORTAL, enrol_attestor, make_ca, sample_read

COMMITTED = Path(__file__).resolve().parents[2] / "clients" / "js" / "tests" / "attestation-vectors.json"
NONCE = b"vector-nonce-0001"
MAX_AGE_MS = 5 * 60 * 1000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _case(name: str, att: idcard_pb2.Attestation, ca_pem: bytes, now_ms: int, expect: str, *,
          challenge: bytes = NONCE, origin: str = PORTAL, trusted: list[str] | None = None,
          face: bytes | None = None, payload: bytes | None = None) -> dict[str, Any]:
    return {"name": name, "payload": _b64(payload if payload is not None else att.payload),
            "signature": _b64(att.signature), "chain": [_b64(c) for c in att.certificate_chain],
            "ca_pem": ca_pem.decode("ascii"), "challenge": _b64(challenge), "origin": origin,
            "max_age_ms": MAX_AGE_MS, "now_ms": now_ms, "trusted_self_signed": trusted or [],
            "face": _b64(face) if face is not None else None, "expect": expect}


def _tampered(att: idcard_pb2.Attestation, path: list[str], value: Any) -> bytes:
    body = json.loads(att.payload)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return canonical_json(body)


def build(workdir: Path) -> list[dict[str, Any]]:
    ca = make_ca(workdir / "ca")
    foreign = make_ca(workdir / "foreign-ca", name="HN centre-gateway CA")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    now_ms = int(now.timestamp() * 1000)
    read = sample_read()
    att = enrol_attestor(workdir / "enrolled", ca).attest(read, PORTAL, NONCE, now=now.timestamp() - 30)
    expired = enrol_attestor(workdir / "expired", ca, lifetime=dt.timedelta(days=30),
                             now=now - dt.timedelta(days=40)).attest(read, PORTAL, NONCE, now=now.timestamp())
    client_cert = enrol_attestor(workdir / "client", ca, client_auth=True).attest(read, PORTAL, NONCE,
                                                                                  now=now.timestamp())
    alone = Attestor(workdir / "alone")
    self_signed = alone.attest(read, PORTAL, NONCE, now=now.timestamp())
    leaf = x509.load_der_x509_certificate(self_signed.certificate_chain[0])
    spki = hashlib.sha256(leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    return [
        _case("valid", att, ca.cert_pem, now_ms, "ok", face=FACE),
        _case("verdict flipped invalid to valid", att, ca.cert_pem, now_ms, "BAD_SIGNATURE",
              payload=_tampered(att, ["verification", "passive"], "valid")),
        _case("name changed", att, ca.cert_pem, now_ms, "BAD_SIGNATURE",
              payload=_tampered(att, ["personal", "full_name"], "Nguyễn Văn Khác")),
        _case("face digest changed", att, ca.cert_pem, now_ms, "BAD_SIGNATURE",
              payload=_tampered(att, ["face_sha256"], "00" * 32)),
        _case("another face image", att, ca.cert_pem, now_ms, "FACE_MISMATCH", face=FACE + b"\0"),
        _case("foreign CA", att, foreign.cert_pem, now_ms, "UNTRUSTED_CHAIN"),
        _case("replayed challenge", att, ca.cert_pem, now_ms, "CHALLENGE_MISMATCH", challenge=b"the-next-nonce"),
        _case("other origin", att, ca.cert_pem, now_ms, "ORIGIN_MISMATCH", origin="https://other.example.gov.vn"),
        _case("too old", att, ca.cert_pem, now_ms + MAX_AGE_MS, "STALE"),
        _case("expired certificate", expired, ca.cert_pem, now_ms, "CERTIFICATE_EXPIRED"),
        _case("client certificate used to attest", client_cert, ca.cert_pem, now_ms, "WRONG_KEY_USAGE"),
        _case("self-signed refused", self_signed, ca.cert_pem, now_ms, "SELF_SIGNED"),
        _case("self-signed trusted by its key", self_signed, ca.cert_pem, now_ms, "ok", trusted=[spki]),
    ]


def write(path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = build(Path(tmp))
    path.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else COMMITTED)
