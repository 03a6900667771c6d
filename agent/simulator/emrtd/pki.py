"""Test PKI for emulated cards: a CSCA, a Document Signer issued by it, the signed EF.SOD,
and an ICAO master list. Keys are generated once per process (cached), so a run is
self-consistent and cheap. Every certificate is clearly marked as a test certificate."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from agent.drivers.idcard import tlv
from agent.drivers.idcard.lds import TAG_SOD
from agent.drivers.idcard.sod import ID_LDS_SECURITY_OBJECT, DataGroupHash, DataGroupHashes, LdsSecurityObject
from agent.drivers.idcard.trust_store import ID_CSCA_MASTER_LIST, CertificateSet, CscaMasterList

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class TestPki:
    """A CSCA and one DS certificate (cryptography objects, plus DER)."""

    csca_key: SigningKey
    csca_cert: x509.Certificate
    ds_key: SigningKey
    ds_cert: x509.Certificate

    @property
    def csca_der(self) -> bytes:
        return self.csca_cert.public_bytes(serialization.Encoding.DER)

    @property
    def csca_pem(self) -> bytes:
        return self.csca_cert.public_bytes(serialization.Encoding.PEM)

    @property
    def ds_der(self) -> bytes:
        return self.ds_cert.public_bytes(serialization.Encoding.DER)


def _new_key(kind: str) -> SigningKey:
    if kind == "rsa":
        return rsa.generate_private_key(65537, 2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(country: str, common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "centre-devices TEST ONLY"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _sign_hash() -> hashes.SHA256:
    return hashes.SHA256()


def make_certificate(subject: x509.Name, key: SigningKey, issuer: x509.Name, issuer_key: SigningKey, *,
                     ca: bool, not_before: dt.datetime, not_after: dt.datetime,
                     issuer_public: SigningKey | None = None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(subject.public_bytes()).digest()[:8], "big"))
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            (issuer_public or issuer_key).public_key()), critical=False)
    )
    return builder.sign(issuer_key, _sign_hash())


@functools.lru_cache(maxsize=16)
def _csca(country: str, kind: str, label: str) -> tuple[SigningKey, x509.Certificate]:
    key = _new_key(kind)
    name = _name(country, f"TEST CSCA {country}{(' ' + label) if label else ''}")
    cert = make_certificate(name, key, name, key, ca=True, not_before=_EPOCH,
                            not_after=_EPOCH + dt.timedelta(days=365 * 30))
    return key, cert


@functools.lru_cache(maxsize=16)
def _ds(country: str, kind: str, label: str, expired: bool) -> tuple[SigningKey, x509.Certificate]:
    csca_key, csca = _csca(country, kind, label)
    key = _new_key(kind)
    years = 1 if expired else 20
    cert = make_certificate(_name(country, f"TEST DS {country}{(' ' + label) if label else ''}"), key,
                            csca.subject, csca_key, ca=False, not_before=_EPOCH,
                            not_after=_EPOCH + dt.timedelta(days=365 * years))
    return key, cert


def build_pki(country: str = "VN", kind: str = "ec", *, ds_expired: bool = False, label: str = "") -> TestPki:
    """A CSCA + DS pair for ``country`` (cached per process); ``label`` makes an independent
    CSCA (an issuer nobody trusts); ``ds_expired`` a DS certificate that expired in 2021."""
    csca_key, csca = _csca(country, kind, label)
    ds_key, ds = _ds(country, kind, label, ds_expired)
    return TestPki(csca_key, csca, ds_key, ds)


def _signature_algorithm(key: SigningKey, pss: bool) -> algos.SignedDigestAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    if pss:
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": algos.RSASSAPSSParams({
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            "salt_length": 32,
        })})
    return algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})


def _sign(key: SigningKey, data: bytes, pss: bool) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if pss:
        return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def sign_content(content_type: str, content: bytes, key: SigningKey, cert: x509.Certificate, *,
                 pss: bool = False) -> bytes:
    """A CMS ContentInfo(SignedData) over ``content`` with signed attributes; ``pss`` signs
    with RSASSA-PSS (as several issuing states do) instead of PKCS#1 v1.5."""
    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    attrs = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": [content_type]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
    ])
    signature = _sign(key, attrs.dump(), pss)
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber({
            "issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number})}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": attrs,
        "signature_algorithm": _signature_algorithm(key, pss),
        "signature": signature,
    })
    signed = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
        "encap_content_info": {"content_type": content_type, "content": core.ParsableOctetString(content)},
        "certificates": [asn1_cert],
        "signer_infos": [signer],
    })
    der: bytes = cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()
    return der


def build_sod(pki: TestPki, dg_hashes: dict[int, bytes], hash_name: str = "sha256", *, pss: bool = False) -> bytes:
    """EF.SOD ('77' + ContentInfo) over the given data-group hashes."""
    lds = LdsSecurityObject({
        "version": 0,
        "hash_algorithm": algos.DigestAlgorithm({"algorithm": hash_name}),
        "data_group_hash_values": DataGroupHashes([
            DataGroupHash({"data_group_number": n, "data_group_hash_value": h})
            for n, h in sorted(dg_hashes.items())
        ]),
    })
    info = sign_content(ID_LDS_SECURITY_OBJECT, lds.dump(), pki.ds_key, pki.ds_cert, pss=pss)
    return tlv.encode(TAG_SOD, info)


def build_master_list(cscas: list[x509.Certificate], signer_pki: TestPki) -> bytes:
    """An ICAO CSCA master list carrying ``cscas``, signed by a master-list signer issued by
    ``signer_pki``'s CSCA (which is included in the list)."""
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer_cert = make_certificate(_name("VN", "TEST Master List Signer"), signer_key,
                                   signer_pki.csca_cert.subject, signer_pki.csca_key, ca=False,
                                   not_before=_EPOCH, not_after=_EPOCH + dt.timedelta(days=365 * 20))
    certs = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in cscas]
    master = CscaMasterList({"version": 0, "cert_list": CertificateSet(certs)})
    return sign_content(ID_CSCA_MASTER_LIST, master.dump(), signer_key, signer_cert)
