"""The trust bundle the gateway serves to agents for passive authentication of ID cards.

Entries are CSCA certificates and Document Signer CRLs. ``centre-gateway trust import FILE``
recognises what a file holds:

- a certificate (PEM or DER): added as a CSCA as it is (the operator vouches for it);
- an ICAO master list (CMS SignedData, eContentType 2.23.136.1.1.2): its signature must
  verify with the master-list signer certificate, and that signer must be issued by a CSCA
  that is **either in the list itself or already in the bundle** (the rule of ICAO 9303-12's
  self-signed master lists, plus lists signed under a CSCA imported earlier). Only then is any
  entry used; otherwise the import is refused with the reason;
- a CRL (PEM or DER): accepted only when signed by a CSCA already in the bundle.

Parsing reuses the agent's own readers (:mod:`agent.drivers.idcard.trust_store`,
:mod:`agent.drivers.idcard.certificates`), so the gateway accepts exactly what agents can use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.drivers.idcard.certificates import Certificate, RevocationList
from agent.drivers.idcard.trust_store import read_master_list
from agent.errors import DataFormatError, InvalidRequestError

CSCA, CRL = "csca", "crl"


@dataclass(frozen=True, slots=True)
class TrustEntry:
    """One served entry. ``fingerprint`` is the SHA-256 of ``der`` (hex)."""

    kind: str  # CSCA or CRL
    der: bytes
    subject: str  # a CSCA's subject, a CRL's issuer
    country: str
    serial: str  # hex; a CRL's number when it has one
    not_before_ms: int
    not_after_ms: int  # a CRL's next update (0 when none)
    source: str  # "certificate FILE", "master list FILE", "crl FILE"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest()


def _ms(when: dt.datetime | None) -> int:
    return int(when.timestamp() * 1000) if when is not None else 0


def _country(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    return str(values[0].value) if values else ""


def csca_entry(cert: Certificate, source: str) -> TrustEntry:
    if cert.fast is not None:
        subject, country = cert.fast.subject.rfc4514_string(), _country(cert.fast.subject)
        serial = format(cert.fast.serial_number, "x")
    else:
        subject, country = str(cert.asn1.subject.human_friendly), str(cert.asn1.subject.native.get("country_name", ""))
        serial = format(int(cert.asn1.serial_number), "x")
    return TrustEntry(CSCA, cert.der, subject, country, serial, _ms(cert.not_before), _ms(cert.not_after), source)


def crl_entry(crl: RevocationList, source: str) -> TrustEntry:
    try:
        number = crl.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        serial = format(number, "x")
    except x509.ExtensionNotFound:
        serial = ""
    return TrustEntry(CRL, crl.der, crl.issuer_name(), _country(crl.crl.issuer), serial,
                      _ms(crl.crl.last_update_utc), _ms(crl.crl.next_update_utc), source)


def _load_certificate(data: bytes) -> Certificate | None:
    from asn1crypto import pem

    raw = data
    if pem.detect(data):
        try:
            kind, _, raw = pem.unarmor(data)
        except ValueError:
            return None
        if kind != "CERTIFICATE":
            return None
    try:
        return Certificate.load(raw)
    except DataFormatError:
        return None


def entries_from_file(data: bytes, name: str, bundle: list[TrustEntry]) -> list[TrustEntry]:
    """What importing ``data`` (a file called ``name``) adds, checked against ``bundle``.

    Raises :class:`InvalidRequestError` saying why a file is refused.
    """
    cscas = [Certificate.load(e.der) for e in bundle if e.kind == CSCA]
    cert = _load_certificate(data)
    if cert is not None:
        return [csca_entry(cert, f"certificate {name}")]
    try:
        listed = read_master_list(data, cscas)
    except DataFormatError as exc:
        if str(exc.message) != "master list is not valid CMS":
            raise InvalidRequestError(f"{name}: master list refused: {exc.message}") from exc
    else:
        if not listed:
            raise InvalidRequestError(f"{name}: master list holds no certificate")
        return [csca_entry(c, f"master list {name}") for c in listed]
    try:
        crl = RevocationList.load(data)
    except DataFormatError:
        raise InvalidRequestError(f"{name}: neither a certificate, an ICAO master list nor a CRL") from None
    if not any(crl.issuer_der == c.subject_der and crl.signed_by(c) for c in cscas):
        raise InvalidRequestError(f"{name}: CRL refused: not signed by a CSCA in the bundle ({crl.issuer_name()})")
    return [crl_entry(crl, f"crl {name}")]


def bundle_version(counter: int, entries: list[TrustEntry]) -> str:
    """``<changes>.<digest of the entries>``: changes on every import or removal."""
    digest = hashlib.sha256("".join(sorted(e.fingerprint for e in entries)).encode()).hexdigest()[:16]
    return f"{counter}.{digest}"
