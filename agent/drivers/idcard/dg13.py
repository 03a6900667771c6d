"""DG13 of the Vietnamese CCCD: the holder's personal data as (index, value) pairs.

Observed layouts put a SET/SEQUENCE of SEQUENCE { INTEGER index, value } somewhere below
the '6D' tag (sometimes after an OID). Values are UTF8String/PrintableString; index 13
(parents) is either two strings side by side or two nested SEQUENCEs, depending on the
issuing batch, so the walker collects every string below a pair in order. Indexes:
1 ID, 2 name, 3 date of birth, 4 sex, 5 nationality, 6 ethnicity, 7 religion,
8 place of origin, 9 residence, 10 identifying marks, 11 issue date, 12 expiry,
13 parents, 14 spouse, 15 old ID number. Dates are dd/mm/yyyy.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

from agent.drivers.idcard import tlv
from agent.errors import DataFormatError

TAG_DG13 = 0x6D
_STRING_TAGS = {0x0C, 0x13, 0x16, 0x14, 0x1A, 0x04, 0x1E}
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Dg13:
    """Decoded DG13 fields (strings, as on the card; dates parsed)."""

    id_number: str = ""
    full_name: str = ""
    date_of_birth: dt.date | None = None
    sex: str = ""
    nationality: str = ""
    ethnicity: str = ""
    religion: str = ""
    place_of_origin: str = ""
    place_of_residence: str = ""
    identifying_marks: str = ""
    date_of_issue: dt.date | None = None
    date_of_expiry: dt.date | None = None
    father_name: str = ""
    mother_name: str = ""
    spouse_name: str = ""
    old_id_number: str = ""
    unknown_indexes: tuple[int, ...] = field(default=())

    def __repr__(self) -> str:
        return "Dg13(<redacted>)"


def _decode_string(item: tlv.Tlv) -> str:
    """Text as NFC: Vietnamese diacritics may come decomposed (NFD) from some batches."""
    encoding = "utf-16-be" if item.tag == 0x1E else "utf-8"
    try:
        return unicodedata.normalize("NFC", item.value.decode(encoding))
    except UnicodeDecodeError as exc:
        raise DataFormatError("DG13 string is not valid text") from exc


def _strings(item: tlv.Tlv, depth: int) -> list[str]:
    if depth > _MAX_DEPTH:
        raise DataFormatError("DG13 nests too deeply")
    if item.tag in _STRING_TAGS:
        return [_decode_string(item)]
    if item.constructed:
        out: list[str] = []
        for child in item.children():
            out.extend(_strings(child, depth + 1))
        return out
    return []


def _collect(item: tlv.Tlv, pairs: dict[int, list[str]], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise DataFormatError("DG13 nests too deeply")
    if not item.constructed:
        return
    children = item.children()
    if len(children) >= 2 and children[0].tag == 0x02 and 0 < len(children[0].value) <= 2:
        index = int.from_bytes(children[0].value, "big")
        if 1 <= index <= 99:
            values: list[str] = []
            for child in children[1:]:
                values.extend(_strings(child, depth + 1))
            if index in pairs:
                raise DataFormatError("DG13 repeats a field index")
            pairs[index] = values
            return
    for child in children:
        _collect(child, pairs, depth + 1)


def parse_date(value: str) -> dt.date | None:
    """dd/mm/yyyy; None for an empty value or the 'no expiry' wording on permanent cards."""
    value = value.strip()
    if not value or not any(ch.isdigit() for ch in value):
        return None
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", value)
    if not m:
        raise DataFormatError("DG13 date is not dd/mm/yyyy")
    try:
        return dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError as exc:
        raise DataFormatError("DG13 date is not a calendar date") from exc


def parse_sex(value: str) -> str:
    v = unicodedata.normalize("NFC", value).strip().lower()
    if v in ("nam", "m", "male"):
        return "M"
    if v in ("nữ", "nu", "f", "female"):
        return "F"
    return "X"


def parse_dg13(data: bytes) -> Dg13:
    """Parse a DG13 file (with its '6D' tag)."""
    outer = tlv.parse_single(data, TAG_DG13)
    pairs: dict[int, list[str]] = {}
    _collect(outer, pairs, 0)
    if not pairs:
        raise DataFormatError("DG13 holds no (index, value) pairs")

    def first(index: int) -> str:
        values = pairs.get(index, [])
        return values[0] if values else ""

    parents = pairs.get(13, [])
    known = set(range(1, 16))
    return Dg13(
        id_number=first(1), full_name=first(2), date_of_birth=parse_date(first(3)),
        sex=parse_sex(first(4)) if first(4) else "", nationality=first(5), ethnicity=first(6),
        religion=first(7), place_of_origin=first(8), place_of_residence=first(9),
        identifying_marks=first(10), date_of_issue=parse_date(first(11)),
        date_of_expiry=parse_date(first(12)),
        father_name=parents[0] if parents else "", mother_name=parents[1] if len(parents) > 1 else "",
        spouse_name=first(14), old_id_number=first(15),
        unknown_indexes=tuple(sorted(set(pairs) - known)),
    )


def build_dg13(fields: dict[int, str | tuple[str, str]], *, nested_parents: bool = True) -> bytes:
    """Encode DG13 the way cards in the field do (used by the card emulator)."""
    entries = b""
    for index in sorted(fields):
        value = fields[index]
        body = tlv.encode(0x02, bytes([index]))
        if isinstance(value, tuple):
            if nested_parents:
                body += b"".join(tlv.encode(0x30, tlv.encode(0x0C, v.encode())) for v in value)
            else:
                body += b"".join(tlv.encode(0x0C, v.encode()) for v in value)
        else:
            tag = 0x13 if value.isascii() and re.fullmatch(r"[0-9A-Za-z /]*", value) else 0x0C
            body += tlv.encode(tag, value.encode())
        entries += tlv.encode(0x30, body)
    version = tlv.encode(0x02, b"\x00")  # a leading version number, as some batches carry
    return tlv.encode(TAG_DG13, tlv.encode(0x30, version + tlv.encode(0x31, entries)))
