from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.core.context import CoreDriverContext, SharedZeroconf
from agent.core.events import EventBus
from agent.core.ids import KnownDeviceStore
from agent.core.registry import DeviceRegistry
from agent.domain.device import DeviceState
from agent.domain.events import Event, EventKind
from agent.uplink.reporter import device_status
from agent.uplink.source import RegistryHealthSource
from centre.gateway.v1 import reporting_pb2
from tests.core.fakes import ProbeDevice


async def test_registry_source_lists_devices_and_wakes_on_device_events_only(tmp_path: Path) -> None:
    bus = EventBus()
    registry = DeviceRegistry(bus, KnownDeviceStore(tmp_path / "known.json"), 0.1)
    ctx = CoreDriverContext("probe", registry, bus, ThreadPoolExecutor(1), SharedZeroconf(["127.0.0.1"]),
                            tmp_path, False)
    source = RegistryHealthSource(registry, bus)
    wakes: list[int] = []
    remove = source.add_change_listener(lambda: wakes.append(1))
    device = ProbeDevice("SERIAL-CANARY-42", ctx)
    ctx.device_found(device)
    for _ in range(10):
        await asyncio.sleep(0.01)
    [info] = source.devices()
    assert info.state is DeviceState.READY
    assert wakes
    status = device_status(info)
    assert status.state == reporting_pb2.DEVICE_STATE_READY
    assert b"SERIAL-CANARY-42" not in status.SerializeToString()
    before = len(wakes)
    bus.publish(Event(EventKind.BARCODE_SCANNED, info.id, 0.0, payload=b"citizen data"))
    assert len(wakes) == before
    remove()
    device.set_state(DeviceState.ERROR)
    ctx.health_changed(device)
    await asyncio.sleep(0.05)
    assert len(wakes) == before
    await registry.close()
