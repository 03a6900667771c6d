"""Privacy canary: data read from a card never reaches a log record, an exception message or
a repr, on the success path and on the fault paths."""

from __future__ import annotations

import logging

import pytest

from agent.domain.idcard import CardRead, MrzKey, ReadOptions
from agent.drivers.idcard.session import read_document
from agent.errors import AgentError
from agent.simulator.emrtd import CardFaults, EmulatedEmrtd, EmulatedTransport, sample_cccd
from agent.simulator.emrtd.profiles import SAMPLE_DG13, td1
from tests.idcard.icao_support import trust_for

CANARY_NAME = "Canary Zyxwvq Privacy"
CANARY_ID = "079555123987"
CANARY_PLACE = "Khu Canary Qwxz 4242"
CANARIES = (CANARY_NAME, CANARY_ID, CANARY_ID[3:], CANARY_PLACE, "ZYXWVQ")


def _canary_profile() -> object:
    dg13 = dict(SAMPLE_DG13)
    dg13.update({1: CANARY_ID, 2: CANARY_NAME, 9: CANARY_PLACE})
    mrz = td1("ID", "VNM", CANARY_ID[3:], CANARY_ID, "880101", "M", "330101", "VNM", "", "CANARY", "ZYXWVQ")
    return sample_cccd(dg13=dg13, mrz=mrz)


def _assert_clean(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text
        assert canary.lower() not in text.lower()


@pytest.mark.parametrize(
    "faults",
    [
        CardFaults(),
        CardFaults(bad_dg_hash=13),
        CardFaults(unknown_csca=True),
        CardFaults(aa_wrong_key=True),
        CardFaults(truncate_dg=13),
        CardFaults(bad_mac=True),
        CardFaults(wrong_sw={0xB0: 0x6A80}),
    ],
)
async def test_no_card_data_in_logs_errors_or_reprs(
    faults: CardFaults, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    profile = _canary_profile()
    card = EmulatedEmrtd(profile, faults=faults)  # type: ignore[arg-type]
    texts: list[str] = []
    result: CardRead | None = None
    try:
        result = await read_document(
            EmulatedTransport(card), card.issued.mrz_key, ReadOptions(include_raw=True), trust_for(card)
        )
    except AgentError as exc:
        texts += [str(exc), repr(exc), exc.reason]
    if result is not None:
        # the canary really was read (so this test can fail) ...
        assert result.personal.full_name == CANARY_NAME
        assert result.personal.id_number == CANARY_ID
        # ... yet no rendering of the result shows it
        texts += [
            repr(result),
            str(result),
            repr(result.personal),
            repr(result.face),
            str(result.verification),
            repr(card),
            repr(card.issued),
            repr(card.issued.mrz_key),
        ]
    texts.append(caplog.text)
    texts += [r.getMessage() for r in caplog.records]
    _assert_clean("\n".join(texts))


async def test_wrong_key_error_carries_no_key_material(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    card = EmulatedEmrtd(_canary_profile(), faults=CardFaults())  # type: ignore[arg-type]
    key = MrzKey("ZYXWVQ123", "880101", "330101")
    with pytest.raises(AgentError) as err:
        await read_document(EmulatedTransport(card), key, ReadOptions(), None)
    _assert_clean(str(err.value) + repr(err.value) + repr(key) + caplog.text)
