"""DG13 of the Vietnamese CCCD: a hand-written corpus of the layouts seen in public readers,
problems reported per field, and a property test over generated layouts (header elements,
orders, nestings, string types, NFD text) built by a small DER encoder of this test's own."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers.idcard import tlv
from agent.drivers.idcard.dg13 import Dg13, build_dg13, parse_date, parse_dg13
from agent.errors import DataFormatError
from agent.simulator.emrtd.profiles import SAMPLE_DG13

CORPUS = Path(__file__).parent / "data" / "dg13"


def corpus(name: str) -> bytes:
    """A corpus file: hex bytes, '#' comments."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    return bytes.fromhex("".join(re.sub(r"#.*", "", line) for line in text.splitlines()))


EVERY_FIELD = {
    "id_number": "001099000001", "full_name": "Lê Văn An", "date_of_birth": dt.date(1990, 2, 1), "sex": "M",
    "nationality": "Việt Nam", "ethnicity": "Kinh", "religion": "Không", "place_of_origin": "Hà Nội",
    "place_of_residence": "Số 1", "identifying_marks": "Sẹo", "date_of_issue": dt.date(2021, 10, 10),
    "date_of_expiry": dt.date(2030, 2, 1), "father_name": "Lê Cha", "mother_name": "Mẹ Hoa", "spouse_name": "",
    "old_id_number": "123456789",
}


def fields_of(d: Dg13) -> dict[str, object]:
    return {name: getattr(d, name) for name in EVERY_FIELD}


@pytest.mark.parametrize("name", ["version_oid_set_flat_parents.hex", "classic_version_set_nested_parents.hex"])
def test_full_layouts_yield_every_field(name: str) -> None:
    d = parse_dg13(corpus(name))
    assert fields_of(d) == EVERY_FIELD
    assert d.present == frozenset(range(1, 16))
    assert (d.old_id_index, d.extra, d.problems) == (15, (), ())


def test_version_integer_and_oid_ahead_of_the_pairs_are_not_field_one() -> None:
    d = parse_dg13(corpus("version_oid_set_flat_parents.hex"))
    assert d.id_number == "001099000001"
    assert d.full_name == "Lê Văn An"
    assert d.place_of_residence == "Số 1"


def test_bare_pairs_keep_an_unknown_index() -> None:
    d = parse_dg13(corpus("bare_pairs_unknown_index.hex"))
    assert (d.id_number, d.full_name) == ("001099000001", "Lê Văn An")
    assert (d.father_name, d.mother_name) == ("Lê Cha", "Mẹ Hoa")
    assert d.old_id_number == "123456789"
    assert d.extra == ((40, ("x",)),)
    assert d.unknown_indexes == (40,)
    assert d.present == {1, 2, 13, 15, 40}
    assert d.place_of_residence == ""
    assert d.problems == ()


def test_old_id_number_at_index_16() -> None:
    d = parse_dg13(corpus("index16_old_id.hex"))
    assert d.old_id_number == "123456789"
    assert d.old_id_index == 16
    assert (d.father_name, d.mother_name) == ("Lê Cha", "Mẹ Hoa")
    assert d.extra == ()


def test_string_types_and_decomposed_text() -> None:
    d = parse_dg13(corpus("string_types_sequence_header.hex"))
    assert d.id_number == "001099000001"  # NumericString
    assert d.full_name == "Lê Văn An"  # BMPString
    assert d.place_of_residence == "Số 1"  # NFD on the card, NFC out
    assert unicodedata.is_normalized("NFC", d.place_of_residence)
    assert d.sex == "M"  # TeletexString
    assert d.problems == ()


def test_old_id_at_16_with_something_else_at_15() -> None:
    def pair(index: int, text: str) -> bytes:
        return tlv.encode(0x30, tlv.encode(0x02, bytes([index])) + tlv.encode(0x0C, text.encode()))

    d = parse_dg13(tlv.encode(0x6D, pair(2, "Tên") + pair(15, "không rõ") + pair(16, "123456789012")))
    assert (d.old_id_number, d.old_id_index) == ("123456789012", 16)
    assert d.extra == ((15, ("không rõ",)),)


def test_problems_are_named_and_the_other_fields_kept() -> None:
    def pair(index: int, *body: bytes) -> bytes:
        return tlv.encode(0x30, tlv.encode(0x02, bytes([index])) + b"".join(body))

    data = tlv.encode(0x6D, tlv.encode(0x31,
        pair(2, tlv.encode(0x0C, "Tên".encode()))
        + pair(3, tlv.encode(0x13, b"1990-02-01"))
        + pair(9, tlv.encode(0x0C, b"A"), tlv.encode(0x0C, b"B"))
        + pair(8, tlv.encode(0x0C, b"\xff\xfe"))
        + tlv.encode(0x02, b"\x07")))
    d = parse_dg13(data)
    assert d.full_name == "Tên"
    assert d.date_of_birth is None
    assert d.place_of_residence == "A"
    assert d.place_of_origin == ""
    assert set(d.problems) == {
        "DG13 field 3 (date of birth) is not a dd/mm/yyyy date",
        "DG13 field 9 (place of residence) holds more values than expected",
        "DG13 field 8 (place of origin) holds text that does not decode",
        "DG13 holds an element that is not an (index, value) pair",
    }
    assert all("Tên" not in p and "1990" not in p for p in d.problems)


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
    with pytest.raises(DataFormatError):  # a version and an OID, and no pair at all
        parse_dg13(tlv.encode(0x6D, tlv.encode(0x30, tlv.encode(0x02, b"\x01") + tlv.encode(0x06, b"\x88\x37"))))
    dup = tlv.encode(0x30, tlv.encode(0x02, b"\x01") + tlv.encode(0x13, b"1"))
    with pytest.raises(DataFormatError):
        parse_dg13(tlv.encode(0x6D, dup + dup))


def test_permanent_card_expiry_is_no_date_and_no_problem() -> None:
    d = parse_dg13(build_dg13({2: "Tên", 12: "Không thời hạn"}))
    assert d.date_of_expiry is None
    assert d.problems == ()


@pytest.mark.parametrize("header", ["none", "version", "version-oid"])
@pytest.mark.parametrize("nested", [True, False])
def test_emulator_layouts_round_trip(header: str, nested: bool) -> None:
    d = parse_dg13(build_dg13(SAMPLE_DG13, nested_parents=nested, header=header))
    assert d.id_number == "001199012345"
    assert d.full_name == "Trần Thị Thử Nghiệm"
    assert (d.father_name, d.mother_name) == ("Trần Văn Mẫu", "Lê Thị Mẫu")
    assert d.old_id_number == "012345678"
    assert d.problems == ()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_raise_data_format_error(data: bytes) -> None:
    with contextlib.suppress(DataFormatError):
        parse_dg13(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 437), st.integers(0, 255))
def test_mutated_corpus_parses_or_raises_data_format_error(position: int, value: int) -> None:
    sample = bytearray(corpus("version_oid_set_flat_parents.hex"))
    sample[position % len(sample)] = value
    with contextlib.suppress(DataFormatError):
        parse_dg13(bytes(sample))


# -- generated layouts ----------------------------------------------------------------------------
# An encoder of this test's own (definite-length DER), so the property does not check the
# project's encoder against its own parser.

def der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + body


STRING_TYPES = {"utf8": (0x0C, "utf-8"), "bmp": (0x1E, "utf-16-be"), "universal": (0x1C, "utf-32-be"),
                "printable": (0x13, "ascii")}
VIETNAMESE = "aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ "
TEXT_FIELDS = {2: "full_name", 5: "nationality", 6: "ethnicity", 7: "religion", 8: "place_of_origin",
               9: "place_of_residence", 10: "identifying_marks", 14: "spouse_name"}
DATE_FIELDS = {3: "date_of_birth", 11: "date_of_issue", 12: "date_of_expiry"}


@dataclass
class Layout:
    values: dict[int, str | tuple[str, str]]  # the NFC text each index carries
    encoded: list[bytes]  # the pairs, in card order
    wrapping: str
    headers: list[bytes]
    set_tag: int


@st.composite
def string_element(draw: st.DrawFn, text: str) -> bytes:
    """``text`` (NFC) as a string of some ASN.1 type, maybe decomposed (NFD)."""
    kinds = ["utf8", "bmp", "universal"] + (["printable"] if re.fullmatch(r"[0-9A-Za-z /]*", text) else [])
    tag, codec = STRING_TYPES[draw(st.sampled_from(kinds))]
    decomposed = draw(st.booleans())
    return der(tag, (unicodedata.normalize("NFD", text) if decomposed else text).encode(codec))


texts = st.text(alphabet=VIETNAMESE, max_size=30).map(lambda s: unicodedata.normalize("NFC", s))
dates = st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31))
headers = st.sampled_from([
    der(0x02, b"\x00"), der(0x02, b"\x01"), der(0x02, b"\x03"),  # version numbers
    der(0x06, bytes.fromhex("88370D")), der(0x06, bytes.fromhex("2B0601040182")),  # OIDs
    der(0x05, b""),  # NULL
    der(0x30, der(0x02, b"\x01") + der(0x06, bytes.fromhex("88370D"))),  # SEQUENCE { version, OID }
])


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    values: dict[int, str | tuple[str, str]] = {}
    for index in draw(st.sets(st.sampled_from(sorted(TEXT_FIELDS)))):
        values[index] = draw(texts)
    for index in draw(st.sets(st.sampled_from(sorted(DATE_FIELDS)))):
        values[index] = draw(dates).strftime("%d/%m/%Y")
    if draw(st.booleans()):
        values[1] = draw(st.from_regex(r"[0-9]{12}", fullmatch=True))
    if draw(st.booleans()):
        values[4] = draw(st.sampled_from(["Nam", "Nữ"]))
    if draw(st.booleans()):
        values[13] = (draw(texts), draw(texts))
    old_at = draw(st.sampled_from([0, 15, 16]))
    if old_at:
        values[old_at] = draw(st.from_regex(r"[0-9]{9}|[0-9]{12}", fullmatch=True))
        if draw(st.booleans()):  # the other index holds something that is no ID number
            values[31 - old_at] = "không " + draw(texts)
    for index in draw(st.sets(st.integers(17, 255), max_size=3)):
        values[index] = draw(texts)
    if not values:
        values[2] = draw(texts)

    encoded = []
    for index, value in values.items():
        body = der(0x02, index.to_bytes(2 if index > 127 else 1, "big"))
        if isinstance(value, tuple):
            father, mother = draw(string_element(value[0])), draw(string_element(value[1]))
            nesting = draw(st.sampled_from(["side", "nested", "inner"]))
            if nesting == "side":
                body += father + mother
            elif nesting == "nested":
                body += der(0x30, father) + der(0x30, mother)
            else:
                body += der(0x30, father + mother)
        else:
            body += draw(string_element(value))
        encoded.append(der(0x30, body))
    order = draw(st.permutations(range(len(encoded))))
    return Layout(values, [encoded[i] for i in order],
                  draw(st.sampled_from(["bare", "set", "sequence-set", "deep"])),
                  draw(st.lists(headers, max_size=3)), draw(st.sampled_from([0x30, 0x31])))


def encode_layout(layout: Layout) -> bytes:
    head, pairs = b"".join(layout.headers), b"".join(layout.encoded)
    if layout.wrapping == "bare":
        inner = head + pairs
    elif layout.wrapping == "set":
        inner = head + der(layout.set_tag, pairs)
    elif layout.wrapping == "sequence-set":
        inner = der(0x30, head + der(layout.set_tag, pairs))
    else:
        inner = der(0x30, head + der(0x30, der(layout.set_tag, pairs)))
    return der(0x6D, inner)


@settings(max_examples=400, deadline=None)
@given(layouts())
def test_generated_layouts_round_trip_every_field(layout: Layout) -> None:
    d = parse_dg13(encode_layout(layout))
    values = layout.values
    assert d.problems == ()
    assert d.present == frozenset(values)
    for index, name in TEXT_FIELDS.items():
        assert getattr(d, name) == values.get(index, "")
    for index, name in DATE_FIELDS.items():
        expected = values.get(index)
        assert getattr(d, name) == (dt.datetime.strptime(str(expected), "%d/%m/%Y").date() if expected else None)
    assert d.id_number == values.get(1, "")
    assert d.sex == {"Nam": "M", "Nữ": "F"}.get(str(values.get(4)), "")
    assert (d.father_name, d.mother_name) == values.get(13, ("", ""))
    old = [i for i in (15, 16) if i in values and str(values[i]).isdigit()]
    assert d.old_id_number == (values[old[0]] if old else "")
    spare = [i for i in (15, 16) if i in values and not str(values[i]).isdigit()]
    unknown = sorted(i for i in values if i > 16) + spare
    assert d.extra == tuple((i, (values[i],)) for i in sorted(unknown))
