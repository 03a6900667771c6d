"""MRZ parsing (ICAO 9303 Parts 4 and 5 specimens), check digits, key material."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.domain.idcard import MrzKey
from agent.drivers.idcard.mrz import check_digit, mrz_information, parse, parse_yymmdd, validate_key
from agent.errors import DataFormatError, InvalidRequestError

TD1_SPECIMEN = (
    "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)
TD3_SPECIMEN = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"


def test_check_digits() -> None:
    assert check_digit("L898902C<") == "3"
    assert check_digit("690806") == "1"
    assert check_digit("940623") == "6"
    assert check_digit("<<<<<<") == "0"


def test_td1_specimen() -> None:
    m = parse(TD1_SPECIMEN)
    assert (m.format, m.document_code, m.issuing_state) == ("TD1", "I", "UTO")
    assert m.document_number == "D23145890"
    assert (m.date_of_birth, m.sex, m.date_of_expiry, m.nationality) == ("740812", "F", "120415", "UTO")
    assert (m.primary_name, m.secondary_name) == ("ERIKSSON", "ANNA MARIA")
    assert m.key() == MrzKey("D23145890", "740812", "120415")


def test_td3_specimen() -> None:
    m = parse(TD3_SPECIMEN)
    assert m.format == "TD3"
    assert m.document_number == "L898902C3"
    assert m.optional_data == "ZE184226B"
    assert m.full_name == "ERIKSSON ANNA MARIA"


def test_long_document_number_continues_in_optional_data() -> None:
    from agent.simulator.emrtd.profiles import td1

    text = td1("ID", "UTO", "D23145890", "", "740812", "F", "120415", "UTO", "", "A", "B")
    long_number = "D23145890123"
    l1 = "IDUTO" + long_number[:9] + "<" + long_number[9:] + check_digit(long_number) + "<" * 11
    l2 = text.split("\n")[1]
    composite = l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]
    l2 = l2[:29] + check_digit(composite)
    assert parse(l1 + l2 + text.split("\n")[2]).document_number == long_number


@pytest.mark.parametrize("position", [14, 36, 44, 59])
def test_any_wrong_check_digit_is_rejected(position: int) -> None:
    compact = TD1_SPECIMEN.replace("\n", "")
    digit = compact[position]
    wrong = str((int(digit) + 1) % 10)
    with pytest.raises(DataFormatError):
        parse(compact[:position] + wrong + compact[position + 1 :])


def test_dates_pick_the_right_century() -> None:
    assert parse_yymmdd("990315", future=False) == dt.date(1999, 3, 15)
    assert parse_yymmdd("050315", future=False) == dt.date(2005, 3, 15)
    assert parse_yymmdd("390315", future=True) == dt.date(2039, 3, 15)
    assert parse_yymmdd("99<<<<", future=False) is None
    with pytest.raises(DataFormatError):
        parse_yymmdd("991315", future=False)


def test_key_validation() -> None:
    assert mrz_information(MrzKey("l898902c", "690806", "940623")) == "L898902C<369080619406236"
    for bad in (
        MrzKey("", "690806", "940623"),
        MrzKey("L89890;C", "690806", "940623"),
        MrzKey("L898902C", "6908", "940623"),
        MrzKey("L898902C", "690806", "94O623"),
    ):
        with pytest.raises(InvalidRequestError):
            validate_key(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<\n é", max_size=100))
def test_any_text_parses_or_raises_data_format_error(text: str) -> None:
    with contextlib.suppress(DataFormatError):
        parse(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 89), st.sampled_from("0123456789ABCXYZ<"))
def test_mutated_specimen_parses_or_raises_data_format_error(position: int, char: str) -> None:
    compact = TD1_SPECIMEN.replace("\n", "")
    with contextlib.suppress(DataFormatError):
        parse(compact[:position] + char + compact[position + 1 :])
