"""Small in-process devices for core tests (the core is tested alone; drivers have real peers)."""

from __future__ import annotations

from agent.domain.device import Capabilities, DeviceDescriptor, DeviceFamily, DeviceHealth, DeviceState
from agent.drivers.base import BarcodeScanner, DriverContext


class ProbeDevice(BarcodeScanner):
    """A device whose health the test sets; counts open/close calls."""

    def __init__(self, key: str, ctx: DriverContext, fail_open: bool = False) -> None:
        super().__init__(DeviceDescriptor(DeviceFamily.BARCODE, "probe", key, f"Probe {key}", serial=key), ctx)
        self.state = DeviceState.READY
        self.opened = 0
        self.closed = 0
        self.fail_open = fail_open

    def capabilities(self) -> Capabilities:
        return Capabilities(frozenset({"probe"}))

    def health(self) -> DeviceHealth:
        return DeviceHealth(self.state)

    async def open(self) -> None:
        self.opened += 1
        if self.fail_open:
            raise OSError("device refused")

    async def close(self) -> None:
        self.closed += 1

    def scans_seen(self) -> int:
        return 0

    def set_state(self, state: DeviceState) -> None:
        self.state = state
        self._ctx.health_changed(self)
