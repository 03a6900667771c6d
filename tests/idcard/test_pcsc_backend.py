"""The ``pcsc`` backend against a real pcscd + vpcd + card process: discovery, card events,
the transport, pulled cards, and pcscd restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from agent.domain.device import DeviceState
from agent.domain.events import EventKind
from agent.drivers.idcard.pcsc import PcscCardConnection, PcscTransport
from agent.drivers.idcard.reader import PcscBackend, PcscIdCardReader
from agent.drivers.registry import load_backend_class
from agent.errors import CardRemovedError, DeviceStateError, DeviceUnavailableError
from tests.idcard.pcsc_testbed import FRIENDLY_NAME, PcscdPeer, VpcdCardProcess, wait_for_card
from tests.support.context import RecordingContext


def slot0(backend: PcscBackend) -> PcscIdCardReader:
    return backend.devices()[f"{FRIENDLY_NAME} 00 00"]


def test_registry_row_loads_the_backend() -> None:
    assert load_backend_class("pcsc") is PcscBackend


async def test_readers_are_discovered_with_stable_keys(pcsc_backend: PcscBackend,
                                                       recording_context: RecordingContext) -> None:
    assert set(recording_context.devices) == {f"{FRIENDLY_NAME}/0", f"{FRIENDLY_NAME}/1"}
    device = recording_context.devices[f"{FRIENDLY_NAME}/0"]
    assert device.descriptor.backend == "pcsc"
    assert device.descriptor.name == f"{FRIENDLY_NAME} 00 00"
    assert device.health().state is DeviceState.READY
    assert isinstance(device, PcscIdCardReader)
    assert not device.card_present()


async def test_card_insert_and_remove_events(pcsc_backend: PcscBackend, recording_context: RecordingContext,
                                             vpcd_card: Callable[..., VpcdCardProcess]) -> None:
    reader = slot0(pcsc_backend)
    card = vpcd_card("--card", "tests.idcard.tiny_card:TinyCard", inserted=False)
    card.insert()
    await recording_context.wait_for(reader.card_present)
    card.remove()
    await recording_context.wait_for(lambda: not reader.card_present())
    card.insert()
    await recording_context.wait_for(reader.card_present)
    mine = [event for event in recording_context.events if event.device is reader]
    assert [event.kind for event in mine] == [EventKind.CARD_INSERTED, EventKind.CARD_REMOVED,
                                              EventKind.CARD_INSERTED]
    assert mine[0].attributes == {"reader": f"{FRIENDLY_NAME} 00 00"}
    assert reader.health().counters["cards_inserted"] == 2
    # Each change is also reported as a health change, so the core's listed state follows it.
    assert sum(1 for device in recording_context.health_changes if device is reader) >= 3


async def test_card_already_present_at_start_is_not_an_event(
        tiny_card: VpcdCardProcess, running_pcscd: PcscdPeer, recording_context: RecordingContext) -> None:
    backend = PcscBackend(recording_context, {})
    await backend.start()
    try:
        await recording_context.wait_for(lambda: f"{FRIENDLY_NAME} 00 00" in backend.devices())
        reader = slot0(backend)
        await recording_context.wait_for(reader.card_present)
        assert recording_context.events == []
        assert reader in recording_context.health_changes  # listed, though not announced
    finally:
        await backend.stop()


async def test_read_without_a_card_is_no_card(pcsc_backend: PcscBackend) -> None:
    from agent.domain.idcard import MrzKey, ReadOptions

    with pytest.raises(DeviceStateError) as caught:
        await slot0(pcsc_backend).read_card(MrzKey("123456789", "900101", "300101"), ReadOptions())
    assert caught.value.reason == "NO_CARD"


async def open_transport(ctx: RecordingContext, reader: str, *, extended: bool = True
                         ) -> tuple[PcscCardConnection, PcscTransport]:
    connection = PcscCardConnection(reader)
    await ctx.run_blocking(connection.open)
    return connection, PcscTransport(connection, ctx.run_blocking, extended_length=extended)


async def test_transport_short_and_extended_reads(tiny_card: VpcdCardProcess, running_pcscd: PcscdPeer,
                                                  recording_context: RecordingContext) -> None:
    connection, transport = await open_transport(recording_context, running_pcscd.reader_names[0])
    try:
        short = await transport.transmit(bytes.fromhex("00B0010000"))
        assert short == bytes((0x100 + i) & 0xFF for i in range(256)) + b"\x90\x00"
        extended = await transport.transmit(bytes.fromhex("00B00000003000"))
        assert len(extended) == 0x3000 + 2
        assert extended[-2:] == b"\x90\x00"
        assert extended[:4] == bytes([0, 1, 2, 3])
        assert transport.extended_length
        assert connection.atr[:2] == bytes.fromhex("3B8A")
        # vpcd on Debian offers no part-10 properties: the ATR decides
        assert await recording_context.run_blocking(connection.reader_max_apdu_data) in (None, 65536)
    finally:
        await recording_context.run_blocking(connection.close)


async def test_card_pulled_mid_read_then_next_read_works(
        tiny_card: VpcdCardProcess, running_pcscd: PcscdPeer, recording_context: RecordingContext) -> None:
    connection, transport = await open_transport(recording_context, running_pcscd.reader_names[0])
    try:
        tiny_card.drop_after(3)
        for _ in range(3):
            await transport.transmit(bytes.fromhex("00B00000DF"))
        with pytest.raises(CardRemovedError) as caught:
            await transport.transmit(bytes.fromhex("00B00000DF"))
        assert caught.value.retryable
        tiny_card.expect("dropped")
    finally:
        await recording_context.run_blocking(connection.close)
    await recording_context.run_blocking(lambda: wait_for_card(tiny_card.reader, present=False))
    tiny_card.insert()
    await recording_context.run_blocking(lambda: wait_for_card(tiny_card.reader))
    connection, transport = await open_transport(recording_context, running_pcscd.reader_names[0])
    try:
        answer = await transport.transmit(bytes.fromhex("00B0000004"))
        assert answer == bytes([0, 1, 2, 3, 0x90, 0x00])
    finally:
        await recording_context.run_blocking(connection.close)


async def test_pcscd_restart_reader_comes_back(pcsc_backend: PcscBackend, recording_context: RecordingContext,
                                               running_pcscd: PcscdPeer, tiny_card: VpcdCardProcess) -> None:
    reader = slot0(pcsc_backend)
    await recording_context.wait_for(reader.card_present)
    running_pcscd.stop()
    await recording_context.wait_for(lambda: reader.health().state is DeviceState.ERROR)
    health = reader.health()
    assert [condition.code for condition in health.conditions] == ["pcscd-unavailable"]
    from agent.domain.idcard import MrzKey, ReadOptions

    with pytest.raises(DeviceUnavailableError) as caught:
        await reader.read_card(MrzKey("123456789", "900101", "300101"), ReadOptions())
    assert caught.value.reason == "PCSC_UNAVAILABLE"

    started = await recording_context.run_blocking(running_pcscd.start)
    await recording_context.wait_for(lambda: reader.health().state is DeviceState.READY)
    back_after = time.perf_counter() - started
    print(f"reader READY again {back_after * 1000:.0f} ms after pcscd was started")
    # Same device object, same stable key: the reader was never reported lost.
    assert recording_context.lost == []
    assert slot0(pcsc_backend) is reader
    await recording_context.wait_for(reader.card_present)


async def test_stop_is_prompt_and_idempotent(running_pcscd: PcscdPeer,
                                             recording_context: RecordingContext) -> None:
    backend = PcscBackend(recording_context, {})
    await backend.start()
    await recording_context.wait_for(lambda: len(backend.devices()) == 2)
    await backend.stop()
    await backend.stop()
    assert backend.devices() == {}


async def test_backend_without_pcscd_keeps_trying(recording_context: RecordingContext,
                                                  running_pcscd: PcscdPeer) -> None:
    running_pcscd.stop()
    backend = PcscBackend(recording_context, {})
    await backend.start()  # returns promptly even with pcscd absent
    try:
        await asyncio.sleep(0.3)
        assert backend.devices() == {}
        assert not backend.service_available
        await recording_context.run_blocking(running_pcscd.start)
        await recording_context.wait_for(lambda: len(backend.devices()) == 2)
        assert backend.service_available
    finally:
        await backend.stop()


def test_bad_options_are_config_errors(recording_context: RecordingContext) -> None:
    from agent.errors import ConfigError

    with pytest.raises(ConfigError):
        PcscBackend(recording_context, {"extended_length": "sometimes"})


async def test_missing_csca_dir_is_a_config_error(recording_context: RecordingContext, tmp_path: Any) -> None:
    from agent.errors import ConfigError

    backend = PcscBackend(recording_context, {"csca_dir": str(tmp_path / "absent")})
    with pytest.raises(ConfigError):
        await backend.start()
