"""Whole card reads through pcscd + vpcd + the eMRTD emulator, via the ``pcsc`` backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.domain.device import DeviceState
from agent.domain.idcard import CanKey, MrzKey, ReadOptions, Verdict
from agent.drivers.idcard import mrz
from agent.drivers.idcard.reader import PcscBackend, PcscIdCardReader
from agent.errors import AccessDeniedError, CardRemovedError
from agent.simulator.emrtd import sample_cccd, sample_passport
from agent.simulator.emrtd.profiles import SAMPLE_ID
from tests.idcard.pcsc_testbed import FRIENDLY_NAME, PcscdPeer, VpcdCardProcess, wait_for_card
from tests.support.context import RecordingContext

CCCD_KEY = mrz.parse(sample_cccd().mrz).key()
PASSPORT_KEY = mrz.parse(sample_passport().mrz).key()
WRONG_KEY = MrzKey(CCCD_KEY.document_number, CCCD_KEY.date_of_birth, "310101")

EmrtdFactory = Callable[..., VpcdCardProcess]


@pytest.fixture
def csca_dir(tmp_path: Path) -> Path:
    path = tmp_path / "csca"
    path.mkdir()
    return path


@pytest.fixture
def emrtd_card(vpcd_card: Callable[..., VpcdCardProcess], csca_dir: Path) -> EmrtdFactory:
    """Start an emulated eMRTD on slot 0 (CSCA exported to ``csca_dir``), seen by pcscd."""

    def start(*extra: str) -> VpcdCardProcess:
        card = vpcd_card("--csca-out", str(csca_dir / "csca.der"), *extra)
        wait_for_card(card.reader)
        return card

    return start


async def make_backend(ctx: RecordingContext, options: dict[str, Any]) -> PcscBackend:
    backend = PcscBackend(ctx, options)
    await backend.start()
    await ctx.wait_for(lambda: f"{FRIENDLY_NAME} 00 00" in backend.devices())
    return backend


@pytest.fixture
async def backend(running_pcscd: PcscdPeer, recording_context: RecordingContext,
                  csca_dir: Path) -> AsyncIterator[PcscBackend]:
    started = await make_backend(recording_context, {"csca_dir": str(csca_dir)})
    try:
        yield started
    finally:
        await started.stop()


async def reader_with_card(backend: PcscBackend, ctx: RecordingContext) -> PcscIdCardReader:
    reader = backend.devices()[f"{FRIENDLY_NAME} 00 00"]
    await ctx.wait_for(reader.card_present)
    return reader


async def test_full_cccd_read_with_pace(emrtd_card: EmrtdFactory, backend: PcscBackend,
                                        recording_context: RecordingContext) -> None:
    emrtd_card()
    reader = await reader_with_card(backend, recording_context)
    result = await reader.read_card(CCCD_KEY, ReadOptions())
    assert result.access_protocol == "PACE"
    assert result.personal.id_number == SAMPLE_ID
    assert result.personal.document_number == SAMPLE_ID[3:]
    assert result.personal.full_name == "Trần Thị Thử Nghiệm"
    assert result.personal.place_of_residence.startswith("Số 1 Đường Kiểm Thử")
    assert result.face is not None
    assert result.face.jpeg[:2] == b"\xff\xd8"
    assert {1, 2, 13, 15} <= set(result.data_groups_read)
    assert result.verification.passive is Verdict.VALID
    assert result.verification.active is Verdict.VALID
    health = reader.health()
    assert health.counters["reads"] == 1
    assert health.state is DeviceState.READY


async def test_full_cccd_read_with_bac(emrtd_card: EmrtdFactory, backend: PcscBackend,
                                       recording_context: RecordingContext) -> None:
    emrtd_card("--no-pace")
    reader = await reader_with_card(backend, recording_context)
    result = await reader.read_card(CCCD_KEY, ReadOptions())
    assert result.access_protocol == "BAC"
    assert result.personal.id_number == SAMPLE_ID
    assert result.verification.passive is Verdict.VALID
    assert result.verification.active is Verdict.VALID


async def test_pace_with_can_and_3des(emrtd_card: EmrtdFactory, backend: PcscBackend,
                                      recording_context: RecordingContext) -> None:
    emrtd_card("--pace", "3DES:13")
    reader = await reader_with_card(backend, recording_context)
    result = await reader.read_card(CanKey(sample_cccd().can), ReadOptions(include_face=False))
    assert result.access_protocol == "PACE"
    assert result.face is None
    assert result.personal.id_number == SAMPLE_ID


async def test_passport_with_chip_authentication(emrtd_card: EmrtdFactory, backend: PcscBackend,
                                                 recording_context: RecordingContext) -> None:
    emrtd_card("--profile", "passport")
    reader = await reader_with_card(backend, recording_context)
    result = await reader.read_card(PASSPORT_KEY, ReadOptions())
    assert result.access_protocol == "BAC"
    assert result.verification.chip is Verdict.VALID
    assert result.verification.passive is Verdict.VALID


async def test_unknown_csca_is_a_verdict(emrtd_card: EmrtdFactory, running_pcscd: PcscdPeer,
                                         recording_context: RecordingContext) -> None:
    emrtd_card()
    backend = await make_backend(recording_context, {})  # no csca_dir: nobody is trusted
    try:
        reader = await reader_with_card(backend, recording_context)
        result = await reader.read_card(CCCD_KEY, ReadOptions(include_face=False))
        assert result.verification.passive is Verdict.UNKNOWN_ISSUER
    finally:
        await backend.stop()


@pytest.mark.parametrize("protocol_args", [("--no-pace",), ()], ids=["bac", "pace"])
async def test_wrong_mrz_is_access_denied_without_retry(
        protocol_args: tuple[str, ...], emrtd_card: EmrtdFactory, backend: PcscBackend,
        recording_context: RecordingContext) -> None:
    card = emrtd_card(*protocol_args)
    reader = await reader_with_card(backend, recording_context)
    with pytest.raises(AccessDeniedError):
        await reader.read_card(WRONG_KEY, ReadOptions())
    stats = card.stats()
    if protocol_args:  # BAC: one EXTERNAL AUTHENTICATE, never a second
        assert stats.get("ins_82") == 1
    else:  # PACE: the four GENERAL AUTHENTICATE steps of one attempt, no more
        assert stats.get("ins_86") == 4
    health = reader.health()
    assert health.counters["read_failures"] == 1
    assert health.last_error.startswith("ACCESS_DENIED")
    # The card still opens with the right key afterwards.
    result = await reader.read_card(CCCD_KEY, ReadOptions(include_face=False))
    assert result.personal.id_number == SAMPLE_ID


async def test_card_pulled_mid_read_then_next_read_works(
        emrtd_card: EmrtdFactory, backend: PcscBackend, recording_context: RecordingContext) -> None:
    card = emrtd_card()
    reader = await reader_with_card(backend, recording_context)
    card.drop_after(12)  # well into the secure-messaging part of the read
    with pytest.raises(CardRemovedError) as caught:
        await reader.read_card(CCCD_KEY, ReadOptions())
    assert caught.value.retryable
    card.expect("dropped")
    await recording_context.wait_for(lambda: not reader.card_present())
    assert reader.health().last_error.startswith("CARD_REMOVED")
    card.insert()
    await recording_context.wait_for(reader.card_present)
    result = await reader.read_card(CCCD_KEY, ReadOptions())
    assert result.personal.id_number == SAMPLE_ID
    assert reader.health().counters == {"reads": 1, "read_failures": 1, "cards_inserted": 2}


async def test_extended_length_versus_short_reads(emrtd_card: EmrtdFactory, running_pcscd: PcscdPeer,
                                                  recording_context: RecordingContext, csca_dir: Path) -> None:
    emrtd_card()
    counts: dict[str, int] = {}
    faces: dict[str, bytes] = {}
    for policy in ("auto", "never"):
        backend = await make_backend(recording_context, {"csca_dir": str(csca_dir), "extended_length": policy})
        try:
            reader = await reader_with_card(backend, recording_context)
            result = await reader.read_card(CCCD_KEY, ReadOptions())
            assert result.verification.passive is Verdict.VALID
            assert result.face is not None
            counts[policy], faces[policy] = result.apdu_count, result.face.jpeg
            assert ("extended_length" in reader.capabilities().features) is (policy == "auto")
        finally:
            await backend.stop()
    assert faces["auto"] == faces["never"]
    # DG2 alone is ~20 KB: ~90 short READ BINARYs against a handful of extended ones.
    assert counts["never"] - counts["auto"] > 60


async def test_card_refusing_extended_length_falls_back(emrtd_card: EmrtdFactory, backend: PcscBackend,
                                                        recording_context: RecordingContext) -> None:
    emrtd_card("--no-extended-length")
    reader = await reader_with_card(backend, recording_context)
    result = await reader.read_card(CCCD_KEY, ReadOptions())
    assert result.face is not None
    assert result.verification.passive is Verdict.VALID


async def test_privacy_canary(emrtd_card: EmrtdFactory, backend: PcscBackend, running_pcscd: PcscdPeer,
                              recording_context: RecordingContext, caplog: pytest.LogCaptureFixture) -> None:
    canary = "CANARY-7f3e9c1d-Zebra"
    card = emrtd_card("--canary", canary)
    caplog.set_level(logging.DEBUG)
    reader = await reader_with_card(backend, recording_context)
    result = await reader.read_card(CCCD_KEY, ReadOptions())
    assert canary in result.personal.place_of_residence  # the canary really was on the card
    card.drop_after(10)
    with pytest.raises(CardRemovedError) as caught:
        await reader.read_card(CCCD_KEY, ReadOptions())
    stats_line = str(card.stats())
    health = reader.health()
    seen = [caplog.text, str(caught.value), repr(caught.value), repr(result), stats_line, str(health),
            str(reader.capabilities()), running_pcscd.log_path.read_text(errors="replace")]
    seen += [str(event.attributes) for event in recording_context.events]
    for text in seen:
        assert canary not in text
        assert SAMPLE_ID not in text


async def test_cancelled_read_stops_and_the_next_read_works(
        emrtd_card: EmrtdFactory, backend: PcscBackend, recording_context: RecordingContext) -> None:
    card = emrtd_card("--delay-ms", "40")
    reader = await reader_with_card(backend, recording_context)
    read = asyncio.create_task(reader.read_card(CCCD_KEY, ReadOptions()))
    while card.stats().get("apdus", 0) < 3:
        await asyncio.sleep(0.005)
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    sent = card.stats()["apdus"]
    assert sent < 12  # stopped at the next command boundary, not after the whole read
    assert reader.health().state is DeviceState.READY
    result = await reader.read_card(CCCD_KEY, ReadOptions(include_face=False))
    assert result.personal.id_number == SAMPLE_ID
    assert card.stats().get("reset", 0) >= 1  # the cancelled session was reset away


async def test_a_read_after_pcscd_restarted_connects_afresh(emrtd_card: EmrtdFactory, backend: PcscBackend,
                                                            running_pcscd: PcscdPeer,
                                                            recording_context: RecordingContext) -> None:
    """A reader keeps its PC/SC context between reads; when pcscd restarts under it, the next
    read drops the dead context and establishes a new one (a dead one would fail every read
    with PCSC_UNAVAILABLE)."""
    from agent.errors import AgentError

    emrtd_card("--no-pace")
    reader = await reader_with_card(backend, recording_context)
    assert (await reader.read_card(CCCD_KEY, ReadOptions())).verification.passive is Verdict.VALID
    kept = reader._pcsc_context._handle
    assert kept is not None
    running_pcscd.stop()
    await recording_context.wait_for(lambda: reader.health().state is DeviceState.ERROR)
    await recording_context.run_blocking(running_pcscd.start)
    await recording_context.wait_for(lambda: reader.health().state is DeviceState.READY)
    # vpcd's card reconnects to the new pcscd and may flap present/absent for a moment
    # ("no card" then); any other error, above all PCSC_UNAVAILABLE, fails the test.
    for _ in range(50):
        await recording_context.wait_for(reader.card_present)
        try:
            result = await reader.read_card(CCCD_KEY, ReadOptions())
        except AgentError as error:
            if error.reason not in ("NO_CARD", "CARD_REMOVED", "CARD_UNPOWERED", "CARD_RESET"):
                raise
            await asyncio.sleep(0.1)
            continue
        break
    else:
        raise AssertionError("no read succeeded after pcscd came back")
    assert result.personal.id_number == SAMPLE_ID
    assert reader._pcsc_context._handle is not None
