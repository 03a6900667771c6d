"""The ``sim-idcard`` backend: the emulator in process through the real ICAO 9303 code."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.domain.device import DeviceState
from agent.domain.events import EventKind
from agent.domain.idcard import CanKey, MrzKey, ReadOptions, Verdict
from agent.drivers.idcard import mrz
from agent.drivers.registry import load_backend_class
from agent.errors import AccessDeniedError, CardRemovedError, ConfigError, DeviceStateError
from agent.simulator.emrtd import EmulatedEmrtd, sample_cccd
from agent.simulator.emrtd.profiles import SAMPLE_DG13
from agent.simulator.idcard import (
    SIMULATED_ID,
    SIMULATED_KEY,
    SimulatedIdCardBackend,
    SimulatedIdCardReader,
    simulated_cccd,
)
from tests.support.context import RecordingContext


@pytest.fixture
async def sim(recording_context: RecordingContext) -> AsyncIterator[SimulatedIdCardReader]:
    backend = SimulatedIdCardBackend(recording_context, {})
    await backend.start()
    reader = recording_context.devices["sim-0"]
    assert isinstance(reader, SimulatedIdCardReader)
    await reader.open()  # what the core does after device_found
    try:
        yield reader
    finally:
        await backend.stop()


def test_registry_row_is_the_emulator_backend() -> None:
    assert load_backend_class("sim-idcard") is SimulatedIdCardBackend


def test_simulated_card_mrz_matches_its_key() -> None:
    assert mrz.parse(simulated_cccd().mrz).key() == SIMULATED_KEY


async def test_read_through_the_real_icao_code(sim: SimulatedIdCardReader,
                                               recording_context: RecordingContext) -> None:
    assert sim.card_present()
    assert [event.kind for event in recording_context.events] == [EventKind.CARD_INSERTED]
    result = await sim.read_card(SIMULATED_KEY, ReadOptions())
    assert result.access_protocol == "PACE"
    assert result.personal.id_number == SIMULATED_ID
    assert result.personal.document_number == SIMULATED_KEY.document_number
    assert result.verification.passive is Verdict.VALID
    assert result.verification.active is Verdict.VALID
    assert result.face is not None
    assert result.apdu_count > 10
    assert sim.health().counters["reads"] == 1
    assert sim.health().state is DeviceState.READY


async def test_can_key(sim: SimulatedIdCardReader) -> None:
    result = await sim.read_card(CanKey("123456"), ReadOptions(include_face=False))
    assert result.access_protocol == "PACE"
    assert result.face is None


async def test_wrong_key_is_access_denied(sim: SimulatedIdCardReader) -> None:
    assert sim.card is not None
    with pytest.raises(AccessDeniedError):
        await sim.read_card(MrzKey("203004567", "900115", "310115"), ReadOptions())
    assert sim.card.wrong_key_attempts == 1  # one attempt, no retry
    assert sim.health().last_error.startswith("ACCESS_DENIED")


async def test_insert_and_remove(sim: SimulatedIdCardReader, recording_context: RecordingContext) -> None:
    reports = len(recording_context.health_changes)
    sim.remove_card()
    assert not sim.card_present()
    assert len(recording_context.health_changes) == reports + 1  # the listed card presence follows
    with pytest.raises(DeviceStateError) as caught:
        await sim.read_card(SIMULATED_KEY, ReadOptions())
    assert caught.value.reason == "NO_CARD"
    other = EmulatedEmrtd(sample_cccd(pace=()))
    sim.insert_card(other)
    key = mrz.parse(sample_cccd().mrz).key()
    result = await sim.read_card(key, ReadOptions(include_face=False))
    assert result.access_protocol == "BAC"
    assert [event.kind for event in recording_context.events] == [
        EventKind.CARD_INSERTED, EventKind.CARD_REMOVED, EventKind.CARD_INSERTED]


class _StallingCard(EmulatedEmrtd):
    """Stops inside its ``stall_at``-th answer until the test lets it go on."""

    def __init__(self, stall_at: int) -> None:
        super().__init__(simulated_cccd())
        self.stall_at = stall_at
        self.answered = 0
        self.reached = threading.Event()
        self.go_on = threading.Event()

    def transmit(self, apdu: bytes) -> bytes:
        self.answered += 1
        if self.answered == self.stall_at:
            self.reached.set()
            self.go_on.wait(10)
        return super().transmit(apdu)


async def test_card_pulled_mid_read(sim: SimulatedIdCardReader) -> None:
    card = _StallingCard(stall_at=15)
    sim.insert_card(card)
    read = asyncio.create_task(sim.read_card(SIMULATED_KEY, ReadOptions()))
    await asyncio.to_thread(card.reached.wait, 10)
    sim.remove_card()
    card.go_on.set()
    with pytest.raises(CardRemovedError):
        await read
    assert sim.health().last_error.startswith("CARD_REMOVED")
    sim.insert_card()
    result = await sim.read_card(SIMULATED_KEY, ReadOptions(include_face=False))
    assert result.personal.id_number == SIMULATED_ID


async def test_empty_profile_and_bad_options(recording_context: RecordingContext, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        SimulatedIdCardBackend(recording_context, {"profile": "floppy"})
    backend = SimulatedIdCardBackend(recording_context, {"profile": "empty"})
    await backend.start()
    try:
        reader = recording_context.devices["sim-0"]
        await reader.open()
        assert isinstance(reader, SimulatedIdCardReader)
        assert not reader.card_present()
    finally:
        await backend.stop()
    with pytest.raises(ConfigError):
        await SimulatedIdCardBackend(recording_context, {"csca_dir": str(tmp_path / "nope")}).start()


async def test_sim_privacy_canary(sim: SimulatedIdCardReader, recording_context: RecordingContext,
                                  caplog: pytest.LogCaptureFixture) -> None:
    canary = "CANARY-sim-4b1e-Quokka"
    dg13 = dict(SAMPLE_DG13)
    dg13[2] = canary
    caplog.set_level(logging.DEBUG)
    sim.insert_card(EmulatedEmrtd(sample_cccd(dg13=dg13)))
    key = mrz.parse(sample_cccd().mrz).key()
    result = await sim.read_card(key, ReadOptions())
    assert result.personal.full_name == canary
    with pytest.raises(AccessDeniedError) as caught:
        await sim.read_card(MrzKey(key.document_number, key.date_of_birth, "400101"), ReadOptions())
    for text in (caplog.text, repr(result), str(caught.value), str(sim.health()),
                 str([event.attributes for event in recording_context.events])):
        assert canary not in text
