"""Passive authentication checks the Document Signer certificate against the CRLs it has."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from agent.domain.idcard import Verdict
from agent.drivers.idcard.trust_store import TrustStore
from agent.drivers.idcard.verification import passive_authentication
from agent.simulator.emrtd import EmulatedEmrtd, sample_cccd
from agent.simulator.emrtd import pki as emrtd_pki
from agent.simulator.emrtd.pki import build_pki


def crl_of(pki: emrtd_pki.TestPki, revoked_serials: list[int], *, signer: emrtd_pki.TestPki | None = None) -> bytes:
    """A CRL issued in ``pki``'s CSCA's name, signed by ``signer``'s CSCA key (default: the same)."""
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(pki.csca_cert.subject)
               .last_update(now - dt.timedelta(days=1)).next_update(now + dt.timedelta(days=30))
               .add_extension(x509.CRLNumber(7), critical=False))
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - dt.timedelta(hours=1))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False).build())
    key = (signer or pki).csca_key
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _passive(trust: TrustStore) -> tuple[Verdict, list[str]]:
    card = EmulatedEmrtd(sample_cccd())
    files = card.issued.files
    result = passive_authentication(files[0x011D], {1: files[0x0101], 2: files[0x0102]}, trust)
    return result.verdict, result.details


def _trust(*crls: bytes) -> TrustStore:
    trust = TrustStore()
    trust.add_certificate(build_pki().csca_der)
    for crl in crls:
        trust.add_crl(crl)
    return trust


def test_a_revoked_document_signer_is_invalid_with_the_reason() -> None:
    pki = build_pki()
    verdict, details = _passive(_trust(crl_of(pki, [pki.ds_cert.serial_number])))
    assert verdict is Verdict.INVALID
    (note,) = details
    assert "DS certificate revoked on" in note, note
    assert "key_compromise" in note, note


def test_a_crl_that_does_not_list_the_signer_leaves_it_valid() -> None:
    pki = build_pki()
    assert _passive(_trust(crl_of(pki, [pki.ds_cert.serial_number + 1])))[0] is Verdict.VALID


def test_a_crl_not_signed_by_the_csca_is_ignored() -> None:
    pki = build_pki()
    forged = crl_of(pki, [pki.ds_cert.serial_number], signer=build_pki(label="rogue"))
    assert _passive(_trust(forged))[0] is Verdict.VALID


def test_union_keeps_crls() -> None:
    pki = build_pki()
    local = TrustStore()
    local.add_certificate(pki.csca_der)
    bundle = TrustStore()
    bundle.add_crl(crl_of(pki, [pki.ds_cert.serial_number]))
    assert _passive(TrustStore.union(local, bundle))[0] is Verdict.INVALID
    assert _passive(local)[0] is Verdict.VALID
