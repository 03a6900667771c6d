"""Chip authentication (ICAO 9303 Part 11, 6.2) with ECDH: an ephemeral key agreed with
the chip's static key from DG14; success shows as a working secure channel under the
new session keys (a clone without the private key cannot compute them)."""

from __future__ import annotations

from agent.domain.idcard import Verdict
from agent.drivers.idcard import tlv
from agent.drivers.idcard.apdu import SW_OK, CommandApdu
from agent.drivers.idcard.channel import CardChannel
from agent.drivers.idcard.cipher_suite import DES3, KDF_ENC, KDF_MAC
from agent.drivers.idcard.reading import EF_COM
from agent.drivers.idcard.secure_messaging import SecureMessaging
from agent.drivers.idcard.security_infos import SecurityInfos, encode_oid
from agent.drivers.idcard.verification import CheckResult
from agent.errors import DeviceProtocolError


async def chip_authentication(channel: CardChannel, infos: SecurityInfos | None) -> CheckResult:
    if infos is None:
        return CheckResult(Verdict.NOT_SUPPORTED, ["no DG14"])
    info = next((i for i in infos.chip_auth if i.supported), None)
    if info is None or not infos.chip_auth_keys:
        return CheckResult(Verdict.NOT_SUPPORTED, ["DG14 offers no ECDH chip authentication"])
    key = next((k for k in infos.chip_auth_keys if info.key_id is None or k.key_id == info.key_id),
               infos.chip_auth_keys[0])
    curve = key.curve
    secret = curve.random_scalar()
    public = curve.encode_point(curve.multiply(secret, curve.generator))
    key_ref = tlv.encode(0x84, key.key_id.to_bytes(1, "big")) if key.key_id is not None else b""
    try:
        if info.suite is DES3:
            kat = tlv.encode(0x91, public) + key_ref
            answer = await channel.send(CommandApdu(0x00, 0x22, 0x41, 0xA6, kat))
        else:
            answer = await channel.send(CommandApdu(0x00, 0x22, 0x41, 0xA4,
                                                    tlv.encode(0x80, encode_oid(info.oid)) + key_ref))
            if answer.sw == SW_OK:
                answer = await channel.send(CommandApdu(
                    0x00, 0x86, 0x00, 0x00, tlv.encode(0x7C, tlv.encode(0x80, public)), le=256))
        if answer.sw != SW_OK:
            return CheckResult(Verdict.INVALID, ["the chip refused chip authentication"])
        shared = curve.multiply(secret, key.point)[0].to_bytes(curve.field_size, "big")
        suite = info.suite
        channel.sm = SecureMessaging(suite, suite.kdf(shared, KDF_ENC), suite.kdf(shared, KDF_MAC), 0)
        probe = await channel.send(CommandApdu(0x00, 0xB0, 0x80 | EF_COM.sfi, 0x00, le=4))
    except DeviceProtocolError:
        return CheckResult(Verdict.INVALID, ["secure messaging failed after chip authentication"])
    if probe.sw != SW_OK:
        return CheckResult(Verdict.INVALID, ["the chip did not answer under the new keys"])
    return CheckResult(Verdict.VALID)
