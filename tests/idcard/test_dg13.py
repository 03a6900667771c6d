"""DG13 of the Vietnamese CCCD: both nestings of the parents field, dates, property tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers.idcard import tlv
from agent.drivers.idcard.dg13 import build_dg13, parse_date, parse_dg13
from agent.errors import DataFormatError
from agent.simulator.emrtd.profiles import SAMPLE_DG13


@pytest.mark.parametrize("nested", [True, False])
def test_sample_round_trip(nested: bool) -> None:
    d = parse_dg13(build_dg13(SAMPLE_DG13, nested_parents=nested))
    assert d.id_number == "001199012345"
    assert d.full_name == "Trần Thị Thử Nghiệm"
    assert d.date_of_birth == dt.date(1999, 3, 15)
    assert d.sex == "F"
    assert d.nationality == "Việt Nam"
    assert d.religion == "Không"
    assert d.identifying_marks.startswith("Nốt ruồi")
    assert d.date_of_issue == dt.date(2024, 1, 10)
    assert d.date_of_expiry == dt.date(2039, 3, 15)
    assert (d.father_name, d.mother_name) == ("Trần Văn Mẫu", "Lê Thị Mẫu")
    assert d.spouse_name == ""
    assert d.old_id_number == "012345678"


def test_parents_in_one_inner_sequence_and_without_wrapper() -> None:
    def pair(index: int, body: bytes) -> bytes:
        return tlv.encode(0x30, tlv.encode(0x02, bytes([index])) + body)

    parents = tlv.encode(0x30, tlv.encode(0x0C, b"Cha") + tlv.encode(0x0C, "Mẹ".encode()))
    data = tlv.encode(
        0x6D,
        pair(1, tlv.encode(0x13, b"001199012345"))
        + pair(13, parents)
        + pair(12, tlv.encode(0x0C, "Không thời hạn".encode()))
        + pair(40, tlv.encode(0x0C, b"x")),
    )
    d = parse_dg13(data)
    assert (d.father_name, d.mother_name) == ("Cha", "Mẹ")
    assert d.date_of_expiry is None
    assert d.unknown_indexes == (40,)


def test_dates_and_errors() -> None:
    assert parse_date("01/02/2003") == dt.date(2003, 2, 1)
    assert parse_date("") is None
    for bad in ("2003-02-01", "31/02/2003", "1/2/03"):
        with pytest.raises(DataFormatError):
            parse_date(bad)
    with pytest.raises(DataFormatError):
        parse_dg13(tlv.encode(0x6D, b""))
    with pytest.raises(DataFormatError):
        parse_dg13(tlv.encode(0x61, b""))
    dup = tlv.encode(0x30, tlv.encode(0x02, b"\x01") + tlv.encode(0x13, b"1"))
    with pytest.raises(DataFormatError):
        parse_dg13(tlv.encode(0x6D, dup + dup))
    with pytest.raises(DataFormatError):
        parse_dg13(
            tlv.encode(0x6D, tlv.encode(0x30, tlv.encode(0x02, b"\x02") + tlv.encode(0x0C, b"\xff\xfe")))
        )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_raise_data_format_error(data: bytes) -> None:
    with contextlib.suppress(DataFormatError):
        parse_dg13(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 437), st.integers(0, 255))
def test_mutated_sample_parses_or_raises_data_format_error(position: int, value: int) -> None:
    sample = bytearray(build_dg13(SAMPLE_DG13))
    sample[position % len(sample)] = value
    with contextlib.suppress(DataFormatError):
        parse_dg13(bytes(sample))


_values = st.text(max_size=40).filter(lambda s: "/" not in s)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from([1, 2, 5, 6, 7, 8, 9, 10, 14, 15]), _values, min_size=1),
    st.tuples(_values, _values),
    st.booleans(),
)
def test_built_fields_come_back(fields: dict[int, str], parents: tuple[str, str], nested: bool) -> None:
    full: dict[int, str | tuple[str, str]] = dict(fields)
    full[13] = parents
    d = parse_dg13(build_dg13(full, nested_parents=nested))
    def nfc(value: str) -> str:  # the parser hands out NFC text
        return unicodedata.normalize("NFC", value)

    assert d.full_name == nfc(fields.get(2, ""))
    assert d.place_of_residence == nfc(fields.get(9, ""))
    assert d.father_name == nfc(parents[0])


def test_decomposed_vietnamese_text_is_normalised() -> None:
    import unicodedata

    fields: dict[int, str | tuple[str, str]] = {
        1: "001199012345",
        2: unicodedata.normalize("NFD", "Trần Thị Thử Nghiệm"),
        4: unicodedata.normalize("NFD", "Nữ"),
    }
    d = parse_dg13(build_dg13(fields))
    assert d.full_name == "Trần Thị Thử Nghiệm"
    assert d.sex == "F"
