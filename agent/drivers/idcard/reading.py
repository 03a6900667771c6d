"""Selecting and reading elementary files (ICAO 9303 Part 10 file structure, ISO 7816-4).

A file is read by short EF identifier (READ BINARY with P1 = 0x80 | SFI, which selects
it and returns the first bytes in one APDU). Its total size comes from the TLV header
of that first chunk. The rest comes in one extended-length READ BINARY where the
reader allows it, else in short chunks sized so the protected response fits 256 bytes.
Offsets beyond 0x7FFF use READ BINARY with odd INS (B1) and an offset object '54'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.drivers.idcard import tlv
from agent.drivers.idcard.apdu import SW_END_OF_FILE, SW_FILE_NOT_FOUND, SW_OK, CommandApdu, describe_sw
from agent.drivers.idcard.channel import CardChannel
from agent.drivers.idcard.secure_messaging import DeferredResponse
from agent.errors import DataFormatError, DeviceProtocolError

EMRTD_AID = bytes.fromhex("A0000002471001")

#: Largest file accepted (DG2 with a large JPEG 2000 stays far below).
MAX_FILE_SIZE = 1 << 20
#: Largest plaintext chunk requested with one extended-length READ BINARY (leaves room for
#: the secure-messaging overhead within a 65536-byte response).
MAX_EXTENDED_CHUNK = 0xFF00
_FIRST_CHUNK_EXTENDED = 0xDF  # first read: header + as much as a short answer carries anyway
#: Smallest closing chunk whose check and decryption are worth handing to another thread.
_DEFER_MIN = 1024
_NO_SFI_SWS = frozenset({0x6A86, 0x6B00, 0x6981, 0x6A81, 0x6986})


@dataclass(frozen=True, slots=True)
class ElementaryFile:
    name: str
    fid: int
    sfi: int


EF_CARD_ACCESS = ElementaryFile("EF.CardAccess", 0x011C, 0x1C)
EF_COM = ElementaryFile("EF.COM", 0x011E, 0x1E)
EF_SOD = ElementaryFile("EF.SOD", 0x011D, 0x1D)


def data_group_file(number: int) -> ElementaryFile:
    if not 1 <= number <= 16:
        raise DataFormatError(f"no data group {number}")
    return ElementaryFile(f"DG{number}", 0x0100 + number, number)


class FileReader:
    """Reads whole EFs through a channel, choosing extended or short reads."""

    def __init__(self, channel: CardChannel) -> None:
        self.channel = channel
        self.use_extended = channel.extended_length

    def _chunk_limit(self, offset: int = 0) -> int:
        """Largest short READ BINARY; beyond offset 0x7FFF the answer carries a '53' wrapper."""
        limit = self.channel.sm.max_short_read if self.channel.sm is not None else 256
        return limit - 8 if offset > 0x7FFF else limit

    async def select_application(self) -> None:
        answer = await self.channel.send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, EMRTD_AID))
        if answer.sw != SW_OK:
            raise DeviceProtocolError(f"SELECT of the eMRTD application failed ({describe_sw(answer.sw)})")

    async def select(self, ef: ElementaryFile) -> bool:
        answer = await self.channel.send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, ef.fid.to_bytes(2, "big")))
        if answer.sw == SW_FILE_NOT_FOUND:
            return False
        if answer.sw != SW_OK:
            raise DeviceProtocolError(f"SELECT {ef.name} failed ({describe_sw(answer.sw)})")
        return True

    async def _read_binary(self, offset: int, length: int, sfi: int | None = None) -> tuple[bytes, int]:
        extended = length > self._chunk_limit(offset)
        if sfi is not None:
            cmd = CommandApdu(0x00, 0xB0, 0x80 | sfi, offset, le=length)
        elif offset <= 0x7FFF:
            cmd = CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=length)
        else:
            cmd = CommandApdu(0x00, 0xB1, 0x00, 0x00, tlv.encode(0x54, offset.to_bytes(3, "big")), le=length)
        answer = await self.channel.send(cmd, extended=extended)
        data = answer.data
        if cmd.ins == 0xB1 and answer.sw in (SW_OK, SW_END_OF_FILE) and data:
            try:
                data = tlv.parse_single(data, 0x53).value
            except DataFormatError as exc:
                raise DeviceProtocolError("READ BINARY (B1) answer is not a '53' object") from exc
        return data, answer.sw

    async def read(self, ef: ElementaryFile) -> bytes | None:
        """The whole content of ``ef``, or None when the card has no such file."""
        pending = await self.read_later(ef)
        return pending.finish() if pending is not None else None

    async def read_later(self, ef: ElementaryFile, *, while_waiting: Callable[[], object] | None = None
                         ) -> PendingContent | None:
        """Read ``ef`` like :meth:`read`, but leave the secure-messaging check and decryption of
        a closing extended-length chunk to :meth:`PendingContent.finish`, which may run in
        another thread while the next commands go to the card. Until then that chunk is
        unverified; nothing is taken from it but its status word and length.

        ``while_waiting`` is called just before that closing chunk is asked for: the longest
        wait of a read, so work started then (in another thread) costs the exchange nothing.
        """
        first_len = _FIRST_CHUNK_EXTENDED if self.use_extended else self._chunk_limit()
        data, sw = await self._read_binary(0, first_len, sfi=ef.sfi)
        if sw in _NO_SFI_SWS:
            if not await self.select(ef):
                return None
            data, sw = await self._read_binary(0, first_len)
        if sw == SW_FILE_NOT_FOUND:
            return None
        if sw not in (SW_OK, SW_END_OF_FILE) or not data:
            raise DeviceProtocolError(f"READ BINARY of {ef.name} failed ({describe_sw(sw)})")
        try:
            header_len, value_len = tlv.header_size(data)
        except DataFormatError as exc:
            raise DataFormatError(f"{ef.name} does not start with a TLV header") from exc
        total = header_len + value_len
        if total > MAX_FILE_SIZE:
            raise DataFormatError(f"{ef.name} declares an implausible size")
        content = bytearray(data[:total])
        # A card may hand out less than asked (a small I/O buffer behind extended length);
        # accept that, but bound the number of commands so a misbehaving card cannot keep
        # the reader busy for ever.
        budget = 8 + total // 32
        while len(content) < total:
            budget -= 1
            if budget < 0:
                raise DeviceProtocolError(f"READ BINARY of {ef.name} makes no progress")
            remaining = total - len(content)
            if self.use_extended:
                want = min(remaining, MAX_EXTENDED_CHUNK)
            else:
                want = min(remaining, self._chunk_limit(len(content)))
            if want == remaining >= _DEFER_MIN and self.use_extended and len(content) <= 0x7FFF:
                if while_waiting is not None:
                    while_waiting()
                    while_waiting = None
                answer = await self.channel.send_later(
                    CommandApdu(0x00, 0xB0, len(content) >> 8, len(content) & 0xFF, le=want), extended=True)
                if isinstance(answer, DeferredResponse):
                    if answer.sw == SW_OK and answer.length == want:
                        return PendingContent(bytes(content), answer)
                    answer = answer.finish()  # a short or failed answer: handled below, as ever
                chunk, sw = answer.data, answer.sw
            else:
                chunk, sw = await self._read_binary(len(content), want)
            if sw == 0x6700 and self.use_extended:
                self.use_extended = False  # the reader or card refused extended length after all
                continue
            if sw not in (SW_OK, SW_END_OF_FILE):
                raise DeviceProtocolError(f"READ BINARY of {ef.name} failed ({describe_sw(sw)})")
            if not chunk or (sw == SW_END_OF_FILE and len(chunk) < want):
                raise DataFormatError(f"{ef.name} is shorter than its length header")
            content += chunk[:remaining]
        return PendingContent(bytes(content), None)


class PendingContent:
    """A file's content, possibly with a closing chunk still to be verified and decrypted."""

    def __init__(self, head: bytes, tail: DeferredResponse | None) -> None:
        self._head = head
        self._tail = tail

    def __repr__(self) -> str:
        return f"PendingContent(len={len(self._head) + (self._tail.length if self._tail else 0)})"

    def finish(self) -> bytes:
        """The whole content. Raises DeviceProtocolError when the closing chunk's MAC does not
        verify (as the read itself would have). Thread-safe."""
        if self._tail is None:
            return self._head
        return self._head + self._tail.finish().data
