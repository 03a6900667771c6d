"""PACE (ICAO 9303 Part 11, 4.4) with ECDH generic mapping, terminal side.

The protocol (OID: cipher suite) and the standardized domain parameters come from a
PACEInfo in EF.CardAccess. The password is the MRZ information or the CAN.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from agent.domain.idcard import AccessKey, CanKey, MrzKey
from agent.drivers.idcard import tlv
from agent.drivers.idcard.apdu import SW_AUTH_BLOCKED, SW_OK, CommandApdu, ResponseApdu, describe_sw
from agent.drivers.idcard.bac import WRONG_KEY_SWS, access_denied
from agent.drivers.idcard.channel import CardChannel
from agent.drivers.idcard.cipher_suite import KDF_ENC, KDF_MAC, KDF_PACE, CipherSuite
from agent.drivers.idcard.curves import Curve, Point, curve_for_parameter_id
from agent.drivers.idcard.mrz import pace_password
from agent.drivers.idcard.secure_messaging import SecureMessaging
from agent.drivers.idcard.security_infos import PaceInfo, encode_oid
from agent.errors import DataFormatError, DeviceProtocolError, InvalidRequestError

PASSWORD_MRZ = 0x01
PASSWORD_CAN = 0x02


@dataclass(frozen=True, slots=True)
class PacePassword:
    reference: int
    secret: bytes

    def __repr__(self) -> str:
        return f"PacePassword({self.reference}, <redacted>)"


def password_for(key: AccessKey) -> PacePassword:
    if isinstance(key, MrzKey):
        return PacePassword(PASSWORD_MRZ, pace_password(key))
    if isinstance(key, CanKey):
        if not (key.can.isdigit() and len(key.can) == 6):
            raise InvalidRequestError("CAN must be 6 digits")
        return PacePassword(PASSWORD_CAN, key.can.encode("ascii"))
    raise InvalidRequestError("unsupported access key type")


def set_at_data(info: PaceInfo, reference: int) -> bytes:
    data = tlv.encode(0x80, encode_oid(info.oid)) + tlv.encode(0x83, bytes([reference]))
    if info.parameter_id is not None:
        data += tlv.encode(0x84, bytes([info.parameter_id]))
    return data


def public_key_object(oid: str, curve: Curve, point: Point) -> bytes:
    """The ECDH public key data object '7F49' authenticated by the PACE tokens."""
    return tlv.encode(0x7F49, tlv.encode(0x06, encode_oid(oid)) + tlv.encode(0x86, curve.encode_point(point)))


def dynamic_data(response: ResponseApdu, tag: int) -> bytes:
    """The value of ``tag`` inside a GENERAL AUTHENTICATE response's '7C' template."""
    try:
        outer = tlv.parse_single(response.data, 0x7C)
        item = tlv.find(outer.children(), tag)
    except DataFormatError as exc:
        raise DeviceProtocolError("PACE: malformed GENERAL AUTHENTICATE response") from exc
    if item is None:
        raise DeviceProtocolError(f"PACE: GENERAL AUTHENTICATE response lacks tag {tag:02X}")
    return item.value


def map_generator(curve: Curve, nonce: int, shared: Point) -> Point:
    """Generic mapping: G' = s*G + H."""
    return curve.add(curve.multiply(nonce, curve.generator), shared)


def decrypt_nonce(suite: CipherSuite, password: PacePassword, encrypted: bytes) -> bytes:
    k_pi = suite.kdf(password.secret, KDF_PACE)
    return suite.decrypt(k_pi, encrypted)


async def _general_authenticate(channel: CardChannel, tag: int, value: bytes, *, last: bool,
                                step: str) -> ResponseApdu:
    data = tlv.encode(0x7C, tlv.encode(tag, value) if value or tag != 0 else b"")
    response = await channel.send(CommandApdu(0x00 if last else 0x10, 0x86, 0x00, 0x00, data, le=256))
    if response.sw == SW_OK:
        return response
    if response.sw in WRONG_KEY_SWS or response.sw == SW_AUTH_BLOCKED:
        raise access_denied(response.sw, "PACE")
    raise DeviceProtocolError(f"PACE: GENERAL AUTHENTICATE ({step}) failed ({describe_sw(response.sw)})")


async def perform_pace(channel: CardChannel, info: PaceInfo, key: AccessKey) -> SecureMessaging:
    """Run PACE-ECDH-GM with ``info``; on success install and return the secure channel.
    A wrong password raises AccessDeniedError after one attempt (no retry)."""
    if not info.supported or info.parameter_id is None:
        raise DeviceProtocolError("PACE: the card offers no supported protocol/parameters")
    password = password_for(key)
    suite = info.suite
    curve = curve_for_parameter_id(info.parameter_id)
    answer = await channel.send(CommandApdu(0x00, 0x22, 0xC1, 0xA4, set_at_data(info, password.reference)))
    if answer.sw == SW_AUTH_BLOCKED:
        raise access_denied(answer.sw, "PACE")
    if answer.sw != SW_OK:
        raise DeviceProtocolError(f"PACE: MSE:Set AT refused ({describe_sw(answer.sw)})")

    # 1. encrypted nonce
    response = await _general_authenticate(channel, 0, b"", last=False, step="nonce")
    nonce = int.from_bytes(decrypt_nonce(suite, password, dynamic_data(response, 0x80)), "big")

    # 2. mapping
    sk_map = curve.random_scalar()
    response = await _general_authenticate(
        channel, 0x81, curve.encode_point(curve.multiply(sk_map, curve.generator)), last=False, step="map")
    pk_map_ic = curve.decode_point(dynamic_data(response, 0x82))
    mapped = map_generator(curve, nonce, curve.multiply(sk_map, pk_map_ic))

    # 3. key agreement on the mapped generator
    sk_eph = curve.random_scalar()
    pk_eph = curve.multiply(sk_eph, mapped)
    response = await _general_authenticate(channel, 0x83, curve.encode_point(pk_eph), last=False,
                                           step="key agreement")
    pk_eph_ic = curve.decode_point(dynamic_data(response, 0x84))
    if pk_eph_ic == pk_eph:
        raise DeviceProtocolError("PACE: the card echoed the terminal's ephemeral key")
    shared = curve.multiply_x(sk_eph, pk_eph_ic).to_bytes(curve.field_size, "big")
    ks_enc, ks_mac = suite.kdf(shared, KDF_ENC), suite.kdf(shared, KDF_MAC)

    # 4. mutual authentication
    token = suite.token_mac(ks_mac, public_key_object(info.oid, curve, pk_eph_ic))
    response = await _general_authenticate(channel, 0x85, token, last=True, step="token")
    expected = suite.token_mac(ks_mac, public_key_object(info.oid, curve, pk_eph))
    if not hmac.compare_digest(dynamic_data(response, 0x86), expected):
        raise DeviceProtocolError("PACE: the card's authentication token does not verify")
    sm = SecureMessaging(suite, ks_enc, ks_mac, 0)
    channel.sm = sm
    return sm
