"""Signed attestations: which agent read which card, for which portal origin, when.

The agent owns an ECDSA P-256 key, generated once into ``<state_dir>/attestation-key.pem``
(mode 0600). A card read that carries a portal ``challenge`` returns an
:class:`~centre.agent.v1.idcard_pb2.Attestation` whose ``payload`` is canonical
JSON (UTF-8, keys sorted, no whitespace)::

    {"agent_id": "...", "challenge": "<base64>", "data_sha256": "<hex>", "device_id": "...",
     "origin": "https://portal...", "read_at": 1764358123.456, "type": "centre.idcard.read.v1"}

signed with ECDSA-SHA256 (DER signature). ``agent_id`` is the hex SHA-256 of the
key's DER SubjectPublicKeyInfo (the same key is in ``public_key``), so a portal
backend that registered the counter's key knows which counter read the card.
``data_sha256`` is :func:`card_data_digest` of the returned card data: the
backend recomputes it from the fields it received and compares.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import json_format

from agent.errors import ConfigError, DataFormatError
from centre.agent.v1 import idcard_pb2 as pb

KEY_FILE = "attestation-key.pem"
ALGORITHM = "ecdsa-p256-sha256"
PAYLOAD_TYPE = "centre.idcard.read.v1"


def canonical_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def card_data_digest(response: pb.ReadCardResponse) -> str:
    """Hex SHA-256 of the canonical JSON of the personal data (proto field names, defaults omitted)
    and the face image's SHA-256."""
    personal = json_format.MessageToDict(response.personal, preserving_proto_field_name=True)
    return hashlib.sha256(canonical_json({"face_sha256": response.face.sha256, "personal": personal})).hexdigest()


def _load_or_create(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".attestation-", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            try:
                os.link(tmp, path)  # never replace a key another process created meanwhile
            except FileExistsError:
                return _load_or_create(path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return key
    except OSError as exc:
        raise ConfigError(f"cannot read attestation key {path}: {exc.strerror}") from None
    try:
        key_obj = serialization.load_pem_private_key(pem, password=None)
    except ValueError:
        raise ConfigError(f"{path} is not a PEM private key") from None
    if not isinstance(key_obj, ec.EllipticCurvePrivateKey) or key_obj.curve.name != "secp256r1":
        raise ConfigError(f"{path} is not an ECDSA P-256 key")
    return key_obj


class Attestor:
    """Signs card reads with the agent's own key (created on first use, so an agent whose state
    directory is read-only still starts; only attested reads then fail, with a ConfigError)."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self._path = Path(state_dir) / KEY_FILE
        self._key: ec.EllipticCurvePrivateKey | None = None
        self.public_key_der = b""
        self.agent_id = ""

    def _signing_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            try:
                self._key = _load_or_create(self._path)
            except OSError as exc:
                raise ConfigError(f"cannot create attestation key {self._path}: {exc.strerror}") from None
            self.public_key_der = self._key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            self.agent_id = hashlib.sha256(self.public_key_der).hexdigest()
        return self._key

    def attest(self, response: pb.ReadCardResponse, origin: str, challenge: bytes,
               now: float | None = None) -> pb.Attestation:
        key = self._signing_key()
        payload = canonical_json({
            "agent_id": self.agent_id, "challenge": base64.b64encode(challenge).decode("ascii"),
            "data_sha256": card_data_digest(response), "device_id": response.device_id,
            "origin": origin, "read_at": round(time.time() if now is None else now, 3),
            "type": PAYLOAD_TYPE})
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
        return pb.Attestation(payload=payload, signature=signature, algorithm=ALGORITHM,
                              public_key=self.public_key_der)


def verify_attestation(att: pb.Attestation) -> dict[str, Any]:
    """Check the signature with the embedded key; return the payload. What a portal backend does
    (it must also check that ``public_key`` is the key it registered for the counter)."""
    key = serialization.load_der_public_key(att.public_key)
    if att.algorithm != ALGORITHM or not isinstance(key, ec.EllipticCurvePublicKey):
        raise DataFormatError("unsupported attestation algorithm")
    try:
        key.verify(att.signature, att.payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise DataFormatError("attestation signature does not verify") from None
    data: dict[str, Any] = json.loads(att.payload)
    return data
