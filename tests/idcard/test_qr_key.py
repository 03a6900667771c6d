"""The chip access key derived from a CCCD's QR code: the expiry date Article 21 of the
identity-card laws fixes, the candidates, and the reads that try them (in process)."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.domain.idcard import MrzKey, QrKey, ReadOptions
from agent.drivers.idcard import mrz
from agent.drivers.idcard.qr_key import (
    MAX_CANDIDATES,
    card_expiry,
    expiry_candidates,
    key_from_qr_text,
    renewal_ages,
)
from agent.drivers.idcard.session import read_document
from agent.errors import AccessDeniedError, InvalidRequestError
from agent.simulator.emrtd import CardFaults, EmulatedEmrtd, EmulatedTransport, card_qr_text, sample_cccd
from agent.simulator.emrtd.profiles import SAMPLE_ID
from tests.idcard.icao_support import trust_for

D = dt.date


# -- the law's worked cases, one per age band ----------------------------------------------------

@pytest.mark.parametrize(("birth", "issued", "expiry"), [
    # 2014 law (cards issued until 30 June 2024): renewal at 25, 40, 60.
    (D(1999, 3, 15), D(2019, 1, 10), D(2024, 3, 15)),    # issued at 19: expires at 25
    (D(1990, 7, 1), D(2021, 4, 20), D(2030, 7, 1)),      # issued at 30: expires at 40
    (D(1975, 11, 30), D(2021, 2, 1), D(2035, 11, 30)),   # issued at 45: expires at 60
    (D(1999, 3, 15), D(2024, 3, 15), D(2039, 3, 15)),    # issued on the 25th birthday: runs to 40
    (D(1980, 5, 5), D(2020, 5, 5), D(2040, 5, 5)),       # issued on the 40th birthday: runs to 60
])
def test_a_card_expires_at_the_next_renewal_age(birth: dt.date, issued: dt.date, expiry: dt.date) -> None:
    assert card_expiry(birth, issued) == expiry


@pytest.mark.parametrize(("birth", "issued", "expiry"), [
    # Art. 21(2): issued within the 2 years before a renewal age, valid to the next one.
    (D(1999, 3, 15), D(2024, 1, 10), D(2039, 3, 15)),    # at 24 (the emulator's card)
    (D(1999, 3, 15), D(2022, 3, 15), D(2039, 3, 15)),    # on the 23rd birthday: the window opens
    (D(1999, 3, 15), D(2022, 3, 14), D(2024, 3, 15)),    # the day before: still expires at 25
    (D(1983, 6, 1), D(2021, 8, 1), D(2043, 6, 1)),       # at 38: runs to 60
])
def test_a_card_issued_within_two_years_before_an_age_runs_to_the_next(
        birth: dt.date, issued: dt.date, expiry: dt.date) -> None:
    assert card_expiry(birth, issued) == expiry


@pytest.mark.parametrize(("birth", "issued"), [
    (D(1963, 5, 20), D(2021, 9, 1)),    # at 58: within 2 years before 60, no next age
    (D(1963, 5, 20), D(2021, 5, 20)),   # on the 58th birthday
    (D(1950, 1, 1), D(2021, 6, 30)),    # at 71
    (D(1940, 2, 29), D(2025, 1, 2)),    # at 84, 2023 law
])
def test_a_card_issued_from_58_never_expires(birth: dt.date, issued: dt.date) -> None:
    assert card_expiry(birth, issued) is None
    assert expiry_candidates(birth, issued) == ("991231", "<<<<<<")


def test_a_card_issued_the_day_before_58_expires_at_60() -> None:
    assert card_expiry(D(1963, 5, 20), D(2021, 5, 19)) == D(2023, 5, 20)


def test_the_2023_law_adds_age_14_from_1_july_2024() -> None:
    assert renewal_ages(D(2024, 6, 30)) == (25, 40, 60)
    assert renewal_ages(D(2024, 7, 1)) == (14, 25, 40, 60)
    assert card_expiry(D(2015, 8, 10), D(2024, 9, 1)) == D(2029, 8, 10)    # at 9: expires at 14
    assert card_expiry(D(2012, 8, 10), D(2024, 9, 1)) == D(2037, 8, 10)    # at 12: runs to 25
    assert card_expiry(D(2000, 8, 10), D(2024, 9, 1)) == D(2040, 8, 10)    # at 24: runs to 40
    assert card_expiry(D(1990, 8, 10), D(2024, 9, 1)) == D(2030, 8, 10)    # at 34: expires at 40


def test_a_leap_day_birthday_tries_28_february_then_1_march() -> None:
    assert card_expiry(D(2000, 2, 29), D(2021, 5, 1)) == D(2025, 2, 28)
    assert expiry_candidates(D(2000, 2, 29), D(2021, 5, 1)) == ("250228", "250301")
    # A renewal age that falls in a leap year has the day itself: one candidate.
    assert expiry_candidates(D(1984, 2, 29), D(2021, 5, 1)) == ("240229",)


def test_an_issue_date_before_the_birth_date_is_a_bad_request() -> None:
    with pytest.raises(InvalidRequestError):
        key_from_qr_text("001199012345||A|15032020|Nữ||10012019")


# -- from the QR text to the key -----------------------------------------------------------------

def test_the_emulator_cards_qr_gives_its_mrz_key() -> None:
    key = key_from_qr_text(card_qr_text(sample_cccd()))
    assert key.candidates == (mrz.parse(sample_cccd().mrz).key(),)
    assert key.candidates[0].document_number == SAMPLE_ID[-9:]


def test_the_simulated_cards_qr_gives_its_key() -> None:
    from agent.simulator.idcard import SIMULATED_KEY, simulated_card_qr

    assert key_from_qr_text(simulated_card_qr()).candidates == (SIMULATED_KEY,)


def test_the_no_expiry_filler_has_check_digit_0() -> None:
    key = MrzKey("063012345", "630520", "<<<<<<")
    assert mrz.mrz_information(key).endswith("<<<<<<0")


@pytest.mark.parametrize("text", [
    "not a qr code",
    "001199012345|012345678|Trần Thị Thử Nghiệm|15031999|Nữ|Số 1|",     # no issue date
    "001199012345|012345678|Trần Thị Thử Nghiệm||Nữ|Số 1|10012024",     # no birth date
    "00119901234X|012345678|Trần Thị Thử Nghiệm|15031999|Nữ|Số 1|10012024",
])
def test_a_qr_that_gives_no_key_is_a_bad_request_that_names_no_data(text: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        key_from_qr_text(text)
    assert "MRZ" in err.value.message or "CCCD" in err.value.message
    for part in ("Trần", "Số 1", "0011990", "15031999"):
        assert part not in err.value.message
    assert "199012345" not in repr(key_from_qr_text(card_qr_text(sample_cccd())))


# -- reads with the derived key (emulator in process) --------------------------------------------

async def test_the_derived_key_opens_the_card() -> None:
    card = EmulatedEmrtd(sample_cccd())
    result = await read_document(EmulatedTransport(card), key_from_qr_text(card_qr_text(card.profile)),
                                 ReadOptions(), trust_for(card))
    assert result.personal.id_number == SAMPLE_ID
    assert result.access_protocol == "PACE"
    assert card.wrong_key_attempts == 0


@pytest.mark.parametrize("pace", [True, False])
async def test_a_refused_candidate_moves_on_to_the_next(pace: bool) -> None:
    card = EmulatedEmrtd(sample_cccd() if pace else sample_cccd(pace=()))
    right = card.issued.mrz_key
    key = QrKey((MrzKey(right.document_number, right.date_of_birth, "991231"), right))
    result = await read_document(EmulatedTransport(card), key, ReadOptions(), trust_for(card))
    assert result.personal.id_number == SAMPLE_ID
    assert result.access_protocol == ("PACE" if pace else "BAC")
    assert card.wrong_key_attempts == 1


async def test_every_candidate_refused_is_access_denied_with_the_hint() -> None:
    card = EmulatedEmrtd(sample_cccd())
    number, birth = SAMPLE_ID[-9:], "990315"
    key = QrKey(tuple(MrzKey(number, birth, expiry) for expiry in ("991231", "<<<<<<", "290315")))
    with pytest.raises(AccessDeniedError) as err:
        await read_document(EmulatedTransport(card), key, ReadOptions(), None)
    assert err.value.reason == "ACCESS_DENIED"
    assert "MRZ" in err.value.message
    assert "CAN" in err.value.message
    assert card.wrong_key_attempts == MAX_CANDIDATES == 2  # the third is never tried


async def test_a_blocked_card_stops_the_candidates_at_once() -> None:
    card = EmulatedEmrtd(sample_cccd(), faults=CardFaults(max_wrong_key_attempts=1))
    right = card.issued.mrz_key
    key = QrKey((MrzKey(right.document_number, right.date_of_birth, "991231"), right))
    with pytest.raises(AccessDeniedError) as err:
        await read_document(EmulatedTransport(card), key, ReadOptions(), None)
    assert err.value.reason == "CARD_BLOCKED"
    assert card.wrong_key_attempts == 1
