"""The recorded-session card of the transport baseline (``agent.simulator.replay_card``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.errors import DataFormatError
from agent.simulator.replay_card import RecordedCard
from tests.idcard.pcsc_testbed import VpcdCardProcess, wait_for_card

ATR = bytes.fromhex("3B8080018080")
SESSION = [(b"\x00\xb0\x9c\x00\x00", b"\x6a\x82"), (b"\x00\x84\x00\x00\x08", bytes(8) + b"\x90\x00"),
           (b"\x00\xa4\x04\x0c\x01\xa0", b"\x90\x00")]


def test_answers_the_recording_in_order_and_starts_over_on_power_on() -> None:
    card = RecordedCard(ATR, SESSION)
    assert card.power_on() == ATR
    assert [card.transmit(command) for command, _ in SESSION] == [answer for _, answer in SESSION]
    card.power_on()
    assert card.transmit(SESSION[0][0]) == SESSION[0][1]
    assert (card.sessions, card.mismatches) == (2, 0)


def test_a_command_off_the_recording_gets_6f00_and_does_not_advance() -> None:
    card = RecordedCard(ATR, SESSION)
    card.power_on()
    assert card.transmit(SESSION[0][0]) == SESSION[0][1]
    assert card.transmit(b"\x00\xb0\x00\x00\x01") == b"\x6f\x00"
    assert card.transmit(SESSION[2][0]) == b"\x6f\x00"  # still expecting the second command
    assert card.transmit(SESSION[1][0]) == SESSION[1][1]
    assert card.mismatches == 2


def test_the_first_command_out_of_turn_starts_a_new_session() -> None:
    card = RecordedCard(ATR, SESSION)
    card.power_on()
    card.transmit(SESSION[0][0])
    card.transmit(SESSION[1][0])
    assert card.transmit(SESSION[0][0]) == SESSION[0][1]
    assert card.transmit(SESSION[1][0]) == SESSION[1][1]
    assert card.sessions == 2


def test_a_recording_survives_the_file_and_a_bad_file_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    RecordedCard.dump(path, ATR, SESSION)
    card = RecordedCard.from_file(path)
    assert card.power_on() == ATR
    assert card.transmit(SESSION[0][0]) == SESSION[0][1]
    path.write_text('{"atr": "3B", "exchanges": [["zz", "9000"]]}')
    with pytest.raises(DataFormatError):
        RecordedCard.from_file(path)
    with pytest.raises(DataFormatError):
        RecordedCard(ATR, [])


def test_served_through_vpcd_and_pcscd(vpcd_card: Callable[..., VpcdCardProcess], tmp_path: Path) -> None:
    from agent.drivers.idcard.pcsc import PcscCardConnection

    path = tmp_path / "session.json"
    RecordedCard.dump(path, ATR, SESSION)
    card = vpcd_card("--replay", str(path))
    wait_for_card(card.reader)
    connection = PcscCardConnection(card.reader).open()
    try:
        assert connection.atr == ATR
        answers = [connection.transmit(command) for command, _ in SESSION]
        assert connection.transmit(b"\x00\xb0\x00\x00\x01") == b"\x6f\x00"
    finally:
        connection.close()
    assert answers == [answer for _, answer in SESSION]
    stats = card.stats()
    assert (stats["apdus"], stats["mismatches"]) == (4, 1)
