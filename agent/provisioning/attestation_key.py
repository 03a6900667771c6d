"""The agent's attestation key: a second EC P-256 key, apart from the identity key.

Why a second key: the identity key (``identity/key.pem``) authenticates the PC to the gateway
(mTLS, renewal); the attestation key only signs card reads for portals. Each certificate carries
one usage (client authentication; the attestation extended key usage), so a portal that accepts
attestations never accepts a TLS client certificate as one, and the gateway never accepts an
attestation certificate as a PC's identity. The keys live and rotate apart too: the attestation
key is made once, before any enrolment (a PC that is not enrolled attests with it, self-signed),
and is kept across re-enrolments, so its public key stays what a backend may have registered.

``<state_dir>/attestation-key.pem`` (0600, owner of the state directory); its certificate,
issued by the gateway CA at enrolment and renewed with the identity, is
``<state_dir>/identity/attestation-cert.pem``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.errors import ConfigError

KEY_FILE = "attestation-key.pem"
CERT_FILE = "attestation-cert.pem"  # under <state_dir>/identity/

Owner = tuple[int, int]


def save(path: Path, key: ec.EllipticCurvePrivateKey, owner: Owner | None = None) -> ec.EllipticCurvePrivateKey:
    """Write ``key`` to ``path`` (0600, ``owner``) unless a key is there already; return the key
    that is there then (another process may have made one meanwhile: it is never replaced)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".attestation-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        try:
            os.link(tmp, path)
        except FileExistsError:
            existing = load(path)
            assert existing is not None
            return existing
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return key


def load_or_create(path: Path, owner: Owner | None = None) -> ec.EllipticCurvePrivateKey:
    """The key at ``path``, made (0600, ``owner``) when absent."""
    key = load(path)
    return key if key is not None else save(path, ec.generate_private_key(ec.SECP256R1()), owner)


def load(path: Path) -> ec.EllipticCurvePrivateKey | None:
    """The key at ``path``; None when there is none."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read attestation key {path}: {exc.strerror}") from None
    try:
        key_obj = serialization.load_pem_private_key(pem, password=None)
    except ValueError:
        raise ConfigError(f"{path} is not a PEM private key") from None
    if not isinstance(key_obj, ec.EllipticCurvePrivateKey) or key_obj.curve.name != "secp256r1":
        raise ConfigError(f"{path} is not an ECDSA P-256 key")
    return key_obj
