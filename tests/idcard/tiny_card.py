"""A tiny ISO 7816 card for PC/SC plumbing tests that need no eMRTD: SELECT, READ BINARY, GET CHALLENGE."""

from __future__ import annotations

# 3B 8A 80 01, 10 historical bytes (compact TLV: card capabilities with chaining and extended
# length; status 009000), TCK
_HISTORICAL = bytes.fromhex("00 73 C8 00 C0 00 00 00 90 00".replace(" ", ""))


def _atr() -> bytes:
    body = bytes([0x3B, 0x80 | len(_HISTORICAL), 0x80, 0x01]) + _HISTORICAL
    tck = 0
    for byte in body[1:]:
        tck ^= byte
    return body + bytes([tck])


class TinyCard:
    """Answers deterministic data so tests can compare what came back."""

    def __init__(self) -> None:
        self.powered = 0

    def power_on(self) -> bytes:
        self.powered += 1
        return _atr()

    def transmit(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return b"\x67\x00"
        ins = apdu[1]
        if ins == 0xA4:
            return b"\x90\x00"
        if ins == 0x84:
            return bytes(range(8)) + b"\x90\x00"
        if ins == 0xB0:
            offset = (apdu[2] << 8) | apdu[3]
            if len(apdu) == 5:
                le = apdu[4] or 256
            elif len(apdu) == 7 and apdu[4] == 0:
                le = ((apdu[5] << 8) | apdu[6]) or 65536
            else:
                return b"\x67\x00"
            return bytes((offset + i) & 0xFF for i in range(le)) + b"\x90\x00"
        return b"\x6d\x00"
