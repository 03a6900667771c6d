"""X.509 certificates of the eMRTD PKI (CSCA, Document Signer), parsed once.

The fields passive authentication needs come from ``cryptography``'s Rust parser, which is
much faster than walking the ASN.1 in Python; ``asn1crypto`` stays as the fallback for what
``cryptography`` refuses (explicit EC parameters, unusual encodings), so such certificates
still verify.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.drivers.idcard.signatures import PublicKey, verify_certificate
from agent.errors import DataFormatError, NotSupportedError


def _fast(der: bytes) -> x509.Certificate | None:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None


def _fast_key_ids(cert: x509.Certificate) -> tuple[bytes | None, bytes | None]:
    try:
        extensions = cert.extensions
    except ValueError:
        return None, None
    ski: bytes | None = None
    aki: bytes | None = None
    for ext in extensions:
        if isinstance(ext.value, x509.SubjectKeyIdentifier):
            ski = ext.value.digest
        elif isinstance(ext.value, x509.AuthorityKeyIdentifier):
            aki = ext.value.key_identifier
    return ski, aki


@dataclass(frozen=True)
class Certificate:
    """One certificate with the fields used to build and check a chain."""

    der: bytes
    asn1: asn1_x509.Certificate
    fast: x509.Certificate | None
    subject_der: bytes
    issuer_der: bytes
    key_id: bytes | None
    authority_key_id: bytes | None
    not_before: dt.datetime
    not_after: dt.datetime

    def __repr__(self) -> str:
        return f"Certificate({len(self.der)} bytes)"

    @classmethod
    def load(cls, der: bytes) -> Certificate:
        try:
            asn1 = asn1_x509.Certificate.load(der, strict=True)
            fast = _fast(der)
            if fast is not None:
                ski, aki = _fast_key_ids(fast)
                return cls(der, asn1, fast, fast.subject.public_bytes(), fast.issuer.public_bytes(), ski, aki,
                           fast.not_valid_before_utc, fast.not_valid_after_utc)
            validity = asn1["tbs_certificate"]["validity"]
            ski_value, aki_value = asn1.key_identifier, asn1.authority_key_identifier
            return cls(der, asn1, None, asn1.subject.dump(), asn1.issuer.dump(),
                       ski_value if isinstance(ski_value, bytes) else None,
                       aki_value if isinstance(aki_value, bytes) else None,
                       validity["not_before"].native, validity["not_after"].native)
        except DataFormatError:
            raise
        except Exception as exc:  # asn1crypto raises ValueError/TypeError/KeyError...
            raise DataFormatError("not an X.509 certificate") from exc

    def public_key(self) -> PublicKey | None:
        """The subject's key from the already parsed certificate, or None when only the slow
        path (asn1crypto, explicit curve parameters...) can produce it."""
        if self.fast is None:
            return None
        try:
            key = self.fast.public_key()
        except (ValueError, UnsupportedAlgorithm):
            return None
        return key if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else None

    def issuer_name(self) -> str:
        """The issuer's distinguished name, e.g. ``CN=CSCA Test,O=...,C=VN`` (for a DS certificate: a
        state's CSCA, never personal data)."""
        if self.fast is not None:
            return self.fast.issuer.rfc4514_string()
        return str(self.asn1.issuer.human_friendly)

    def valid_at(self, when: dt.datetime) -> bool:
        return self.not_before <= when <= self.not_after

    def names_issuer(self, issuer: Certificate) -> bool:
        """Whether this certificate's issuer is ``issuer``'s subject (and the key ids agree)."""
        if self.issuer_der != issuer.subject_der:
            try:
                if self.asn1.issuer != issuer.asn1.subject:  # RFC 5280 comparison (slow path)
                    return False
            except Exception:  # malformed names never match
                return False
        return self.authority_key_id is None or issuer.key_id is None or self.authority_key_id == issuer.key_id

    def issued_by(self, issuer: Certificate) -> bool:
        """Whether ``issuer``'s key signed this certificate."""
        if self.fast is not None and issuer.fast is not None:
            try:
                self.fast.verify_directly_issued_by(issuer.fast)
            except InvalidSignature:
                return False
            except (ValueError, TypeError, UnsupportedAlgorithm):
                pass  # name or algorithm cryptography will not judge: check it the slow way
            else:
                return True
        try:
            return verify_certificate(self.asn1, issuer.asn1)
        except (DataFormatError, NotSupportedError):
            return False


@functools.lru_cache(maxsize=64)
def load_certificate_cached(der: bytes) -> Certificate:
    """:meth:`Certificate.load`, remembering the last certificates loaded (by their whole DER):
    the Document Signer certificate in EF.SOD is the same for a great many cards."""
    return Certificate.load(der)


@dataclass(frozen=True)
class RevocationList:
    """A CRL of a CSCA: the Document Signer certificates it revoked."""

    der: bytes
    crl: x509.CertificateRevocationList
    issuer_der: bytes

    def __repr__(self) -> str:
        return f"RevocationList({len(self.der)} bytes)"

    @classmethod
    def load(cls, data: bytes) -> RevocationList:
        try:
            crl = (x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----")
                   else x509.load_der_x509_crl(data))
            der = crl.public_bytes(serialization.Encoding.DER)
            return cls(der, crl, crl.issuer.public_bytes())
        except ValueError as exc:
            raise DataFormatError("not an X.509 CRL") from exc

    def issuer_name(self) -> str:
        return self.crl.issuer.rfc4514_string()

    def signed_by(self, issuer: Certificate) -> bool:
        key = issuer.public_key()
        if key is None:
            return False
        try:
            return self.crl.is_signature_valid(key)
        except (TypeError, ValueError, UnsupportedAlgorithm):
            return False

    def revoked(self, cert: Certificate) -> str | None:
        """Why ``cert`` is on this list (``revoked on DATE[, REASON]``), or None."""
        serial = cert.fast.serial_number if cert.fast is not None else int(cert.asn1.serial_number)
        entry = self.crl.get_revoked_certificate_by_serial_number(serial)
        if entry is None:
            return None
        text = f"revoked on {entry.revocation_date_utc:%Y-%m-%d}"
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            return text
        return f"{text}, {reason.name}"
