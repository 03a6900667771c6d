"""Basic Access Control (ICAO 9303 Part 11, 4.3): mutual authentication with 3DES keys from
the MRZ, then 3DES secure messaging."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from agent.domain.idcard import MrzKey
from agent.drivers.idcard.apdu import (
    SW_AUTH_BLOCKED,
    SW_AUTH_FAILED,
    SW_OK,
    SW_SECURITY_NOT_SATISFIED,
    CommandApdu,
    describe_sw,
)
from agent.drivers.idcard.channel import CardChannel
from agent.drivers.idcard.cipher_suite import DES3, KDF_ENC, KDF_MAC, pad
from agent.drivers.idcard.mrz import bac_key_seed
from agent.drivers.idcard.secure_messaging import SecureMessaging
from agent.errors import AccessDeniedError, DeviceProtocolError

#: Status words with which a card rejects EXTERNAL AUTHENTICATE / PACE for a wrong key.
WRONG_KEY_SWS = frozenset({SW_AUTH_FAILED, SW_SECURITY_NOT_SATISFIED, 0x6A80, 0x6985})


@dataclass(frozen=True, slots=True)
class BacKeys:
    k_enc: bytes
    k_mac: bytes

    def __repr__(self) -> str:
        return "BacKeys(<redacted>)"


def derive_keys(seed: bytes) -> BacKeys:
    return BacKeys(DES3.kdf(seed, KDF_ENC), DES3.kdf(seed, KDF_MAC))


def session_from_exchange(keys_seed_ifd: bytes, keys_seed_ic: bytes, rnd_ic: bytes,
                          rnd_ifd: bytes) -> SecureMessaging:
    """Session keys from K.IFD xor K.IC and the SSC from the two nonces (Part 11, 9.7.4)."""
    seed = bytes(a ^ b for a, b in zip(keys_seed_ifd, keys_seed_ic, strict=True))
    keys = derive_keys(seed)
    ssc = int.from_bytes(rnd_ic[4:8] + rnd_ifd[4:8], "big")
    return SecureMessaging(DES3, keys.k_enc, keys.k_mac, ssc)


def access_denied(sw: int, protocol: str) -> AccessDeniedError:
    if sw == SW_AUTH_BLOCKED:
        return AccessDeniedError(f"{protocol}: the card has blocked this access key", reason="CARD_BLOCKED")
    return AccessDeniedError(f"{protocol}: the card rejected the access key ({describe_sw(sw)})")


async def perform_bac(channel: CardChannel, key: MrzKey, *, rnd_ifd: bytes | None = None,
                      k_ifd: bytes | None = None) -> SecureMessaging:
    """Run BAC; on success install and return the secure channel. One attempt only.

    ``rnd_ifd`` and ``k_ifd`` are for reproducing the Appendix D worked example.
    """
    keys = derive_keys(bac_key_seed(key))
    challenge = await channel.send_plain(CommandApdu(0x00, 0x84, 0x00, 0x00, le=8))
    if challenge.sw != SW_OK or len(challenge.data) != 8:
        raise DeviceProtocolError(f"BAC: GET CHALLENGE failed ({describe_sw(challenge.sw)})")
    rnd_ic = challenge.data
    rnd_ifd = rnd_ifd or secrets.token_bytes(8)
    k_ifd = k_ifd or secrets.token_bytes(16)
    e_ifd = DES3.encrypt(keys.k_enc, rnd_ifd + rnd_ic + k_ifd)
    m_ifd = DES3.mac(keys.k_mac, pad(e_ifd, 8))
    answer = await channel.send_plain(CommandApdu(0x00, 0x82, 0x00, 0x00, e_ifd + m_ifd, le=40))
    if answer.sw in WRONG_KEY_SWS or answer.sw == SW_AUTH_BLOCKED:
        raise access_denied(answer.sw, "BAC")
    if answer.sw != SW_OK or len(answer.data) != 40:
        raise DeviceProtocolError(f"BAC: EXTERNAL AUTHENTICATE failed ({describe_sw(answer.sw)})")
    e_ic, m_ic = answer.data[:32], answer.data[32:]
    if not hmac.compare_digest(DES3.mac(keys.k_mac, pad(e_ic, 8)), m_ic):
        raise DeviceProtocolError("BAC: the card's authentication cryptogram MAC does not verify")
    plain = DES3.decrypt(keys.k_enc, e_ic)
    if plain[:8] != rnd_ic or plain[8:16] != rnd_ifd:
        raise DeviceProtocolError("BAC: the card's answer does not match the challenge")
    sm = session_from_exchange(k_ifd, plain[16:32], rnd_ic, rnd_ifd)
    channel.sm = sm
    return sm
