"""Simulated scanner producing synthetic JPEG pages.

Replaced by the eSCL scanner emulator driven through the real eSCL backend (issue 3).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

from agent.domain.device import DeviceDescriptor, DeviceFamily
from agent.domain.scanner import (
    ColorMode,
    PageFormat,
    ScannedPage,
    ScannerCapabilities,
    ScanSettings,
    ScanSource,
)
from agent.drivers.base import Device, Scanner
from agent.simulator.base import SimulatedDeviceMixin, SingleDeviceBackend


class SimulatedScanner(SimulatedDeviceMixin, Scanner):
    features = frozenset({"adf"})
    adf_sheets = 3

    def scanner_capabilities(self) -> ScannerCapabilities:
        return ScannerCapabilities((ScanSource.FLATBED, ScanSource.ADF), (75, 150, 300),
                                   (ColorMode.COLOR, ColorMode.GRAY), 215.9, 297.0)

    async def scan(self, settings: ScanSettings) -> AsyncIterator[ScannedPage]:
        from PIL import Image

        pages = 1 if settings.source is ScanSource.FLATBED else self.adf_sheets
        width = int(settings.width_mm / 25.4 * settings.resolution)
        height = int(settings.height_mm / 25.4 * settings.resolution)
        for index in range(pages):
            await asyncio.sleep(0.01)
            buf = io.BytesIO()
            mode = "L" if settings.color_mode is not ColorMode.COLOR else "RGB"
            Image.new(mode, (width, height), 230).save(buf, "JPEG", quality=80, dpi=(settings.resolution,) * 2)
            self._counters["pages_scanned"] = self._counters.get("pages_scanned", 0) + 1
            yield ScannedPage(index, PageFormat.JPEG, buf.getvalue(), width, height, settings.resolution)

    def __init__(self, descriptor: DeviceDescriptor, ctx: object) -> None:
        super().__init__(descriptor, ctx)  # type: ignore[arg-type]
        self._counters = {"pages_scanned": 0}


class SimulatedScannerBackend(SingleDeviceBackend):
    name = "sim-scanner"
    family = DeviceFamily.SCANNER
    device_name = "Simulated scanner"

    def make_device(self, descriptor: DeviceDescriptor) -> Device:
        return SimulatedScanner(descriptor, self._ctx)
