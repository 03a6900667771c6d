"""The PC's identity on disk: key, certificate, CA chain and where the gateway is.

Layout under ``<state_dir>/identity/`` (directory 0700, every file 0600)::

    key.pem        EC P-256 private key, made on this PC, never leaves it
    cert.pem       client certificate issued by the gateway's CA
    ca.pem         CA chain that verifies the gateway and the certificate
    identity.json  agent id, centre, province, report and enrolment endpoints
    attestation-cert.pem  certificate of the attestation key (``<state_dir>/attestation-key.pem``,
                   see :mod:`agent.provisioning.attestation_key`), when the gateway issued one

The directory appears in one ``rename`` after a successful enrolment: a failed or
interrupted enrolment leaves no half identity. Renewal replaces ``cert.pem`` (and
``key.pem`` when the key rotates) file by file with ``os.replace``.

Ownership: the service runs as the owner of the state directory (``centre-agent``), while
``centre-agent enroll`` runs as root. Whatever root writes here gets the state directory's
owner and group before it is renamed into place, so the service can always read its own
identity; run as the service user itself, the files are simply its own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.errors import ConfigError
from agent.provisioning.attestation_key import CERT_FILE as ATTESTATION_CERT
from agent.provisioning.attestation_key import KEY_FILE as ATTESTATION_KEY
from agent.provisioning.attestation_key import load as load_attestation_key
from agent.provisioning.attestation_key import save as save_attestation_key

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


Owner = tuple[int, int]


def service_owner(state_dir: Path) -> Owner | None:
    """The (uid, gid) that files root writes under ``state_dir`` must get: the directory's own.

    ``None`` when nothing needs changing: not running as root (files are then the writer's own,
    and the writer is the service), or the state directory itself belongs to root."""
    if os.geteuid() != 0:
        return None
    st = state_dir.stat()
    return None if (st.st_uid, st.st_gid) == (0, 0) else (st.st_uid, st.st_gid)


def _write_private(fd: int, data: bytes, owner: Owner | None) -> None:
    """Fill a freshly created file: 0600 whatever the umask, ``owner`` before any byte is in it."""
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        if owner is not None:
            os.fchown(f.fileno(), *owner)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_0600(path: Path, data: bytes, owner: Owner | None) -> None:
    _write_private(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), data, owner)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_file(path: Path, data: bytes, owner: Owner | None) -> None:
    """Write ``data`` beside ``path`` (0600, ``owner``), then rename it over ``path``."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        _write_private(fd, data, owner)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class IdentityStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.dir = state_dir / IDENTITY_DIR

    @property
    def present(self) -> bool:
        return (self.dir / "cert.pem").is_file() and (self.dir / "key.pem").is_file()

    def install(self, key: ec.EllipticCurvePrivateKey, cert_pem: bytes, ca_pem: bytes, info: IdentityInfo,
                attestation_cert_pem: bytes = b"") -> None:
        """Write a complete identity beside the old one, then swap it in with renames."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        owner = service_owner(self.state_dir)
        staging = Path(tempfile.mkdtemp(prefix=".identity-", dir=self.state_dir))
        try:
            os.chmod(staging, 0o700)
            if owner is not None:
                os.chown(staging, *owner)
            _write_0600(staging / "key.pem", key_pem(key), owner)
            _write_0600(staging / "cert.pem", cert_pem, owner)
            _write_0600(staging / "ca.pem", ca_pem, owner)
            _write_0600(staging / "identity.json", json.dumps(asdict(info), indent=2).encode(), owner)
            if attestation_cert_pem:
                _write_0600(staging / ATTESTATION_CERT, attestation_cert_pem, owner)
            _fsync_dir(staging)
            old = None
            if self.dir.exists():
                old = self.state_dir / f".identity-old-{os.getpid()}"
                os.replace(self.dir, old)
            os.replace(staging, self.dir)
            _fsync_dir(self.state_dir)
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

    def has_attestation_certificate(self) -> bool:
        return (self.dir / ATTESTATION_CERT).is_file()

    def attestation_key(self) -> tuple[ec.EllipticCurvePrivateKey, bool]:
        """(the attestation key, whether it is new): a new one is only in memory until
        :meth:`keep_attestation_key`, so a failed enrolment writes nothing."""
        key = load_attestation_key(self.state_dir / ATTESTATION_KEY)
        return (key, False) if key is not None else (new_key(), True)

    def keep_attestation_key(self, key: ec.EllipticCurvePrivateKey) -> None:
        """Store a new attestation key, owned like the identity."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        save_attestation_key(self.state_dir / ATTESTATION_KEY, key, service_owner(self.state_dir))

    def replace_certificate(self, cert_pem: bytes, ca_pem: bytes, info: IdentityInfo,
                            attestation_cert_pem: bytes = b"") -> None:
        owner = service_owner(self.state_dir)
        if attestation_cert_pem:
            _replace_file(self.dir / ATTESTATION_CERT, attestation_cert_pem, owner)
        _replace_file(self.dir / "cert.pem", cert_pem, owner)
        _replace_file(self.dir / "ca.pem", ca_pem, owner)
        _replace_file(self.dir / "identity.json", json.dumps(asdict(info), indent=2).encode(), owner)

    def give_to_service(self) -> list[str]:
        """Hand an identity root wrote with the wrong owner or mode (earlier versions did) back to
        the service user: directory 0700, files 0600, owner of the state directory. Returns
        the names it fixed (empty when nothing needed fixing or not running as root)."""
        owner = service_owner(self.state_dir)
        if owner is None or not self.dir.is_dir():
            return []
        fixed = []
        for path, mode in ((self.dir, 0o700), *((p, 0o600) for p in sorted(self.dir.iterdir()) if p.is_file())):
            st = path.lstat()
            if (st.st_uid, st.st_gid) != owner or stat.S_IMODE(st.st_mode) != mode:
                os.chown(path, *owner, follow_symlinks=False)
                os.chmod(path, mode)
                fixed.append(path.name)
        return fixed

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
