"""A HealthSource for tests: a mutable device list with change notification."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from agent.domain.device import Capabilities, DeviceFamily, DeviceHealth, DeviceInfo, DeviceState, SupplyLevel


def make_printer(device_id: str, state: DeviceState = DeviceState.READY, *, serial: str = "SN123",
                 toner: int = 80, last_error: str = "") -> DeviceInfo:
    return DeviceInfo(id=device_id, family=DeviceFamily.PRINTER, backend="ipp", name="HP LaserJet M404",
                      vendor="HP", model="M404", serial=serial, connection="network", state=state,
                      health=DeviceHealth(state=state, supplies=(SupplyLevel("Black Toner", "toner", toner, "black"),),
                                          counters={"pages_printed": 3}, last_error=last_error),
                      capabilities=Capabilities())


class FakeHealthSource:
    def __init__(self, devices: Sequence[DeviceInfo] = ()) -> None:
        self._devices = {d.id: d for d in devices}
        self._listeners: list[Callable[[], None]] = []

    def devices(self) -> Sequence[DeviceInfo]:
        return list(self._devices.values())

    def add_change_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def put(self, device: DeviceInfo) -> None:
        self._devices[device.id] = device
        for listener in list(self._listeners):
            listener()

    def set_state(self, device_id: str, state: DeviceState) -> None:
        device = self._devices[device_id]
        self.put(dataclasses.replace(device, state=state, health=dataclasses.replace(device.health, state=state)))

    def remove(self, device_id: str) -> None:
        del self._devices[device_id]
        for listener in list(self._listeners):
            listener()
