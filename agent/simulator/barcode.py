"""Simulated barcode scanner: scans are injected with :meth:`SimulatedBarcodeScanner.inject`.

Replaced by a simulator that runs the real HID decoder (issue 5).
"""

from __future__ import annotations

from agent.domain.device import DeviceDescriptor, DeviceFamily
from agent.domain.events import EventKind
from agent.drivers.base import BarcodeScanner, Device
from agent.simulator.base import SimulatedDeviceMixin, SingleDeviceBackend


class SimulatedBarcodeScanner(SimulatedDeviceMixin, BarcodeScanner):
    def __init__(self, descriptor: DeviceDescriptor, ctx: object) -> None:
        super().__init__(descriptor, ctx)  # type: ignore[arg-type]
        self._counters = {"scans": 0}

    def scans_seen(self) -> int:
        return self._counters["scans"]

    def inject(self, text: str) -> None:
        self._counters["scans"] += 1
        self._ctx.emit(self, EventKind.BARCODE_SCANNED, {"symbology": "qr"}, payload=text.encode())


class SimulatedBarcodeBackend(SingleDeviceBackend):
    name = "sim-barcode"
    family = DeviceFamily.BARCODE
    device_name = "Simulated barcode scanner"

    def make_device(self, descriptor: DeviceDescriptor) -> Device:
        return SimulatedBarcodeScanner(descriptor, self._ctx)
