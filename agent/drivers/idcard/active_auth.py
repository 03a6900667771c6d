"""Active authentication (ICAO 9303 Part 11, 6.1): the chip signs a terminal challenge with
the private key whose public half is in DG15. RSA uses ISO/IEC 9796-2 digital signature
scheme 1 (partial message recovery); ECDSA signatures are plain r||s."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from agent.domain.idcard import Verdict
from agent.drivers.idcard import tlv
from agent.drivers.idcard.apdu import SW_OK, CommandApdu
from agent.drivers.idcard.channel import CardChannel
from agent.drivers.idcard.signatures import PublicKey, hash_algorithm, load_public_key
from agent.drivers.idcard.verification import CheckResult
from agent.errors import DataFormatError

TAG_DG15 = 0x6F

#: ISO/IEC 10118-3 hash identifiers used in the 9796-2 trailer 'xx CC'
TRAILER_HASHES = {0x33: "sha1", 0x34: "sha256", 0x35: "sha512", 0x36: "sha384", 0x38: "sha224"}
ECDSA_OIDS = {
    "1.2.840.10045.4.1": "sha1", "1.2.840.10045.4.3.1": "sha224", "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384", "1.2.840.10045.4.3.4": "sha512",
}


def parse_dg15(data: bytes) -> PublicKey:
    return load_public_key(tlv.parse_single(data, TAG_DG15).value)


def verify_iso9796_2(key: rsa.RSAPublicKey, signature: bytes, challenge: bytes) -> bool:
    """ISO/IEC 9796-2 scheme 1 with message recovery; M2 is the challenge."""
    numbers = key.public_numbers()
    k = (numbers.n.bit_length() + 7) // 8
    s = int.from_bytes(signature, "big")
    if not 0 < s < numbers.n:
        return False
    m = pow(s, numbers.e, numbers.n)
    if m & 0x0F != 0x0C:
        m = numbers.n - m
    rep = m.to_bytes(k, "big")
    if rep[-1] == 0xBC:
        name, trailer = "sha1", 1
    elif rep[-1] == 0xCC and rep[-2] in TRAILER_HASHES:
        name, trailer = TRAILER_HASHES[rep[-2]], 2
    else:
        return False
    hlen = hash_algorithm(name).digest_size
    if rep[0] & 0xC0 != 0x40 or len(rep) < 1 + hlen + trailer:
        return False
    m1 = rep[1:len(rep) - hlen - trailer]
    digest = rep[len(rep) - hlen - trailer:len(rep) - trailer]
    return hmac.compare_digest(hashlib.new(name, m1 + challenge).digest(), digest)


def verify_ecdsa_plain(key: ec.EllipticCurvePublicKey, signature: bytes, challenge: bytes,
                       hash_name: str) -> bool:
    if not signature or len(signature) % 2:
        return False
    half = len(signature) // 2
    r, s = int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    der = encode_dss_signature(r, s)
    try:
        key.verify(der, challenge, ec.ECDSA(hash_algorithm(hash_name)))
    except InvalidSignature:
        return False
    return True


async def active_authentication(channel: CardChannel, dg15: bytes | None, signature_oid: str | None, *,
                                while_waiting: Callable[[], object] | None = None) -> CheckResult:
    """INTERNAL AUTHENTICATE with a fresh challenge, the answer checked with the DG15 key.

    ``while_waiting`` is called just before the command goes out: the card's signature is a
    long wait, so work started then (in another thread) costs the read nothing.
    """
    if dg15 is None:
        return CheckResult(Verdict.NOT_SUPPORTED, ["no DG15"])
    try:
        key = parse_dg15(dg15)
    except DataFormatError:
        return CheckResult(Verdict.INVALID, ["DG15 public key malformed"])
    challenge = secrets.token_bytes(8)
    extended = channel.extended_length
    if while_waiting is not None:
        while_waiting()
    answer = await channel.send(CommandApdu(0x00, 0x88, 0x00, 0x00, challenge, le=256), extended=extended)
    if answer.sw != SW_OK or not answer.data:
        return CheckResult(Verdict.INVALID, ["INTERNAL AUTHENTICATE refused"])
    if isinstance(key, rsa.RSAPublicKey):
        ok = verify_iso9796_2(key, answer.data, challenge)
    else:
        hash_name = ECDSA_OIDS.get(signature_oid or "", "sha256")
        ok = verify_ecdsa_plain(key, answer.data, challenge, hash_name)
    if ok:
        return CheckResult(Verdict.VALID)
    return CheckResult(Verdict.INVALID, ["AA signature does not verify"])
