"""RFC 8010 encoding: round trips, fuzzing, and the strictness rules."""

from __future__ import annotations

import contextlib
import datetime as dt
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers.printer.ipp_codec import (
    Attribute,
    AttributeGroup,
    Collection,
    GroupTag,
    IntRange,
    IppMessage,
    LocalizedString,
    Resolution,
    ResolutionUnit,
    Value,
    ValueTag,
    decode,
    encode,
)
from agent.errors import DataFormatError

ascii_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
names = st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A) | st.just("-"), min_size=1, max_size=16)
int32 = st.integers(-(2**31), 2**31 - 1)
datetimes = st.builds(
    lambda d, deci, offset: d.replace(microsecond=deci * 100_000,
                                      tzinfo=dt.timezone(dt.timedelta(minutes=offset))),
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1)),
    st.integers(0, 9), st.integers(-14 * 60 + 1, 14 * 60 - 1))


def plain_values() -> st.SearchStrategy[Value]:
    return st.one_of(
        st.builds(Value, st.sampled_from([ValueTag.INTEGER, ValueTag.ENUM]), int32),
        st.builds(Value, st.just(ValueTag.BOOLEAN), st.booleans()),
        st.builds(Value, st.sampled_from([ValueTag.KEYWORD, ValueTag.URI, ValueTag.CHARSET,
                                          ValueTag.MIME_MEDIA_TYPE, ValueTag.NATURAL_LANGUAGE,
                                          ValueTag.URI_SCHEME]), ascii_text),
        st.builds(Value, st.sampled_from([ValueTag.TEXT, ValueTag.NAME]), st.text(max_size=30)),
        st.builds(Value, st.sampled_from([ValueTag.TEXT_WITH_LANGUAGE, ValueTag.NAME_WITH_LANGUAGE]),
                  st.builds(LocalizedString, st.text(max_size=30), ascii_text)),
        st.builds(Value, st.just(ValueTag.OCTET_STRING), st.binary(max_size=40)),
        st.builds(Value, st.just(ValueTag.DATE_TIME), datetimes),
        st.builds(Value, st.just(ValueTag.RESOLUTION),
                  st.builds(Resolution, int32, int32, st.sampled_from(list(ResolutionUnit)))),
        st.builds(Value, st.just(ValueTag.RANGE_OF_INTEGER),
                  st.tuples(int32, int32).map(lambda p: IntRange(min(p), max(p)))),
        st.builds(Value, st.sampled_from([ValueTag.NO_VALUE, ValueTag.UNKNOWN, ValueTag.UNSUPPORTED]),
                  st.none()),
    )


values = st.recursive(
    plain_values(),
    lambda inner: st.builds(
        Value, st.just(ValueTag.BEG_COLLECTION),
        st.builds(Collection, st.lists(st.builds(Attribute, names, st.lists(inner, min_size=1, max_size=3)
                                                 .map(tuple)), max_size=4).map(tuple))),
    max_leaves=12)

attributes = st.builds(Attribute, names, st.lists(values, min_size=1, max_size=4).map(tuple))
groups = st.builds(AttributeGroup, st.sampled_from(list(GroupTag)),
                   st.lists(attributes, max_size=5).map(tuple))
messages = st.builds(IppMessage, st.integers(0, 0xFFFF), st.integers(0, 2**31 - 1),
                     st.lists(groups, max_size=4).map(tuple), st.binary(max_size=64),
                     st.tuples(st.integers(1, 2), st.integers(0, 1)))



@settings(max_examples=120, deadline=None)
@given(messages)
def test_round_trip(message: IppMessage) -> None:
    assert decode(encode(message)) == message


@settings(max_examples=250, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_data_format_error(data: bytes) -> None:
    try:
        message = decode(data)
    except DataFormatError:
        return
    assert decode(encode(message)) == message


@settings(max_examples=120, deadline=None)
@given(messages, st.data())
def test_mutated_messages_raise_only_data_format_error(message: IppMessage, data: st.DataObject) -> None:
    raw = bytearray(encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(DataFormatError):
        decode(bytes(raw[:cut]))


def _attr(tag: int, name: bytes, value: bytes) -> bytes:
    return bytes((tag,)) + struct.pack(">H", len(name)) + name + struct.pack(">H", len(value)) + value


HEADER = b"\x02\x00\x00\x0b\x00\x00\x00\x01"


def test_known_bytes_decode() -> None:
    raw = (HEADER + b"\x01" + _attr(0x47, b"attributes-charset", b"utf-8")
           + _attr(0x44, b"requested-attributes", b"printer-state") + _attr(0x44, b"", b"printer-name")
           + b"\x04" + _attr(0x34, b"media-col", b"") + _attr(0x4A, b"", b"media-size")
           + _attr(0x34, b"", b"") + _attr(0x4A, b"", b"x-dimension")
           + _attr(0x21, b"", struct.pack(">i", 21000))
           + _attr(0x37, b"", b"") + _attr(0x37, b"", b"") + b"\x03PDF")
    message = decode(raw)
    assert message.code == 0x0B
    assert message.request_id == 1
    assert message.data == b"PDF"
    requested = message.find(GroupTag.OPERATION, "requested-attributes")
    assert requested is not None
    assert requested.strings() == ("printer-state", "printer-name")
    media = message.find(GroupTag.PRINTER, "media-col")
    assert media is not None
    assert isinstance(media.first, Collection)
    size = media.first.get("media-size")
    assert size is not None
    assert isinstance(size.first, Collection)
    x_dim = size.first.get("x-dimension")
    assert x_dim is not None
    assert x_dim.first == 21000
    assert encode(message) == raw
    assert "PDF" not in repr(message)


@pytest.mark.parametrize("raw", [
    b"",
    HEADER,  # no end-of-attributes
    HEADER + b"\x01" + _attr(0x21, b"n", b"\x00\x01"),  # integer of 2 octets
    HEADER + b"\x01" + _attr(0x22, b"b", b"\x02") + b"\x03",  # boolean 2
    HEADER + b"\x01" + _attr(0x44, b"k", "é".encode()) + b"\x03",  # keyword not ASCII
    HEADER + b"\x01" + _attr(0x41, b"t", b"\xff\xfe") + b"\x03",  # text not UTF-8
    HEADER + _attr(0x44, b"k", b"v") + b"\x03",  # attribute outside any group
    HEADER + b"\x01" + _attr(0x44, b"", b"v") + b"\x03",  # additional value with no attribute
    HEADER + b"\x01" + _attr(0x37, b"", b"") + b"\x03",  # endCollection without begin
    HEADER + b"\x01" + _attr(0x34, b"c", b"") + b"\x03",  # collection never closed
    HEADER + b"\x01" + _attr(0x4A, b"", b"m") + b"\x03",  # memberAttrName outside collection
    HEADER + b"\x01" + _attr(0x33, b"r", struct.pack(">ii", 5, 1)) + b"\x03",  # range lower > upper
    HEADER + b"\x01" + _attr(0x31, b"d", b"\x07\xe6\x0d\x01\x00\x00\x00\x00+\x00\x00") + b"\x03",  # month 13
    HEADER + b"\x01" + _attr(0x13, b"n", b"x") + b"\x03",  # out-of-band with a value
    HEADER + b"\x01" + _attr(0x7F, b"x", b"\x00\x00\x00\x50") + b"\x03",  # extension tag
    HEADER + b"\x01" + _attr(0x38, b"x", b"") + b"\x03",  # unassigned value tag
    HEADER + b"\x00\x03",  # reserved delimiter 0x00
    HEADER + b"\x01" + _attr(0x35, b"t", b"\x00\x05en\x00\x01x") + b"\x03",  # language length lies
    HEADER + b"\x01\x44\x00\x05ab",  # name longer than the message
    HEADER + b"\x01\x44\x80\x00",  # negative name length
])
def test_malformed_input_is_a_data_format_error(raw: bytes) -> None:
    with pytest.raises(DataFormatError):
        decode(raw)


def test_deep_nesting_is_refused() -> None:
    raw = HEADER + b"\x01" + _attr(0x34, b"c", b"")
    for _ in range(40):
        raw += _attr(0x4A, b"", b"m") + _attr(0x34, b"", b"")
    with pytest.raises(DataFormatError, match="deeply"):
        decode(raw + b"\x03")


@pytest.mark.parametrize("value", [
    Value(ValueTag.INTEGER, 2**31),
    Value(ValueTag.INTEGER, True),
    Value(ValueTag.BOOLEAN, 1),
    Value(ValueTag.KEYWORD, "ké"),
    Value(ValueTag.RANGE_OF_INTEGER, IntRange(3, 2)),
    Value(ValueTag.DATE_TIME, dt.datetime(2026, 1, 1)),  # naive
    Value(ValueTag.TEXT, "x" * 40000),
    Value(ValueTag.END_COLLECTION, None),
])
def test_unencodable_values_are_refused(value: Value) -> None:
    message = IppMessage(1, 1, (AttributeGroup(GroupTag.OPERATION, (Attribute("a", (value,)),)),))
    with pytest.raises(DataFormatError):
        encode(message)
