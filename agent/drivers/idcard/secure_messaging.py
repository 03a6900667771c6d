"""ICAO 9303 secure messaging (Part 11, 9.8) for both ends of the channel.

The terminal side protects command APDUs and unprotects responses; the card side
(used by the emulator) does the inverse. Data objects: '87' (padding indicator +
cryptogram, even INS), '85' (cryptogram, odd INS), '97' (Le), '99' (status word),
'8E' (8-byte MAC). The send sequence counter (SSC) is incremented before every
command and every response; with AES the IV is ``E(KSenc, SSC)``.
"""

from __future__ import annotations

import hmac

from agent.drivers.idcard import tlv
from agent.drivers.idcard.apdu import LE_MAX_EXTENDED, LE_MAX_SHORT, CommandApdu, ResponseApdu
from agent.drivers.idcard.cipher_suite import CipherKind, CipherSuite, SessionCiphers, pad, unpad
from agent.errors import DataFormatError, DeviceProtocolError

# Largest plaintext READ BINARY chunk whose protected response still fits a short APDU
# (256 bytes): 0xE7 with 3DES, 0xDF with AES (16-byte padding grows the cryptogram more).
SHORT_READ_3DES = 0xE7
SHORT_READ_AES = 0xDF


class SecureMessaging:
    """One secure channel: session keys, cipher suite and send sequence counter."""

    def __init__(self, suite: CipherSuite, ks_enc: bytes, ks_mac: bytes, ssc: int = 0) -> None:
        self.suite = suite
        self._ciphers = SessionCiphers(suite, ks_enc, ks_mac)
        self.ssc = ssc
        self._block = suite.block_size
        self._ssc_modulus = 1 << (8 * self._block)

    def __repr__(self) -> str:
        return f"SecureMessaging({self.suite.kind.value}, <keys redacted>)"

    @property
    def max_short_read(self) -> int:
        return SHORT_READ_3DES if self.suite.kind is CipherKind.DES3 else SHORT_READ_AES

    # -- shared pieces --------------------------------------------------------------------------

    def _ssc_bytes(self, ssc: int | None = None) -> bytes:
        value = self.ssc if ssc is None else ssc
        return (value % self._ssc_modulus).to_bytes(self._block, "big")

    def _iv(self, ssc: int | None = None) -> bytes:
        return self._ciphers.iv(self._ssc_bytes(ssc))

    def _mac(self, data: bytes, ssc: int | None = None) -> bytes:
        return self._ciphers.mac(pad(self._ssc_bytes(ssc) + data, self._block))

    def _encrypt(self, data: bytes) -> bytes:
        return self._ciphers.encrypt(pad(data, self.suite.block_size), self._iv())

    def _decrypt(self, data: bytes, ssc: int | None = None) -> bytes:
        return unpad(self._ciphers.decrypt(data, self._iv(ssc)))

    def _data_object(self, ins: int, data: bytes) -> bytes:
        if not data:
            return b""
        if ins & 1:
            return tlv.encode(0x85, self._encrypt(data))
        return tlv.encode(0x87, b"\x01" + self._encrypt(data))

    def _read_data_object(self, item: tlv.Tlv, ssc: int | None = None) -> bytes:
        return self._decrypt(self._cryptogram(item), ssc)

    @staticmethod
    def _cryptogram(item: tlv.Tlv) -> bytes:
        if item.tag == 0x87:
            if not item.value or item.value[0] != 0x01:
                raise DeviceProtocolError("secure messaging: unknown padding indicator")
            return item.value[1:]
        return item.value

    # -- terminal side ----------------------------------------------------------------------------

    def protect(self, cmd: CommandApdu, extended: bool = False) -> bytes:
        """Wrap a plain command APDU; ``extended`` forces the extended-length form."""
        self.ssc += 1
        cla = cmd.cla | 0x0C
        header = bytes((cla, cmd.ins, cmd.p1, cmd.p2))
        body = self._data_object(cmd.ins, cmd.data)
        if cmd.le is not None:
            if cmd.le > LE_MAX_SHORT:
                body += b"\x97\x02" + (cmd.le % LE_MAX_EXTENDED).to_bytes(2, "big")
            else:
                body += b"\x97\x01" + bytes([cmd.le % LE_MAX_SHORT])
        mac = self._mac(pad(header, self.suite.block_size) + body)
        body += b"\x8e\x08" + mac
        use_extended = extended or len(body) > 255
        le = LE_MAX_EXTENDED if use_extended else LE_MAX_SHORT
        return CommandApdu(cla, cmd.ins, cmd.p1, cmd.p2, body, le).encode(extended=use_extended)

    def unprotect(self, raw: bytes) -> ResponseApdu:
        """Check and decrypt a protected response. A bare status word (an SM error
        reported by the card) comes back as is, with no data."""
        self.ssc += 1
        return self._unprotect(raw, self.ssc)

    def unprotect_later(self, raw: bytes) -> DeferredResponse | ResponseApdu:
        """Like :meth:`unprotect`, with the MAC check and the decryption left for later.

        The send sequence counter moves on now, so the next command can go out at once; the
        status word and the plaintext length are read ahead (the length by decrypting the last
        cipher block only) and are provisional until :meth:`DeferredResponse.finish` has
        verified the MAC. Responses that do not have the plain '87' '99' '8E' shape are
        unprotected right away, as by :meth:`unprotect`.
        """
        self.ssc += 1
        ssc = self.ssc
        response = ResponseApdu.parse(raw)
        parts = canonical_response(response.data)
        if parts is None or response.data[0] != 0x87:
            return self._unprotect(raw, ssc)
        cryptogram, sw, _covered = parts
        block = self._block
        if not cryptogram or len(cryptogram) % block:
            return self._unprotect(raw, ssc)
        previous = cryptogram[-2 * block:-block] if len(cryptogram) > block else self._iv(ssc)
        last = self._ciphers.decrypt_block(cryptogram[-block:], previous)
        stripped = last.rstrip(b"\x00")
        if not stripped or stripped[-1] != 0x80:
            return self._unprotect(raw, ssc)  # bad padding: let the MAC check speak first
        length = len(cryptogram) - block + len(stripped) - 1
        return DeferredResponse(self, raw, ssc, sw, length)

    def _unprotect(self, raw: bytes, ssc: int) -> ResponseApdu:
        response = ResponseApdu.parse(raw)
        if not response.data:
            return response
        parts = canonical_response(response.data)
        if parts is not None:  # the usual layout, taken apart by position
            cryptogram, sw, covered_length = parts
            mac = response.data[covered_length + 2:]
            if not hmac.compare_digest(self._mac(response.data[:covered_length], ssc), mac):
                raise DeviceProtocolError("secure messaging: response MAC does not verify")
            return ResponseApdu(self._decrypt(cryptogram, ssc) if cryptogram else b"", sw)
        try:
            items = tlv.parse_all(response.data)
        except DataFormatError as exc:
            raise DeviceProtocolError("secure messaging: malformed protected response") from exc
        mac_item = tlv.find(items, 0x8E)
        if mac_item is None or items[-1].tag != 0x8E:
            raise DeviceProtocolError("secure messaging: response carries no MAC")
        covered = b"".join(tlv.encode(i.tag, i.value) for i in items if i.tag in (0x87, 0x85, 0x99))
        if not hmac.compare_digest(self._mac(covered, ssc), mac_item.value):
            raise DeviceProtocolError("secure messaging: response MAC does not verify")
        sw_item = tlv.find(items, 0x99)
        sw = int.from_bytes(sw_item.value, "big") if sw_item and len(sw_item.value) == 2 else response.sw
        data_item = tlv.find(items, 0x87) or tlv.find(items, 0x85)
        data = self._read_data_object(data_item, ssc) if data_item else b""
        return ResponseApdu(data, sw)

    # -- card side (emulator) ---------------------------------------------------------------------

    def unprotect_command(self, cmd: CommandApdu) -> CommandApdu:
        """Verify and decrypt a protected command. Raises DeviceProtocolError when the
        MAC or the data objects are wrong (the card answers 6988 and drops the channel)."""
        self.ssc += 1
        if cmd.cla & 0x0C != 0x0C:
            raise DeviceProtocolError("secure messaging: command is not protected")
        try:
            items = tlv.parse_all(cmd.data)
        except DataFormatError as exc:
            raise DeviceProtocolError("secure messaging: malformed protected command") from exc
        if not items or items[-1].tag != 0x8E:
            raise DeviceProtocolError("secure messaging: command carries no MAC")
        header = bytes((cmd.cla, cmd.ins, cmd.p1, cmd.p2))
        covered = b"".join(tlv.encode(i.tag, i.value) for i in items[:-1])
        if not hmac.compare_digest(self._mac(pad(header, self.suite.block_size) + covered), items[-1].value):
            raise DeviceProtocolError("secure messaging: command MAC does not verify")
        data_item = tlv.find(items, 0x87) or tlv.find(items, 0x85)
        data = self._read_data_object(data_item) if data_item else b""
        le_item = tlv.find(items, 0x97)
        le: int | None = None
        if le_item is not None:
            raw_le = int.from_bytes(le_item.value, "big")
            le = raw_le or (LE_MAX_SHORT if len(le_item.value) == 1 else LE_MAX_EXTENDED)
        return CommandApdu(cmd.cla & ~0x0C & 0xFF, cmd.ins, cmd.p1, cmd.p2, data, le)

    def protect_response(self, data: bytes, sw: int, ins: int = 0xB0) -> bytes:
        self.ssc += 1
        body = self._data_object(ins, data) + b"\x99\x02" + sw.to_bytes(2, "big")
        body += b"\x8e\x08" + self._mac(body)
        return body + sw.to_bytes(2, "big")


def canonical_response(data: bytes) -> tuple[bytes, int, int] | None:
    """Take apart a protected response with the usual layout, ``['87' or '85' object] '99' 02
    SW1 SW2 '8E' 08 MAC``, by position: (cryptogram, inner status word, length of the part the
    MAC covers). The cryptogram has its padding-indicator byte removed ('87'; it must be 01).
    None for any other layout, which the generic TLV walk then judges."""
    size = len(data)
    if size < 14 or data[-10] != 0x8E or data[-9] != 0x08:
        return None
    covered = size - 10
    if data[covered - 4] != 0x99 or data[covered - 3] != 0x02:
        return None
    sw = (data[covered - 2] << 8) | data[covered - 1]
    end = covered - 4
    if end == 0:
        return b"", sw, covered
    tag, first = data[0], data[1]
    if tag not in (0x87, 0x85):
        return None
    if first < 0x80:
        start, length = 2, first
    elif first == 0x81:
        start, length = 3, data[2]
    elif first == 0x82:
        start, length = 4, (data[2] << 8) | data[3]
    else:
        return None
    if start + length != end:
        return None
    if tag == 0x87:
        if length < 2 or data[start] != 0x01:
            return None
        start += 1
    return data[start:end], sw, covered


class DeferredResponse:
    """A protected response whose MAC check and decryption are still to come (see
    :meth:`SecureMessaging.unprotect_later`). ``sw`` and ``length`` are read ahead and
    provisional; :meth:`finish` (thread-safe: it only reads the session keys) verifies and
    decrypts exactly as :meth:`SecureMessaging.unprotect` would have."""

    def __init__(self, sm: SecureMessaging, raw: bytes, ssc: int, sw: int, length: int) -> None:
        self._sm = sm
        self._raw = raw
        self._ssc = ssc
        self.sw = sw
        self.length = length

    def __repr__(self) -> str:
        return f"DeferredResponse(len={self.length}, sw={self.sw:04X})"

    def finish(self) -> ResponseApdu:
        response = self._sm._unprotect(self._raw, self._ssc)
        if response.sw != self.sw or len(response.data) != self.length:
            raise DeviceProtocolError("secure messaging: response differs from its read-ahead")
        return response
