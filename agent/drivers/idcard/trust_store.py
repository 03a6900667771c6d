"""CSCA trust store: country signing CA certificates from a directory of PEM/DER files and
from ICAO master lists (CMS SignedData of a CscaMasterList, eContentType 2.23.136.1.1.2).

Loading reads files: call it at start-up (through ``ctx.run_blocking`` from async code).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from asn1crypto import cms, core, pem, x509

from agent.drivers.idcard.signatures import signed_content_verifies, verify_certificate
from agent.errors import ConfigError, DataFormatError, NotSupportedError

ID_CSCA_MASTER_LIST = "2.23.136.1.1.2"
_CERT_SUFFIXES = {".pem", ".crt", ".cer", ".der"}
_MASTER_LIST_SUFFIXES = {".ml", ".ldif.ml", ".p7m", ".p7b"}


class CertificateSet(core.SetOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = x509.Certificate


class CscaMasterList(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("version", core.Integer), ("cert_list", CertificateSet)]


def _key_identifier(cert: x509.Certificate) -> bytes | None:
    value = cert.key_identifier
    return value if isinstance(value, bytes) else None


def _authority_key_identifier(cert: x509.Certificate) -> bytes | None:
    value = cert.authority_key_identifier
    return value if isinstance(value, bytes) else None


class TrustStore:
    """A set of CSCA certificates, matched to a Document Signer by issuer name and key id."""

    def __init__(self) -> None:
        self._certs: dict[bytes, x509.Certificate] = {}

    def __len__(self) -> int:
        return len(self._certs)

    def add_certificate(self, data: bytes) -> x509.Certificate:
        """Add one certificate, PEM or DER."""
        if pem.detect(data):
            _, _, data = pem.unarmor(data)
        try:
            cert = x509.Certificate.load(data, strict=True)
            cert.native  # noqa: B018 - parse fully now
        except Exception as exc:
            raise DataFormatError("not an X.509 certificate") from exc
        self._certs[hashlib.sha256(cert.dump()).digest()] = cert
        return cert

    def import_master_list(self, data: bytes) -> int:
        """Add every CSCA of a master list whose signature verifies; returns how many."""
        if pem.detect(data):
            _, _, data = pem.unarmor(data)
        try:
            info = cms.ContentInfo.load(data, strict=True)
            signed = info["content"]
            encap = signed["encap_content_info"]
            if encap["content_type"].dotted != ID_CSCA_MASTER_LIST:
                raise DataFormatError("not an ICAO CSCA master list")
            raw = encap["content"].parsed.dump() if isinstance(
                encap["content"], core.ParsableOctetString) else encap["content"].native
            master = CscaMasterList.load(raw, strict=True)
            certs = list(master["cert_list"])
            signer = signed["signer_infos"][0]
            signer_cert = next(c.chosen for c in signed["certificates"] if c.name == "certificate")
        except DataFormatError:
            raise
        except Exception as exc:
            raise DataFormatError("master list is not valid CMS") from exc
        if not signed_content_verifies(signer, signer_cert, raw):
            raise DataFormatError("master list signature does not verify")
        if not any(_issued_by(signer_cert, c) for c in certs):
            raise DataFormatError("master list signer is not issued by a CSCA in the list")
        for cert in certs:
            self._certs[hashlib.sha256(cert.dump()).digest()] = cert
        return len(certs)

    @classmethod
    def from_directory(cls, path: Path) -> TrustStore:
        """Load every certificate (``.pem .crt .cer .der``) and master list (``.ml``) in ``path``."""
        store = cls()
        if not path.is_dir():
            raise ConfigError(f"CSCA directory {path} does not exist")
        for entry in sorted(path.iterdir()):
            if not entry.is_file():
                continue
            data = entry.read_bytes()
            if entry.suffix.lower() in _MASTER_LIST_SUFFIXES:
                store.import_master_list(data)
            elif entry.suffix.lower() in _CERT_SUFFIXES:
                store.add_certificate(data)
        return store

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """CSCA certificates whose subject (and key id, when both carry one) matches
        ``cert``'s issuer."""
        aki = _authority_key_identifier(cert)
        out = []
        issuer_der = cert.issuer.dump()
        for candidate in self._certs.values():
            # byte equality first; the RFC 5280 name comparison (string prep) is slow
            if candidate.subject.dump() != issuer_der and candidate.subject != cert.issuer:
                continue
            ski = _key_identifier(candidate)
            if aki is not None and ski is not None and aki != ski:
                continue
            out.append(candidate)
        return out


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        return cert.issuer == issuer.subject and verify_certificate(cert, issuer)
    except (DataFormatError, NotSupportedError):
        return False


def certificate_valid_at(cert: x509.Certificate, when: dt.datetime) -> bool:
    validity = cert["tbs_certificate"]["validity"]
    return bool(validity["not_before"].native <= when <= validity["not_after"].native)
