"""Logical data structure basics (ICAO 9303 Part 10): EF.COM, DG1 and the DG tag table."""

from __future__ import annotations

from dataclasses import dataclass

from agent.drivers.idcard import mrz, tlv
from agent.errors import DataFormatError

#: data group number -> the tag its file starts with
DG_TAGS = {1: 0x61, 2: 0x75, 3: 0x63, 4: 0x76, 5: 0x65, 6: 0x66, 7: 0x67, 8: 0x68, 9: 0x69, 10: 0x6A,
           11: 0x6B, 12: 0x6C, 13: 0x6D, 14: 0x6E, 15: 0x6F, 16: 0x70}
TAG_TO_DG = {tag: number for number, tag in DG_TAGS.items()}
TAG_COM = 0x60
TAG_SOD = 0x77


@dataclass(frozen=True, slots=True)
class EfCom:
    lds_version: str
    unicode_version: str
    data_groups: tuple[int, ...]


def parse_com(data: bytes) -> EfCom:
    """EF.COM: LDS version '5F01', Unicode version '5F36', tag list '5C'."""
    items = tlv.parse_single(data, TAG_COM).children()
    tags = tlv.require(items, 0x5C).value
    groups = []
    for t in tags:
        if t not in TAG_TO_DG:
            raise DataFormatError("EF.COM lists an unknown data group tag")
        groups.append(TAG_TO_DG[t])
    version = tlv.find(items, 0x5F01)
    unicode_version = tlv.find(items, 0x5F36)
    return EfCom(version.value.decode("ascii", "replace") if version else "",
                 unicode_version.value.decode("ascii", "replace") if unicode_version else "",
                 tuple(groups))


def build_com(data_groups: list[int], lds_version: str = "0107", unicode_version: str = "040000") -> bytes:
    body = (tlv.encode(0x5F01, lds_version.encode()) + tlv.encode(0x5F36, unicode_version.encode())
            + tlv.encode(0x5C, bytes(DG_TAGS[n] for n in data_groups)))
    return tlv.encode(TAG_COM, body)


def parse_dg1(data: bytes) -> mrz.Mrz:
    """DG1: '61' { '5F1F' MRZ }."""
    items = tlv.parse_single(data, DG_TAGS[1]).children()
    raw = tlv.require(items, 0x5F1F).value
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataFormatError("DG1 MRZ is not ASCII") from exc
    return mrz.parse(text)


def build_dg1(mrz_text: str) -> bytes:
    return tlv.encode(DG_TAGS[1], tlv.encode(0x5F1F, mrz_text.encode("ascii")))


def unwrap(data: bytes, number: int) -> bytes:
    """The value inside a data group's outer tag."""
    return tlv.parse_single(data, DG_TAGS[number]).value
