"""IPP/1.1 and 2.x message encoding (RFC 8010 section 3), both directions.

A message is a header (version, operation-id or status-code, request-id), a
sequence of attribute groups, the end-of-attributes tag and the document data.
Values keep their wire tag, so a decoded message encodes back to the same bytes
(modulo the order of nothing: groups and attributes keep their order).

Decoding is strict: anything the RFC does not allow (truncation, unknown tags,
wrong value lengths, non-ASCII keywords, unbalanced collections, a boolean
that is neither 0 nor 1) raises :class:`~agent.errors.DataFormatError` naming
the offset, never another exception type.
"""

from __future__ import annotations

import datetime as dt
import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from agent.errors import DataFormatError

#: Deepest collection nesting accepted when decoding (IPP uses 2-3 levels).
MAX_COLLECTION_DEPTH = 16
#: Largest name or value length a SIGNED-SHORT length field can carry.
MAX_FIELD_LENGTH = 0x7FFF

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


class GroupTag(enum.IntEnum):
    """Delimiter tags that open an attribute group (RFC 8010 3.5.1, PWG registrations)."""

    OPERATION = 0x01
    JOB = 0x02
    PRINTER = 0x04
    UNSUPPORTED = 0x05
    SUBSCRIPTION = 0x06
    EVENT_NOTIFICATION = 0x07
    RESOURCE = 0x08
    DOCUMENT = 0x09
    SYSTEM = 0x0A


END_OF_ATTRIBUTES = 0x03


class ValueTag(enum.IntEnum):
    """Value tags (RFC 8010 3.5.2). 0x10-0x1F are out-of-band: no value bytes."""

    UNSUPPORTED = 0x10
    UNKNOWN = 0x12
    NO_VALUE = 0x13
    NOT_SETTABLE = 0x15
    DELETE_ATTRIBUTE = 0x16
    ADMIN_DEFINE = 0x17
    INTEGER = 0x21
    BOOLEAN = 0x22
    ENUM = 0x23
    OCTET_STRING = 0x30
    DATE_TIME = 0x31
    RESOLUTION = 0x32
    RANGE_OF_INTEGER = 0x33
    BEG_COLLECTION = 0x34
    TEXT_WITH_LANGUAGE = 0x35
    NAME_WITH_LANGUAGE = 0x36
    END_COLLECTION = 0x37
    TEXT = 0x41
    NAME = 0x42
    KEYWORD = 0x44
    URI = 0x45
    URI_SCHEME = 0x46
    CHARSET = 0x47
    NATURAL_LANGUAGE = 0x48
    MIME_MEDIA_TYPE = 0x49
    MEMBER_ATTR_NAME = 0x4A

    @property
    def out_of_band(self) -> bool:
        return 0x10 <= self <= 0x1F


_TEXT_TAGS = frozenset({ValueTag.TEXT, ValueTag.NAME})
_ASCII_TAGS = frozenset({ValueTag.KEYWORD, ValueTag.URI, ValueTag.URI_SCHEME, ValueTag.CHARSET,
                         ValueTag.NATURAL_LANGUAGE, ValueTag.MIME_MEDIA_TYPE})
_LANGUAGE_TAGS = frozenset({ValueTag.TEXT_WITH_LANGUAGE, ValueTag.NAME_WITH_LANGUAGE})
_INT_TAGS = frozenset({ValueTag.INTEGER, ValueTag.ENUM})


class ResolutionUnit(enum.IntEnum):
    DOTS_PER_INCH = 3
    DOTS_PER_CM = 4


@dataclass(frozen=True, slots=True)
class Resolution:
    cross_feed: int
    feed: int
    unit: ResolutionUnit = ResolutionUnit.DOTS_PER_INCH


@dataclass(frozen=True, slots=True)
class IntRange:
    lower: int
    upper: int


@dataclass(frozen=True, slots=True)
class LocalizedString:
    """textWithLanguage / nameWithLanguage."""

    text: str
    language: str


@dataclass(frozen=True, slots=True)
class Collection:
    """The members of one collection value, in wire order."""

    members: tuple[Attribute, ...]

    def get(self, name: str) -> Attribute | None:
        for member in self.members:
            if member.name == name:
                return member
        return None


ValueData = (int | bool | str | bytes | dt.datetime | Resolution | IntRange | LocalizedString
             | Collection | None)


@dataclass(frozen=True, slots=True)
class Value:
    tag: ValueTag
    data: ValueData


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute: a name and one or more values (``1setOf`` when several)."""

    name: str
    values: tuple[Value, ...]

    @classmethod
    def of(cls, name: str, tag: ValueTag, *data: ValueData) -> Attribute:
        return cls(name, tuple(Value(tag, item) for item in data))

    @property
    def first(self) -> ValueData:
        return self.values[0].data if self.values else None

    def strings(self) -> tuple[str, ...]:
        """The values that are strings (keyword, uri, text, name...), as ``str``."""
        out: list[str] = []
        for value in self.values:
            if isinstance(value.data, str):
                out.append(value.data)
            elif isinstance(value.data, LocalizedString):
                out.append(value.data.text)
            elif isinstance(value.data, bytes):
                out.append(value.data.decode("utf-8", "replace"))
        return tuple(out)

    def ints(self) -> tuple[int, ...]:
        return tuple(v.data for v in self.values
                     if isinstance(v.data, int) and not isinstance(v.data, bool))


@dataclass(frozen=True, slots=True)
class AttributeGroup:
    tag: GroupTag
    attributes: tuple[Attribute, ...]

    def get(self, name: str) -> Attribute | None:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        return None


@dataclass(frozen=True, slots=True)
class IppMessage:
    """A request (``code`` is the operation-id) or a response (``code`` is the status-code)."""

    code: int
    request_id: int
    groups: tuple[AttributeGroup, ...] = ()
    data: bytes = b""
    version: tuple[int, int] = (2, 0)

    def __repr__(self) -> str:
        # document data may be a citizen's paper: never printed
        return (f"IppMessage(code=0x{self.code:04x}, request_id={self.request_id}, "
                f"groups={[g.tag.name for g in self.groups]}, data=<{len(self.data)} bytes>)")

    def groups_of(self, tag: GroupTag) -> tuple[AttributeGroup, ...]:
        return tuple(group for group in self.groups if group.tag == tag)

    def find(self, tag: GroupTag, name: str) -> Attribute | None:
        for group in self.groups_of(tag):
            found = group.get(name)
            if found is not None:
                return found
        return None


# -- encoding ------------------------------------------------------------------------------------

def _ascii(text: str, what: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise DataFormatError(f"IPP {what} must be US-ASCII") from None


def _field(data: bytes, what: str) -> bytes:
    if len(data) > MAX_FIELD_LENGTH:
        raise DataFormatError(f"IPP {what} is {len(data)} octets, more than {MAX_FIELD_LENGTH}")
    return struct.pack(">H", len(data)) + data


def _int32(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not _INT32_MIN <= value <= _INT32_MAX:
        raise DataFormatError(f"IPP {what} needs a signed 32-bit integer")
    return value


def _encode_datetime(value: dt.datetime) -> bytes:
    offset = value.utcoffset()
    if offset is None:
        raise DataFormatError("IPP dateTime needs a timezone")
    minutes = int(offset.total_seconds()) // 60
    if offset.total_seconds() % 60 or value.microsecond % 100_000 or not 0 <= value.year <= 0xFFFF:
        raise DataFormatError("IPP dateTime carries deci-seconds and whole-minute offsets only")
    direction = b"+" if minutes >= 0 else b"-"
    hours, mins = divmod(abs(minutes), 60)
    if hours > 14:
        raise DataFormatError("IPP dateTime offset out of range")
    return struct.pack(">HBBBBBB", value.year, value.month, value.day, value.hour, value.minute,
                       value.second, value.microsecond // 100_000) + direction + bytes((hours, mins))


def _encode_value(value: Value) -> bytes:
    tag, data = value.tag, value.data
    if tag.out_of_band:
        if data is not None:
            raise DataFormatError(f"IPP out-of-band {tag.name} carries no value")
        return b""
    if tag in _INT_TAGS:
        return struct.pack(">i", _int32(data, tag.name))
    if tag == ValueTag.BOOLEAN:
        if not isinstance(data, bool):
            raise DataFormatError("IPP boolean needs a bool")
        return b"\x01" if data else b"\x00"
    if tag == ValueTag.OCTET_STRING:
        if not isinstance(data, bytes):
            raise DataFormatError("IPP octetString needs bytes")
        return data
    if tag == ValueTag.DATE_TIME:
        if not isinstance(data, dt.datetime):
            raise DataFormatError("IPP dateTime needs a datetime")
        return _encode_datetime(data)
    if tag == ValueTag.RESOLUTION:
        if not isinstance(data, Resolution):
            raise DataFormatError("IPP resolution needs a Resolution")
        return struct.pack(">iiB", _int32(data.cross_feed, "resolution"), _int32(data.feed, "resolution"),
                           ResolutionUnit(data.unit))
    if tag == ValueTag.RANGE_OF_INTEGER:
        if not isinstance(data, IntRange) or data.lower > data.upper:
            raise DataFormatError("IPP rangeOfInteger needs an IntRange with lower <= upper")
        return struct.pack(">ii", _int32(data.lower, "range"), _int32(data.upper, "range"))
    if tag in _LANGUAGE_TAGS:
        if not isinstance(data, LocalizedString):
            raise DataFormatError(f"IPP {tag.name} needs a LocalizedString")
        return (_field(_ascii(data.language, "natural language"), "language")
                + _field(data.text.encode("utf-8"), "text"))
    if tag in _TEXT_TAGS:
        if not isinstance(data, str):
            raise DataFormatError(f"IPP {tag.name} needs a str")
        return data.encode("utf-8")
    if tag in _ASCII_TAGS or tag == ValueTag.MEMBER_ATTR_NAME:
        if not isinstance(data, str):
            raise DataFormatError(f"IPP {tag.name} needs a str")
        return _ascii(data, tag.name)
    raise DataFormatError(f"IPP value tag {tag.name} cannot be encoded as a plain value")


def _encode_attribute(attribute: Attribute, out: bytearray, depth: int, member: bool) -> None:
    if not attribute.values:
        raise DataFormatError(f"IPP attribute {attribute.name!r} has no value")
    if depth > MAX_COLLECTION_DEPTH:
        raise DataFormatError("IPP collection nested too deeply")
    name = _ascii(attribute.name, "attribute name")
    if not name:
        raise DataFormatError("IPP attribute name is empty")
    if member:
        # a member is introduced by memberAttrName, its values carry an empty name
        out += bytes((ValueTag.MEMBER_ATTR_NAME,)) + _field(b"", "name") + _field(name, "member name")
        name = b""
    for index, value in enumerate(attribute.values):
        this_name = name if index == 0 else b""
        if value.tag in (ValueTag.END_COLLECTION, ValueTag.MEMBER_ATTR_NAME):
            raise DataFormatError(f"IPP {value.tag.name} is structural, not a value")
        if value.tag == ValueTag.BEG_COLLECTION:
            if not isinstance(value.data, Collection):
                raise DataFormatError("IPP begCollection needs a Collection")
            out += bytes((value.tag,)) + _field(this_name, "name") + _field(b"", "value")
            for child in value.data.members:
                _encode_attribute(child, out, depth + 1, member=True)
            out += bytes((ValueTag.END_COLLECTION,)) + _field(b"", "name") + _field(b"", "value")
            continue
        out += bytes((value.tag,)) + _field(this_name, "name") + _field(_encode_value(value), "value")


def encode(message: IppMessage) -> bytes:
    """Encode a message, header to document data."""
    major, minor = message.version
    if not (0 <= major <= 255 and 0 <= minor <= 255 and 0 <= message.code <= 0xFFFF
            and 0 <= message.request_id <= _INT32_MAX):
        raise DataFormatError("IPP header field out of range")
    out = bytearray(struct.pack(">BBHi", major, minor, message.code, message.request_id))
    for group in message.groups:
        out.append(GroupTag(group.tag))
        for attribute in group.attributes:
            _encode_attribute(attribute, out, 0, member=False)
    out.append(END_OF_ATTRIBUTES)
    out += message.data
    return bytes(out)


# -- decoding ------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Field:
    offset: int
    tag: int
    name: bytes
    value: bytes


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 8

    def fields(self) -> Iterator[_Field | int]:
        """Yield group delimiters (as ints) and attribute fields until end-of-attributes."""
        data = self.data
        while True:
            if self.pos >= len(data):
                raise DataFormatError(f"IPP message truncated at offset {self.pos} (no end-of-attributes)")
            offset = self.pos
            tag = data[offset]
            if tag <= 0x0F:
                self.pos += 1
                yield tag
                if tag == END_OF_ATTRIBUTES:
                    return
                continue
            if tag == 0x7F:
                raise DataFormatError(f"IPP extension tag at offset {offset} is not supported")
            name_len = self._short(offset + 1)
            name = self._take(offset + 3, name_len)
            value_len = self._short(offset + 3 + name_len)
            value = self._take(offset + 5 + name_len, value_len)
            self.pos = offset + 5 + name_len + value_len
            yield _Field(offset, tag, name, value)

    def _short(self, at: int) -> int:
        if at + 2 > len(self.data):
            raise DataFormatError(f"IPP message truncated at offset {at}")
        length = int.from_bytes(self.data[at:at + 2], "big")
        if length > MAX_FIELD_LENGTH:
            raise DataFormatError(f"IPP length {length} at offset {at} is negative")
        return length

    def _take(self, at: int, length: int) -> bytes:
        if at + length > len(self.data):
            raise DataFormatError(f"IPP message truncated at offset {at}")
        return self.data[at:at + length]


def _text(raw: bytes, codec: str, where: int) -> str:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise DataFormatError(f"IPP string at offset {where} is not valid {codec}") from None


def _decode_datetime(raw: bytes, where: int) -> dt.datetime:
    if len(raw) != 11:
        raise DataFormatError(f"IPP dateTime at offset {where} is {len(raw)} octets, not 11")
    year, month, day, hour, minute, second, deci = struct.unpack(">HBBBBBB", raw[:8])
    direction, off_hours, off_minutes = raw[8:9], raw[9], raw[10]
    if direction not in (b"+", b"-") or off_hours > 14 or off_minutes > 59 or deci > 9:
        raise DataFormatError(f"IPP dateTime at offset {where} is malformed")
    sign = 1 if direction == b"+" else -1
    try:
        zone = dt.timezone(sign * dt.timedelta(hours=off_hours, minutes=off_minutes))
        return dt.datetime(year, month, day, hour, minute, second, deci * 100_000, tzinfo=zone)
    except ValueError:
        raise DataFormatError(f"IPP dateTime at offset {where} is not a valid date") from None


def _decode_value(tag: ValueTag, raw: bytes, where: int) -> ValueData:
    if tag.out_of_band:
        if raw:
            raise DataFormatError(f"IPP out-of-band value at offset {where} has a length")
        return None
    if tag in _INT_TAGS:
        if len(raw) != 4:
            raise DataFormatError(f"IPP {tag.name} at offset {where} is {len(raw)} octets, not 4")
        return int.from_bytes(raw, "big", signed=True)
    if tag == ValueTag.BOOLEAN:
        if raw not in (b"\x00", b"\x01"):
            raise DataFormatError(f"IPP boolean at offset {where} is not 0 or 1")
        return raw == b"\x01"
    if tag == ValueTag.OCTET_STRING:
        return raw
    if tag == ValueTag.DATE_TIME:
        return _decode_datetime(raw, where)
    if tag == ValueTag.RESOLUTION:
        if len(raw) != 9 or raw[8] not in (3, 4):
            raise DataFormatError(f"IPP resolution at offset {where} is malformed")
        x, y = struct.unpack(">ii", raw[:8])
        return Resolution(x, y, ResolutionUnit(raw[8]))
    if tag == ValueTag.RANGE_OF_INTEGER:
        if len(raw) != 8:
            raise DataFormatError(f"IPP rangeOfInteger at offset {where} is {len(raw)} octets, not 8")
        lower, upper = struct.unpack(">ii", raw)
        if lower > upper:
            raise DataFormatError(f"IPP rangeOfInteger at offset {where} has lower > upper")
        return IntRange(lower, upper)
    if tag in _LANGUAGE_TAGS:
        if len(raw) < 2:
            raise DataFormatError(f"IPP {tag.name} at offset {where} is truncated")
        lang_len = int.from_bytes(raw[:2], "big")
        if 2 + lang_len + 2 > len(raw):
            raise DataFormatError(f"IPP {tag.name} at offset {where} is truncated")
        text_len = int.from_bytes(raw[2 + lang_len:4 + lang_len], "big")
        if 4 + lang_len + text_len != len(raw):
            raise DataFormatError(f"IPP {tag.name} at offset {where} has inconsistent lengths")
        return LocalizedString(_text(raw[4 + lang_len:], "utf-8", where),
                               _text(raw[2:2 + lang_len], "ascii", where))
    if tag in _TEXT_TAGS:
        return _text(raw, "utf-8", where)
    return _text(raw, "ascii", where)


def _value_tag(tag: int, where: int) -> ValueTag:
    try:
        return ValueTag(tag)
    except ValueError:
        raise DataFormatError(f"IPP value tag 0x{tag:02x} at offset {where} is not supported") from None


class _Builder:
    """Turns the flat field stream into attributes, collections nested by a stack."""

    def __init__(self) -> None:
        # one frame per open collection level; the bottom one is the group itself
        self.stack: list[_Frame] = [_Frame()]

    def add(self, field: _Field) -> None:
        tag = _value_tag(field.tag, field.offset)
        frame = self.stack[-1]
        in_collection = len(self.stack) > 1
        if tag == ValueTag.MEMBER_ATTR_NAME:
            if not in_collection or field.name:
                raise DataFormatError(f"IPP memberAttrName at offset {field.offset} outside a collection")
            name = _text(field.value, "ascii", field.offset)
            if not name:
                raise DataFormatError(f"IPP empty member name at offset {field.offset}")
            frame.close_attribute()
            frame.name = name
            return
        if tag == ValueTag.END_COLLECTION:
            if not in_collection or field.name or field.value:
                raise DataFormatError(f"IPP endCollection at offset {field.offset} is misplaced")
            if frame.name is not None and not frame.values:
                raise DataFormatError(f"IPP member without a value at offset {field.offset}")
            frame.close_attribute()
            self.stack.pop()
            parent = self.stack[-1]
            parent.values.append(Value(ValueTag.BEG_COLLECTION, Collection(tuple(frame.attributes))))
            return
        if in_collection:
            # member values always carry an empty name; the member name came before
            if field.name or frame.name is None:
                raise DataFormatError(f"IPP collection member at offset {field.offset} lacks memberAttrName")
        elif field.name:
            frame.close_attribute()
            frame.name = _text(field.name, "ascii", field.offset)
        elif frame.name is None:
            raise DataFormatError(f"IPP additional value at offset {field.offset} has no attribute")
        if tag == ValueTag.BEG_COLLECTION:
            if field.value:
                raise DataFormatError(f"IPP begCollection at offset {field.offset} has a value")
            if len(self.stack) > MAX_COLLECTION_DEPTH:
                raise DataFormatError(f"IPP collection at offset {field.offset} nested too deeply")
            self.stack.append(_Frame())
            return
        frame.values.append(Value(tag, _decode_value(tag, field.value, field.offset)))

    def finish_group(self, where: int) -> tuple[Attribute, ...]:
        if len(self.stack) > 1:
            raise DataFormatError(f"IPP collection not closed before offset {where}")
        frame = self.stack[0]
        frame.close_attribute()
        done = tuple(frame.attributes)
        frame.attributes.clear()
        return done


class _Frame:
    __slots__ = ("attributes", "name", "values")

    def __init__(self) -> None:
        self.attributes: list[Attribute] = []
        self.name: str | None = None
        self.values: list[Value] = []

    def close_attribute(self) -> None:
        if self.name is not None and self.values:
            self.attributes.append(Attribute(self.name, tuple(self.values)))
        self.name = None
        self.values = []


def decode(data: bytes) -> IppMessage:
    """Decode one message; the bytes after end-of-attributes are the document data."""
    if len(data) < 9:
        raise DataFormatError(f"IPP message of {len(data)} octets is too short")
    major, minor, code, request_id = struct.unpack(">BBHi", data[:8])
    if major == 0 or request_id < 0:
        raise DataFormatError("IPP header is malformed")
    reader = _Reader(data)
    builder = _Builder()
    groups: list[AttributeGroup] = []
    current: GroupTag | None = None
    for item in reader.fields():
        if isinstance(item, int):
            if current is not None:
                groups.append(AttributeGroup(current, builder.finish_group(reader.pos - 1)))
            if item == END_OF_ATTRIBUTES:
                current = None
                break
            try:
                current = GroupTag(item)
            except ValueError:
                raise DataFormatError(f"IPP delimiter tag 0x{item:02x} is not supported") from None
            continue
        if current is None:
            raise DataFormatError(f"IPP attribute at offset {item.offset} outside any group")
        builder.add(item)
    return IppMessage(code=code, request_id=request_id, groups=tuple(groups),
                      data=data[reader.pos:], version=(major, minor))
