"""CSCA trust store: a directory of PEM/DER certificates and ICAO master lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.domain.idcard import Verdict
from agent.drivers.idcard.trust_store import TrustStore
from agent.drivers.idcard.verification import passive_authentication
from agent.errors import ConfigError, DataFormatError
from agent.simulator.emrtd import EmulatedEmrtd, sample_cccd
from agent.simulator.emrtd.pki import build_master_list, build_pki


def _sod_and_groups() -> tuple[bytes, dict[int, bytes]]:
    card = EmulatedEmrtd(sample_cccd())
    return card.issued.files[0x011D], {1: card.issued.files[0x0101]}


def test_directory_with_pem_and_der(tmp_path: Path) -> None:
    vn = build_pki("VN", "ec")
    other = build_pki("UT", "rsa")
    (tmp_path / "vn.pem").write_bytes(vn.csca_pem)
    (tmp_path / "ut.der").write_bytes(other.csca_der)
    (tmp_path / "README.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    store = TrustStore.from_directory(tmp_path)
    assert len(store) == 2
    sod, groups = _sod_and_groups()
    assert passive_authentication(sod, groups, store).verdict is Verdict.VALID


def test_master_list_import(tmp_path: Path) -> None:
    vn = build_pki("VN", "ec")
    other = build_pki("UT", "rsa")
    master = build_master_list([vn.csca_cert, other.csca_cert], vn)
    store = TrustStore()
    assert store.import_master_list(master) == 2
    sod, groups = _sod_and_groups()
    assert passive_authentication(sod, groups, store).verdict is Verdict.VALID
    (tmp_path / "icao.ml").write_bytes(master)
    assert len(TrustStore.from_directory(tmp_path)) == 2


def test_master_list_with_a_broken_signature_is_rejected() -> None:
    vn = build_pki("VN", "ec")
    master = bytearray(build_master_list([vn.csca_cert], vn))
    master[-10] ^= 0xFF
    with pytest.raises(DataFormatError):
        TrustStore().import_master_list(bytes(master))


def test_master_list_signed_outside_the_list_is_rejected() -> None:
    vn = build_pki("VN", "ec")
    other = build_pki("UT", "rsa")
    with pytest.raises(DataFormatError):
        TrustStore().import_master_list(build_master_list([other.csca_cert], vn))


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        TrustStore.from_directory(tmp_path / "missing")
    with pytest.raises(DataFormatError):
        TrustStore().add_certificate(b"not a certificate")
    with pytest.raises(DataFormatError):
        TrustStore().import_master_list(b"\x30\x03\x02\x01\x00")
    (tmp_path / "bad.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(DataFormatError):
        TrustStore.from_directory(tmp_path)


def test_certificate_chain_checks_without_the_fast_parser() -> None:
    """The asn1crypto path (used when cryptography refuses a certificate) agrees with it."""
    import dataclasses

    from agent.drivers.idcard.certificates import Certificate

    vn = build_pki("VN", "ec")
    rsa_pki = build_pki("UT", "rsa")
    for pki in (vn, rsa_pki):
        csca = Certificate.load(pki.csca_der)
        ds = Certificate.load(pki.ds_der)
        slow_ds, slow_csca = dataclasses.replace(ds, fast=None), dataclasses.replace(csca, fast=None)
        assert ds.names_issuer(csca)
        assert slow_ds.names_issuer(slow_csca)
        assert ds.issued_by(csca)
        assert slow_ds.issued_by(slow_csca)
    wrong = dataclasses.replace(Certificate.load(rsa_pki.csca_der), fast=None)
    assert not dataclasses.replace(Certificate.load(vn.ds_der), fast=None).issued_by(wrong)
    assert not Certificate.load(vn.ds_der).names_issuer(Certificate.load(rsa_pki.csca_der))


def test_a_remembered_issuer_check_follows_the_store() -> None:
    """The DS-chain memo: a CSCA that names the DS issuer but did not sign it stays INVALID on
    every read, and adding the real CSCA is seen at once (the memo is cleared)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    vn = build_pki("VN", "ec")
    real = vn.csca_cert
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    # Same name and (claimed) key id as the real CSCA, another key.
    impostor = (
        x509.CertificateBuilder().subject_name(real.subject).issuer_name(real.subject)
        .public_key(impostor_key.public_key()).serial_number(7)
        .not_valid_before(real.not_valid_before_utc).not_valid_after(real.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(real.public_key()), critical=False)
        .sign(impostor_key, hashes.SHA256())
    )
    assert impostor.not_valid_before_utc < dt.datetime.now(dt.UTC)
    store = TrustStore()
    store.add_certificate(impostor.public_bytes(Encoding.DER))
    sod, groups = _sod_and_groups()
    for _ in range(2):
        result = passive_authentication(sod, groups, store)
        assert result.verdict is Verdict.INVALID
        assert result.details == ["DS certificate signature does not verify with the CSCA"]
    store.add_certificate(vn.csca_der)
    assert passive_authentication(sod, groups, store).verdict is Verdict.VALID
    assert passive_authentication(sod, groups, TrustStore()).verdict is Verdict.UNKNOWN_ISSUER
