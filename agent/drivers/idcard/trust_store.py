"""CSCA trust store: country signing CA certificates from a directory of PEM/DER files and
from ICAO master lists (CMS SignedData of a CscaMasterList, eContentType 2.23.136.1.1.2),
plus the CSCAs' CRLs of Document Signer certificates (``.crl``).

Loading reads files: call it at start-up (through ``ctx.run_blocking`` from async code).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from asn1crypto import cms, core, pem, x509

from agent.drivers.idcard.certificates import Certificate, RevocationList
from agent.drivers.idcard.signatures import signed_content_verifies
from agent.errors import ConfigError, DataFormatError

ID_CSCA_MASTER_LIST = "2.23.136.1.1.2"
_CERT_SUFFIXES = {".pem", ".crt", ".cer", ".der"}
_MASTER_LIST_SUFFIXES = {".ml", ".ldif.ml", ".p7m", ".p7b"}
_CRL_SUFFIXES = {".crl"}


class CertificateSet(core.SetOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = x509.Certificate


class CscaMasterList(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("version", core.Integer), ("cert_list", CertificateSet)]


def read_master_list(data: bytes, known: list[Certificate] | tuple[Certificate, ...] = ()) -> list[Certificate]:
    """The CSCA certificates of an ICAO master list (PEM or DER CMS SignedData).

    The CMS signature must verify with the master-list signer's certificate (the one the
    SignerInfo names, else the first), and that signer must be issued by a CSCA either in the
    list itself or in ``known`` (an existing trust bundle); otherwise :class:`DataFormatError`.
    """
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
        candidates = [c.chosen for c in signed["certificates"] if c.name == "certificate"]
        signer_cert = _named_signer(signer, candidates)
    except DataFormatError:
        raise
    except Exception as exc:
        raise DataFormatError("master list is not valid CMS") from exc
    if not signed_content_verifies(signer, signer_cert, raw):
        raise DataFormatError("master list signature does not verify")
    loaded = [Certificate.load(c.dump()) for c in certs]
    signer_loaded = Certificate.load(signer_cert.dump())
    if not any(signer_loaded.names_issuer(c) and signer_loaded.issued_by(c) for c in [*loaded, *known]):
        raise DataFormatError("master list signer is not issued by a CSCA in the list or the bundle")
    return loaded


def _named_signer(signer: cms.SignerInfo, candidates: list[x509.Certificate]) -> x509.Certificate:
    sid = signer["sid"]
    for cert in candidates:
        if sid.name == "issuer_and_serial_number":
            if (cert.serial_number == sid.chosen["serial_number"].native
                    and cert.issuer == sid.chosen["issuer"]):
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    if not candidates:
        raise DataFormatError("master list carries no signer certificate")
    return candidates[0]


#: How many Document Signer certificates :meth:`TrustStore.find_issuer` remembers.
_ISSUER_MEMO_SIZE = 256


class TrustStore:
    """A set of CSCA certificates, matched to a Document Signer by issuer name and key id."""

    def __init__(self) -> None:
        self._certs: dict[bytes, Certificate] = {}
        self._crls: dict[bytes, RevocationList] = {}
        #: DS certificate DER -> the outcome of :meth:`find_issuer` (see there). Bounded.
        self._issuer_memo: dict[bytes, tuple[bool, Certificate | None]] = {}
        self._memo_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._certs)

    def _add(self, cert: Certificate) -> None:
        self._certs[hashlib.sha256(cert.der).digest()] = cert
        with self._memo_lock:
            self._issuer_memo.clear()

    def add_certificate(self, data: bytes) -> Certificate:
        """Add one certificate, PEM or DER."""
        if pem.detect(data):
            try:
                _, _, data = pem.unarmor(data)
            except Exception as exc:
                raise DataFormatError("not a PEM certificate") from exc
        cert = Certificate.load(data)
        self._add(cert)
        return cert

    def import_master_list(self, data: bytes) -> int:
        """Add every CSCA of a master list whose signature verifies; returns how many."""
        loaded = read_master_list(data)
        for cert in loaded:
            self._add(cert)
        return len(loaded)

    def add_crl(self, data: bytes) -> RevocationList:
        """Add one Document Signer CRL (DER or PEM). Its signature is checked against the
        CSCA that names it when a certificate is judged (:meth:`revocation_of`)."""
        crl = RevocationList.load(data)
        self._crls[hashlib.sha256(crl.der).digest()] = crl
        with self._memo_lock:
            self._issuer_memo.clear()
        return crl

    def certificates(self) -> list[Certificate]:
        return list(self._certs.values())

    def crls(self) -> list[RevocationList]:
        return list(self._crls.values())

    @classmethod
    def union(cls, *stores: TrustStore) -> TrustStore:
        """A new store holding every CSCA and CRL of ``stores``."""
        merged = cls()
        for store in stores:
            merged._certs.update(store._certs)
            merged._crls.update(store._crls)
        return merged

    def revocation_of(self, cert: Certificate, issuer: Certificate) -> str | None:
        """Why ``cert`` (issued by ``issuer``) is revoked according to a CRL of this store
        signed by ``issuer``, or None when no such CRL lists it."""
        for crl in self._crls.values():
            if crl.issuer_der != issuer.subject_der or not crl.signed_by(issuer):
                continue
            revoked = crl.revoked(cert)
            if revoked is not None:
                return revoked
        return None

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
            if entry.suffix.lower() in _CRL_SUFFIXES:
                store.add_crl(data)
            elif entry.suffix.lower() in _MASTER_LIST_SUFFIXES:
                store.import_master_list(data)
            elif entry.suffix.lower() in _CERT_SUFFIXES:
                store.add_certificate(data)
        return store

    def issuers_of(self, cert: Certificate) -> list[Certificate]:
        """CSCA certificates whose subject (and key id, when both carry one) matches
        ``cert``'s issuer."""
        return [candidate for candidate in self._certs.values() if cert.names_issuer(candidate)]

    def find_issuer(self, cert: Certificate) -> tuple[bool, Certificate | None]:
        """Whether any CSCA names ``cert``'s issuer, and the first of those whose key signed
        ``cert`` (None when none did). Validity periods are left to the caller.

        Remembered per certificate: a Document Signer signs months of issued documents, so the
        next card at a counter almost always carries a DS certificate already checked, and the
        signature check of the chain (a public-key operation) is done once. The memo is
        bounded and is cleared whenever a CSCA is added.
        """
        with self._memo_lock:
            known = self._issuer_memo.get(cert.der)
        if known is not None:
            return known
        candidates = self.issuers_of(cert)
        outcome = (bool(candidates), next((csca for csca in candidates if cert.issued_by(csca)), None))
        with self._memo_lock:
            if len(self._issuer_memo) >= _ISSUER_MEMO_SIZE:
                self._issuer_memo.pop(next(iter(self._issuer_memo)))
            self._issuer_memo[cert.der] = outcome
        return outcome
