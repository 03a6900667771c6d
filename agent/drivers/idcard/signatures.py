"""Signature checks shared by passive authentication, certificate chains and master lists:
RSA PKCS#1 v1.5, RSASSA-PSS and ECDSA, with keys on named or explicit curves."""

from __future__ import annotations

import hashlib

from asn1crypto import algos, cms, x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from agent.drivers.idcard.security_infos import parse_ec_spki
from agent.errors import DataFormatError, NotSupportedError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


def hash_algorithm(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name]()
    except KeyError:
        raise NotSupportedError(f"unsupported hash algorithm {name}") from None


def load_public_key(spki_der: bytes) -> PublicKey:
    """A public key from a SubjectPublicKeyInfo; explicit EC parameters are matched to
    the standardized curve they describe."""
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, UnsupportedAlgorithm):
        curve, point = parse_ec_spki(spki_der)
        if curve.crypto_curve is None:
            raise DataFormatError("public key on a curve the crypto library lacks") from None
        return ec.EllipticCurvePublicNumbers(point[0], point[1], curve.crypto_curve).public_key()
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return key
    raise DataFormatError("public key type is neither RSA nor EC")


def certificate_key(cert: x509.Certificate) -> PublicKey:
    return load_public_key(cert["tbs_certificate"]["subject_public_key_info"].dump())


def verify(key: PublicKey, algorithm: algos.SignedDigestAlgorithm, digest_name: str | None,
           signature: bytes, data: bytes) -> bool:
    """True when ``signature`` over ``data`` verifies; False for a wrong signature or a
    key/algorithm mismatch. ``digest_name`` overrides the hash (CMS digestAlgorithm)."""
    try:
        sig_algo = algorithm.signature_algo
        if sig_algo == "rsassa_pss":
            params = algorithm["parameters"]
            pss_hash = hash_algorithm(params["hash_algorithm"]["algorithm"].native)
            mgf_hash = hash_algorithm(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            key.verify(signature, data, padding.PSS(padding.MGF1(mgf_hash), params["salt_length"].native),
                       pss_hash)
            return True
        name = digest_name or algorithm.hash_algo
        chosen = hash_algorithm(name)
        if sig_algo == "rsassa_pkcs1v15":
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            key.verify(signature, data, padding.PKCS1v15(), chosen)
            return True
        if sig_algo == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return False
            key.verify(signature, data, ec.ECDSA(chosen))
            return True
    except InvalidSignature:
        return False
    except (ValueError, TypeError, KeyError) as exc:
        raise DataFormatError("signature algorithm parameters are malformed") from exc
    raise NotSupportedError("unsupported signature algorithm")


def verify_certificate(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``cert``."""
    return verify(certificate_key(issuer), cert["signature_algorithm"], None, cert["signature_value"].native,
                  cert["tbs_certificate"].dump())


def signed_attributes_der(signer: cms.SignerInfo) -> bytes:
    """The DER of the signed attributes as signed: a SET OF, not the [0] IMPLICIT form."""
    encoded: bytes = signer["signed_attrs"].dump()
    return b"\x31" + encoded[1:]


def signed_content_verifies(signer: cms.SignerInfo, signer_cert: x509.Certificate, content: bytes, *,
                            key: PublicKey | None = None) -> bool:
    """The CMS signer's messageDigest matches ``content`` and its signature over the signed
    attributes verifies with ``signer_cert``'s key (``key``, when the caller has already
    parsed it out of that very certificate)."""
    digest_name = signer["digest_algorithm"]["algorithm"].native
    h = hashlib.new(hash_algorithm(digest_name).name, content).digest()
    message_digest = None
    for attr in signer["signed_attrs"]:
        if attr["type"].native == "message_digest":
            message_digest = attr["values"][0].native
    if message_digest != h:
        return False
    return verify(key or certificate_key(signer_cert), signer["signature_algorithm"], digest_name,
                  signer["signature"].native, signed_attributes_der(signer))
