"""DG13 of the Vietnamese CCCD: the holder's personal data as (index, value) pairs.

Issuing batches differ in everything around the pairs, so the pairs are found by their
shape, never by position: a pair is a SEQUENCE whose first element is an INTEGER index
(1..255) and whose other elements are strings, or SEQUENCEs/SETs of strings (nested to any
depth the walker allows). Whatever comes ahead of the first pair (a version INTEGER, an OID,
any other header element) is skipped; a pair list may be a SET or a SEQUENCE, directly under
the '6D' tag or deeper. Data after the first pair that is not a pair is reported as a
problem, never dropped silently.

Layouts seen in public readers, all handled:

* index 13 (parents) as two strings side by side, as two SEQUENCEs of one string each, or
  as one SEQUENCE of two strings: the strings of a pair are taken in order;
* index 14 spouse, index 15 old ID number (batches before 2024);
* index 16 present (2024 batches): there the old 9-digit ID number sits at 16.
  The old ID number is the one of 15 and 16 that holds an ID number (9 or 12 digits),
  15 first; the other index is kept as an extra field.

Indexes this module does not map (and the spare one of 15/16) are kept in
:attr:`Dg13.extra`, by index, with their strings. Indexes: 1 ID, 2 name, 3 date of birth,
4 sex, 5 nationality, 6 ethnicity, 7 religion, 8 place of origin, 9 residence,
10 identifying marks, 11 issue date, 12 expiry, 13 parents, 14 spouse, 15/16 old ID.
Dates are dd/mm/yyyy. Text is returned NFC-normalised (some batches store NFD).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from agent.drivers.idcard import tlv
from agent.errors import DataFormatError

TAG_DG13 = 0x6D
_INTEGER = 0x02
_OID = 0x06
_SEQUENCE = 0x30
_SET = 0x31
#: ASN.1 string types and how their bytes decode (OCTET STRING: some batches put UTF-8 there).
_STRING_CODECS = {
    0x0C: "utf-8",       # UTF8String
    0x12: "ascii",       # NumericString
    0x13: "ascii",       # PrintableString
    0x14: "latin-1",     # TeletexString (T.61; Latin-1 is what writers put there in practice)
    0x16: "ascii",       # IA5String
    0x1A: "ascii",       # VisibleString
    0x1C: "utf-32-be",   # UniversalString
    0x1E: "utf-16-be",   # BMPString
    0x04: "utf-8",       # OCTET STRING
}
_MAX_DEPTH = 8
_MAX_INDEX = 255
_OLD_ID = re.compile(r"[0-9]{9}|[0-9]{12}")

#: The single-string fields: index -> name (for problem notes; never the value).
FIELD_NAMES = {
    1: "ID number", 2: "full name", 3: "date of birth", 4: "sex", 5: "nationality", 6: "ethnicity",
    7: "religion", 8: "place of origin", 9: "place of residence", 10: "identifying marks",
    11: "date of issue", 12: "date of expiry", 13: "parents", 14: "spouse", 15: "old ID number",
    16: "old ID number",
}
_MAPPED = frozenset(range(1, 15))


@dataclass(frozen=True, slots=True)
class Dg13:
    """Decoded DG13 fields (strings NFC, dates parsed).

    ``present`` holds every index the card carries (even with an empty value), so a caller
    can tell "the chip says nothing" from "the chip has no such field". ``problems`` are
    data-free notes on what could not be decoded (the affected field is left empty).
    """

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
    present: frozenset[int] = frozenset()
    #: Old ID number's index on this card (15 or 16), 0 when it has none.
    old_id_index: int = 0
    #: Pairs not mapped to a field: (index, strings), by index.
    extra: tuple[tuple[int, tuple[str, ...]], ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def unknown_indexes(self) -> tuple[int, ...]:
        return tuple(index for index, _ in self.extra)

    def __repr__(self) -> str:
        return "Dg13(<redacted>)"


class _Walk:
    """Collects pairs from a DG13 tree in document order, with data-free problem notes."""

    def __init__(self) -> None:
        self.pairs: dict[int, list[str]] = {}
        self.problems: list[str] = []
        self.seen_pair = False

    def visit(self, item: tlv.Tlv, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise DataFormatError("DG13 nests too deeply")
        index = _pair_index(item, depth)
        if index is not None:
            self._take(index, item, depth)
            return
        if item.constructed:
            for child in item.children():
                self.visit(child, depth + 1)
            return
        if self.seen_pair:
            # Header elements come ahead of the pairs; anything else among them is data
            # this parser cannot place.
            self.problems.append("DG13 holds an element that is not an (index, value) pair")

    def _take(self, index: int, item: tlv.Tlv, depth: int) -> None:
        if index in self.pairs:
            raise DataFormatError("DG13 repeats a field index")
        self.seen_pair = True
        values: list[str] = []
        for child in item.children()[1:]:
            for string in _strings(child, depth + 1):
                try:
                    values.append(_decode(string))
                except DataFormatError:
                    self.problems.append(f"DG13 field {index} ({FIELD_NAMES.get(index, 'unknown')}) "
                                         "holds text that does not decode")
        self.pairs[index] = values


def _is_stringish(item: tlv.Tlv, depth: int) -> bool:
    """A string, or a SEQUENCE/SET whose elements are all stringish (the value side of a pair)."""
    if depth > _MAX_DEPTH:
        raise DataFormatError("DG13 nests too deeply")
    if item.tag in _STRING_CODECS:
        return True
    if item.tag in (_SEQUENCE, _SET):
        return all(_is_stringish(child, depth + 1) for child in item.children())
    return False


def _pair_index(item: tlv.Tlv, depth: int) -> int | None:
    """The index of a pair-shaped SEQUENCE, else None."""
    if item.tag != _SEQUENCE:
        return None
    children = item.children()
    if len(children) < 2 or children[0].tag != _INTEGER:
        return None
    raw = children[0].value
    if not 1 <= len(raw) <= 2 or raw[0] & 0x80:
        return None
    index = int.from_bytes(raw, "big")
    if not 1 <= index <= _MAX_INDEX:
        return None
    if not all(_is_stringish(child, depth + 1) for child in children[1:]):
        return None
    return index


def _strings(item: tlv.Tlv, depth: int) -> Iterator[tlv.Tlv]:
    if item.tag in _STRING_CODECS:
        yield item
        return
    for child in item.children():
        yield from _strings(child, depth + 1)


def _decode(item: tlv.Tlv) -> str:
    """Text as NFC: Vietnamese diacritics may come decomposed (NFD) from some batches."""
    try:
        text = item.value.decode(_STRING_CODECS[item.tag])
    except UnicodeDecodeError as exc:
        raise DataFormatError("DG13 string is not valid text") from exc
    return unicodedata.normalize("NFC", text)


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


def _old_id_index(pairs: dict[int, list[str]]) -> int:
    """Which of 15 and 16 holds the old ID number on this card (0: neither is present)."""
    for index in (15, 16):
        values = pairs.get(index)
        if values and _OLD_ID.fullmatch(values[0].strip()):
            return index
    if 15 in pairs:
        return 15
    return 16 if 16 in pairs else 0


def parse_dg13(data: bytes) -> Dg13:
    """Parse a DG13 file (with its '6D' tag).

    Raises DataFormatError when the file is not TLV, holds no pair or repeats an index;
    a field that does not decode is left empty and named in :attr:`Dg13.problems`.
    """
    outer = tlv.parse_single(data, TAG_DG13)
    walk = _Walk()
    walk.visit(outer, 0)
    pairs = walk.pairs
    if not pairs:
        raise DataFormatError("DG13 holds no (index, value) pairs")
    problems = walk.problems
    old_index = _old_id_index(pairs)
    expected = {13: 2}

    for index, values in sorted(pairs.items()):
        if (index in _MAPPED or index == old_index) and len(values) > expected.get(index, 1):
            problems.append(f"DG13 field {index} ({FIELD_NAMES[index]}) holds more values than expected")

    def first(index: int) -> str:
        values = pairs.get(index, [])
        return values[0] if values else ""

    def date(index: int) -> dt.date | None:
        try:
            return parse_date(first(index))
        except DataFormatError:
            problems.append(f"DG13 field {index} ({FIELD_NAMES[index]}) is not a dd/mm/yyyy date")
            return None

    parents = pairs.get(13, [])
    extra = tuple((index, tuple(values)) for index, values in sorted(pairs.items())
                  if index not in _MAPPED and index != old_index)
    return Dg13(
        id_number=first(1), full_name=first(2), date_of_birth=date(3),
        sex=parse_sex(first(4)) if first(4) else "", nationality=first(5), ethnicity=first(6),
        religion=first(7), place_of_origin=first(8), place_of_residence=first(9),
        identifying_marks=first(10), date_of_issue=date(11), date_of_expiry=date(12),
        father_name=parents[0] if parents else "", mother_name=parents[1] if len(parents) > 1 else "",
        spouse_name=first(14), old_id_number=first(old_index) if old_index else "",
        present=frozenset(pairs), old_id_index=old_index, extra=extra, problems=tuple(problems),
    )


#: Header elements the emulator can put ahead of the pairs, as issuing batches do.
DG13_HEADERS = ("none", "version", "version-oid")
#: The OID the emulator puts ahead of the pairs: 2.999.13, under the arc X.660 reserves for
#: examples (what real batches carry there is not published; the parser skips any OID).
_HEADER_OID = bytes.fromhex("88370D")


def build_dg13(fields: dict[int, str | tuple[str, str]], *, nested_parents: bool = True,
               header: str = "version") -> bytes:
    """Encode DG13 the way cards in the field do (used by the card emulator).

    ``header``: "version" puts a version INTEGER 0 ahead of the SET of pairs, "version-oid"
    a version INTEGER 1 and an OID (the layout that made older parsers take the version for
    field 1), "none" the SET alone.
    """
    entries = b""
    for index in sorted(fields):
        value = fields[index]
        body = tlv.encode(_INTEGER, bytes([index]))
        if isinstance(value, tuple):
            if nested_parents:
                body += b"".join(tlv.encode(_SEQUENCE, tlv.encode(0x0C, v.encode())) for v in value)
            else:
                body += b"".join(tlv.encode(0x0C, v.encode()) for v in value)
        else:
            tag = 0x13 if value.isascii() and re.fullmatch(r"[0-9A-Za-z /]*", value) else 0x0C
            body += tlv.encode(tag, value.encode())
        entries += tlv.encode(_SEQUENCE, body)
    if header not in DG13_HEADERS:
        raise ValueError(f"unknown DG13 header {header!r}")
    head = b""
    if header == "version":
        head = tlv.encode(_INTEGER, b"\x00")
    elif header == "version-oid":
        head = tlv.encode(_INTEGER, b"\x01") + tlv.encode(_OID, _HEADER_OID)
    return tlv.encode(TAG_DG13, tlv.encode(_SEQUENCE, head + tlv.encode(_SET, entries)))
