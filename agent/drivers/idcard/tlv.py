"""BER-TLV as used on ICAO 9303 cards: a strict walker with typed errors.

Tags are returned as integers holding the tag bytes (``0x5F1F``, ``0x7F61``). Only
definite lengths of up to four length bytes are accepted; anything else (indefinite
length, a value running past the buffer, trailing garbage where none may be) raises
:class:`~agent.errors.DataFormatError`, whose message never contains the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from agent.errors import DataFormatError

_MAX_TAG_BYTES = 4
_MAX_LENGTH_BYTES = 4


@dataclass(frozen=True, slots=True)
class Tlv:
    """One decoded data object. ``end`` is the offset just past it in the parsed buffer."""

    tag: int
    value: bytes
    end: int

    @property
    def constructed(self) -> bool:
        first = self.tag
        while first > 0xFF:
            first >>= 8
        return bool(first & 0x20)

    def children(self) -> list[Tlv]:
        """The nested data objects of a constructed object."""
        if not self.constructed:
            raise DataFormatError(f"TLV tag {self.tag:X} is primitive, it has no children")
        return list(iter_tlvs(self.value))

    def __repr__(self) -> str:  # values may be personal data
        return f"Tlv(tag={self.tag:X}, len={len(self.value)})"


def read_tag(data: bytes, offset: int) -> tuple[int, int]:
    """Decode a tag at ``offset``; return (tag, offset after it)."""
    if offset >= len(data):
        raise DataFormatError("TLV truncated: tag missing")
    first = data[offset]
    tag = first
    offset += 1
    if first & 0x1F == 0x1F:
        count = 1
        while True:
            if offset >= len(data):
                raise DataFormatError("TLV truncated inside a multi-byte tag")
            b = data[offset]
            offset += 1
            count += 1
            if count > _MAX_TAG_BYTES:
                raise DataFormatError("TLV tag longer than 4 bytes")
            tag = (tag << 8) | b
            if not b & 0x80:
                break
    return tag, offset


def read_length(data: bytes, offset: int) -> tuple[int, int]:
    """Decode a definite length at ``offset``; return (length, offset after it)."""
    if offset >= len(data):
        raise DataFormatError("TLV truncated: length missing")
    first = data[offset]
    offset += 1
    if first < 0x80:
        return first, offset
    count = first & 0x7F
    if count == 0:
        raise DataFormatError("TLV with indefinite length is not allowed")
    if count > _MAX_LENGTH_BYTES:
        raise DataFormatError("TLV length field longer than 4 bytes")
    if offset + count > len(data):
        raise DataFormatError("TLV truncated inside the length field")
    return int.from_bytes(data[offset:offset + count], "big"), offset + count


def header_size(data: bytes) -> tuple[int, int]:
    """For a buffer starting with a TLV header: (header length, value length).

    Used to learn a file's total size from its first few bytes.
    """
    _, off = read_tag(data, 0)
    length, off = read_length(data, off)
    return off, length


def parse_one(data: bytes, offset: int = 0) -> Tlv:
    """Decode the data object starting at ``offset``."""
    tag, off = read_tag(data, offset)
    length, off = read_length(data, off)
    end = off + length
    if end > len(data):
        raise DataFormatError("TLV value runs past the end of the data")
    return Tlv(tag, bytes(data[off:end]), end)


def iter_tlvs(data: bytes) -> Iterator[Tlv]:
    """Every data object in ``data``, which must hold nothing else."""
    offset = 0
    while offset < len(data):
        item = parse_one(data, offset)
        offset = item.end
        yield item


def parse_all(data: bytes) -> list[Tlv]:
    return list(iter_tlvs(data))


def parse_single(data: bytes, expected_tag: int | None = None) -> Tlv:
    """Decode a buffer that holds exactly one data object (optionally of ``expected_tag``).

    Trailing bytes after the object are tolerated only if they are 0x00/0xFF padding,
    which cards leave at the end of an EF sized larger than its content.
    """
    item = parse_one(data, 0)
    rest = data[item.end:]
    if rest and rest.strip(b"\x00") and rest.strip(b"\xff"):
        raise DataFormatError("unexpected bytes after the TLV object")
    if expected_tag is not None and item.tag != expected_tag:
        raise DataFormatError(f"expected TLV tag {expected_tag:X}, found {item.tag:X}")
    return item


def find(items: list[Tlv], tag: int) -> Tlv | None:
    for item in items:
        if item.tag == tag:
            return item
    return None


def require(items: list[Tlv], tag: int) -> Tlv:
    item = find(items, tag)
    if item is None:
        raise DataFormatError(f"required TLV tag {tag:X} missing")
    return item


def encode_length(length: int) -> bytes:
    if length < 0:
        raise DataFormatError("negative TLV length")
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(raw) > _MAX_LENGTH_BYTES:
        raise DataFormatError("TLV value too long")
    return bytes([0x80 | len(raw)]) + raw


def encode_tag(tag: int) -> bytes:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode(tag: int, value: bytes) -> bytes:
    """Encode one data object."""
    return encode_tag(tag) + encode_length(len(value)) + value
