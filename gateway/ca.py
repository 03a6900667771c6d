"""The gateway's certificate authority: signs agent CSRs and its own TLS server certificate.

Generated on first run into ``<state_dir>/ca/`` (EC P-256, key 0600), or supplied by the
operator (``identity.ca_cert`` + ``identity.ca_key``). The CSR's subject and extensions are
ignored: the gateway writes the identity it assigned (CN = agent id, OU = centre,
ST = province) and the client-auth usage itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.attestation_verify import ATTESTATION_EKU
from agent.errors import ConfigError, InvalidRequestError, UnauthenticatedError

#: URI SAN carrying the identity, e.g. urn:centre-agent:HN:HN-BD-001:hn-bd-001-001
SAN_PREFIX = "urn:centre-agent:"


@dataclass(frozen=True, slots=True)
class CertIdentity:
    agent_id: str
    centre: str
    province: str
    serial: str  # hex
    not_after: dt.datetime
    spki_sha256: str


def spki_fingerprint(key: CertificatePublicKeyTypes) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateAuthority:
    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load_or_create(cls, directory: Path, *, cert_file: str = "", key_file: str = "",
                       name: str = "centre-gateway CA") -> CertificateAuthority:
        if cert_file or key_file:
            if not (cert_file and key_file):
                raise ConfigError("identity.ca_cert and identity.ca_key go together")
            return cls._load(Path(cert_file), Path(key_file))
        cert_path, key_path = directory / "ca.pem", directory / "ca.key"
        if cert_path.exists() and key_path.exists():
            return cls._load(cert_path, key_path)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert, key)

    @classmethod
    def _load(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"CA certificate/key {cert_path}: unreadable ({type(exc).__name__})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"CA key {key_path}: must be an EC key")
        if spki_fingerprint(key.public_key()) != spki_fingerprint(cert.public_key()):
            raise ConfigError(f"CA key {key_path} does not match {cert_path}")
        return cls(cert, key)

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, lifetime: dt.timedelta,
                 now: dt.datetime) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                .public_key(public_key).serial_number(x509.random_serial_number())
                # backdated a little for PCs whose clock runs behind (never more than 5 % of the life)
                .not_valid_before(now - min(dt.timedelta(minutes=5), lifetime / 20)).not_valid_after(now + lifetime)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False))

    def server_certificate(self, names: list[str], lifetime: dt.timedelta = dt.timedelta(days=825),
                           ) -> tuple[bytes, bytes]:
        """(cert PEM, key PEM) for the gateway's own TLS endpoints, valid for ``names``."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]), key.public_key(),
                              lifetime, _now())
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))

    def _agent_builder(self, csr: x509.CertificateSigningRequest, agent_id: str, centre: str, province: str,
                       lifetime: dt.timedelta, now: dt.datetime | None,
                       usage: x509.ObjectIdentifier) -> x509.CertificateBuilder:
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise InvalidRequestError("csr: key must be EC P-256")
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, centre),
                             x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, province)])
        san = x509.UniformResourceIdentifier(f"{SAN_PREFIX}{province}:{centre}:{agent_id}")
        return (self._builder(subject, public_key, lifetime, now or _now())
                .add_extension(x509.SubjectAlternativeName([san]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))

    def sign_agent(self, csr: x509.CertificateSigningRequest, agent_id: str, centre: str, province: str,
                   lifetime: dt.timedelta, now: dt.datetime | None = None) -> x509.Certificate:
        """Issue the client certificate. Only the CSR's public key is used."""
        return (self._agent_builder(csr, agent_id, centre, province, lifetime, now, ExtendedKeyUsageOID.CLIENT_AUTH)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                               critical=True)
                .sign(self.key, hashes.SHA256()))

    def sign_attestation(self, csr: x509.CertificateSigningRequest, agent_id: str, centre: str, province: str,
                         lifetime: dt.timedelta, now: dt.datetime | None = None) -> x509.Certificate:
        """Certificate of the agent's attestation key: the same subject as its client certificate,
        key usage digitalSignature and the attestation extended key usage only (never client
        authentication, so it cannot stand in for the PC's identity, nor the other way round)."""
        return (self._agent_builder(csr, agent_id, centre, province, lifetime, now, ATTESTATION_EKU)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                               critical=True)
                .sign(self.key, hashes.SHA256()))

    def verify_issued(self, cert: x509.Certificate) -> CertIdentity:
        """Check that we issued ``cert`` (signature only: validity dates are the caller's policy)."""
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            raise UnauthenticatedError("certificate not issued by this gateway's CA") from None
        return identity_of(cert)


def parse_csr(der: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError:
        raise InvalidRequestError("csr: not a DER PKCS#10 request") from None
    if not csr.is_signature_valid:
        raise InvalidRequestError("csr: signature does not verify (no proof of key possession)")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidRequestError("csr: key must be EC P-256")
    return csr


def identity_of(cert: x509.Certificate) -> CertIdentity:
    """The agent identity a client certificate carries. Only a certificate for client
    authentication counts: an agent's attestation certificate names the same agent but never
    stands in for its identity (mTLS, renewal)."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise UnauthenticatedError("certificate is not a client certificate") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise UnauthenticatedError("certificate is not a client certificate")
    def one(oid: x509.ObjectIdentifier) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    agent_id = one(NameOID.COMMON_NAME)
    centre = one(NameOID.ORGANIZATIONAL_UNIT_NAME)
    province = one(NameOID.STATE_OR_PROVINCE_NAME)
    if not (agent_id and centre and province):
        raise UnauthenticatedError("certificate carries no agent identity")
    return CertIdentity(agent_id, centre, province, format(cert.serial_number, "x"), cert.not_valid_after_utc,
                        spki_fingerprint(cert.public_key()))
