"""The PC's identity on disk: key, certificate, CA chain and where the gateway is.

Layout under ``<state_dir>/identity/`` (directory 0700, every file 0600)::

    key.pem        EC P-256 private key, made on this PC, never leaves it
    cert.pem       client certificate issued by the gateway's CA
    ca.pem         CA chain that verifies the gateway and the certificate
    identity.json  agent id, centre, province, report and enrolment endpoints

The directory appears in one ``rename`` after a successful enrolment: a failed or
interrupted enrolment leaves no half identity. Renewal replaces ``cert.pem`` (and
``key.pem`` when the key rotates) file by file with ``os.replace``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.errors import ConfigError

IDENTITY_DIR = "identity"
DMI_SERIALS = (Path("/sys/class/dmi/id/product_serial"), Path("/sys/class/dmi/id/board_serial"))
_PLACEHOLDER_SERIALS = frozenset({"", "none", "default string", "to be filled by o.e.m.", "not specified",
                                  "system serial number", "0", "123456789"})


@dataclass(frozen=True, slots=True)
class MachineFacts:
    machine_id: str
    hostname: str
    serial: str


def machine_facts(machine_id_file: Path = Path("/etc/machine-id"),
                  serial_files: tuple[Path, ...] = DMI_SERIALS) -> MachineFacts:
    """/etc/machine-id, the host name and the DMI serial when readable (root only on most PCs)."""
    try:
        machine_id = machine_id_file.read_text(encoding="ascii").strip()[:64]
    except OSError:
        machine_id = ""
    if not machine_id:
        raise ConfigError(f"{machine_id_file}: missing or empty; run systemd-machine-id-setup")
    serial = ""
    for path in serial_files:
        try:
            value = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        if value.lower() not in _PLACEHOLDER_SERIALS:
            serial = value[:64]
            break
    return MachineFacts(machine_id, socket.gethostname()[:253], serial)


@dataclass(frozen=True, slots=True)
class IdentityInfo:
    agent_id: str
    centre: str
    province: str
    report_endpoint: str
    enroll_endpoint: str
    status: str


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_csr(key: ec.EllipticCurvePrivateKey, facts: MachineFacts) -> bytes:
    """CSR naming the machine; the gateway replaces the subject with the identity it assigns."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, facts.machine_id)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def _write_0600(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _replace_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    _write_0600(tmp, data)
    os.replace(tmp, path)


class IdentityStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.dir = state_dir / IDENTITY_DIR

    @property
    def present(self) -> bool:
        return (self.dir / "cert.pem").is_file() and (self.dir / "key.pem").is_file()

    def install(self, key: ec.EllipticCurvePrivateKey, cert_pem: bytes, ca_pem: bytes, info: IdentityInfo) -> None:
        """Write a complete identity beside the old one, then swap it in with renames."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".identity-", dir=self.state_dir))
        try:
            os.chmod(staging, 0o700)
            _write_0600(staging / "key.pem", key_pem(key))
            _write_0600(staging / "cert.pem", cert_pem)
            _write_0600(staging / "ca.pem", ca_pem)
            _write_0600(staging / "identity.json", json.dumps(asdict(info), indent=2).encode())
            old = None
            if self.dir.exists():
                old = self.state_dir / f".identity-old-{os.getpid()}"
                os.replace(self.dir, old)
            os.replace(staging, self.dir)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def info(self) -> IdentityInfo:
        try:
            data = json.loads((self.dir / "identity.json").read_text(encoding="utf-8"))
            return IdentityInfo(**{k: str(data[k]) for k in IdentityInfo.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(f"{self.dir}/identity.json: missing or damaged; enrol this PC again") from None

    def key(self) -> ec.EllipticCurvePrivateKey:
        try:
            key = serialization.load_pem_private_key((self.dir / "key.pem").read_bytes(), password=None)
        except (OSError, ValueError):
            raise ConfigError(f"{self.dir}/key.pem: missing or damaged; enrol this PC again") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{self.dir}/key.pem: not an EC key")
        return key

    def key_pem(self) -> bytes:
        return (self.dir / "key.pem").read_bytes()

    def cert_pem(self) -> bytes:
        return (self.dir / "cert.pem").read_bytes()

    def ca_pem(self) -> bytes:
        return (self.dir / "ca.pem").read_bytes()

    def certificate(self) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(self.cert_pem())
        except (OSError, ValueError):
            raise ConfigError(f"{self.dir}/cert.pem: missing or damaged; enrol this PC again") from None

    def replace_certificate(self, cert_pem: bytes, ca_pem: bytes, info: IdentityInfo) -> None:
        _replace_file(self.dir / "cert.pem", cert_pem)
        _replace_file(self.dir / "ca.pem", ca_pem)
        _replace_file(self.dir / "identity.json", json.dumps(asdict(info), indent=2).encode())

    def check(self, now: dt.datetime | None = None) -> str:
        """'' when the certificate is current and chains to ca.pem, else why not."""
        cert = self.certificate()
        now = now or dt.datetime.now(dt.UTC)
        if now > cert.not_valid_after_utc:
            return "certificate expired"
        if now < cert.not_valid_before_utc:
            return "certificate not yet valid (check the clock)"
        if not chains_to(cert, self.ca_pem()):
            return "certificate not issued by the stored CA"
        return ""


def chains_to(cert: x509.Certificate, ca_pem: bytes) -> bool:
    for ca in x509.load_pem_x509_certificates(ca_pem):
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def renew_at(cert: x509.Certificate) -> dt.datetime:
    """Half the certificate's lifetime."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) / 2
