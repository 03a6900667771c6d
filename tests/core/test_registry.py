from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.core.context import CoreDriverContext, SharedZeroconf
from agent.core.events import EventBus
from agent.core.ids import KnownDeviceStore, device_id_for
from agent.core.registry import DeviceRegistry
from agent.domain.device import DeviceFamily, DeviceState
from agent.domain.events import Event, EventKind
from agent.errors import DeviceUnavailableError, InvalidRequestError, NotFoundError
from tests.core.fakes import ProbeDevice


class Harness:
    def __init__(self, tmp: Path, debounce: float = 0.2) -> None:
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.add_listener(self.events.append)
        self.registry = DeviceRegistry(self.bus, KnownDeviceStore(tmp / "known.json"), debounce)
        self.ctx = CoreDriverContext("probe", self.registry, self.bus, ThreadPoolExecutor(1),
                                     SharedZeroconf(["127.0.0.1"]), tmp, False)

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0.01)


async def test_found_device_gets_stable_id_and_becomes_ready(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    dev = ProbeDevice("SN1", h.ctx)
    h.ctx.device_found(dev)
    await h.settle()
    dev_id = device_id_for(DeviceFamily.BARCODE, "probe", "SN1")
    assert h.registry.info(dev_id).state is DeviceState.READY
    assert h.kinds()[:2] == [EventKind.DEVICE_ADDED, EventKind.DEVICE_STATE_CHANGED]
    assert dev.opened == 1
    assert "SN1" not in dev_id  # the id does not reveal the serial
    await h.registry.close()


async def test_blink_within_debounce_is_not_reported_gone(tmp_path: Path) -> None:
    h = Harness(tmp_path, debounce=1.0)
    dev = ProbeDevice("SN1", h.ctx)
    h.ctx.device_found(dev)
    await h.settle()
    h.ctx.device_lost(DeviceFamily.BARCODE, "probe", "SN1", "usb reset")
    await asyncio.sleep(0.05)
    with pytest.raises(DeviceUnavailableError):
        h.registry.device(h.registry.device_id_of(dev), DeviceFamily.BARCODE)
    h.ctx.device_found(ProbeDevice("SN1", h.ctx))
    await asyncio.sleep(1.3)  # past the debounce window: the cancelled removal must not fire
    assert EventKind.DEVICE_REMOVED not in h.kinds()
    assert h.registry.info(h.registry.device_id_of(dev)).state is DeviceState.READY
    assert dev.closed == 1  # the replaced object was closed
    await h.registry.close()


async def test_lost_device_is_gone_after_debounce_and_keeps_id_on_replug(tmp_path: Path) -> None:
    h = Harness(tmp_path, debounce=0.1)
    dev = ProbeDevice("SN1", h.ctx)
    h.ctx.device_found(dev)
    await h.settle()
    dev_id = h.registry.device_id_of(dev)
    h.ctx.device_lost(DeviceFamily.BARCODE, "probe", "SN1", "unplugged")
    for _ in range(100):
        if h.registry.info(dev_id).state is DeviceState.GONE:
            break
        await asyncio.sleep(0.05)
    assert h.registry.info(dev_id).state is DeviceState.GONE
    assert next(e for e in h.events if e.kind is EventKind.DEVICE_REMOVED).attributes["reason"] == "unplugged"
    assert h.registry.list() == []
    assert [i.id for i in h.registry.list(include_gone=True)] == [dev_id]
    h.ctx.device_found(ProbeDevice("SN1", h.ctx))
    await h.settle()
    assert h.registry.info(dev_id).state is DeviceState.READY
    assert h.kinds().count(EventKind.DEVICE_ADDED) == 2
    await h.registry.close()


async def test_known_devices_survive_a_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    dev = ProbeDevice("SN9", h.ctx)
    h.ctx.device_found(dev)
    await h.settle()
    await h.registry.close()
    again = DeviceRegistry(EventBus(), KnownDeviceStore(tmp_path / "known.json"))
    info = again.info(h.registry.device_id_of(dev))
    assert info.state is DeviceState.GONE
    assert info.name == "Probe SN9"


async def test_open_failure_is_error_state_not_a_crash(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    dev = ProbeDevice("BAD", h.ctx, fail_open=True)
    h.ctx.device_found(dev)
    await h.settle()
    info = h.registry.info(h.registry.device_id_of(dev))
    assert info.state is DeviceState.ERROR
    assert info.health.last_error == "OSError"
    await h.registry.close()


async def test_health_change_publishes_state_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    dev = ProbeDevice("SN1", h.ctx)
    h.ctx.device_found(dev)
    await h.settle()
    before = len(h.events)
    dev.set_state(DeviceState.ERROR)
    dev.set_state(DeviceState.ERROR)
    assert len(h.events) == before + 1
    assert h.events[-1].device is not None
    assert h.events[-1].device.state is DeviceState.ERROR
    await h.registry.close()


async def test_unknown_and_malformed_ids(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    with pytest.raises(NotFoundError):
        h.registry.info("barcode-000000000000")
    with pytest.raises(InvalidRequestError):
        h.registry.info("x" * 500)
    with pytest.raises(NotFoundError):
        h.registry.resolve("", DeviceFamily.PRINTER)
    await h.registry.close()
