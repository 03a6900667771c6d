"""The ``--simulate`` scanner: the in-process eSCL emulator behind the real eSCL backend."""

from __future__ import annotations

import io

from PIL import Image

from agent.domain.scanner import ColorMode, ScanSettings, ScanSource
from agent.drivers.registry import load_backend_class
from agent.drivers.scanner.escl import EsclScanner
from agent.simulator.scanner import SimulatedScannerBackend
from tests.support.context import RecordingContext


async def test_simulated_scanner_runs_the_escl_code(ctx: RecordingContext) -> None:
    assert load_backend_class("sim-scanner") is SimulatedScannerBackend
    backend = SimulatedScannerBackend(ctx, {"sheets": 3})
    await backend.start()
    try:
        device = ctx.devices["sim-0"]
        assert isinstance(device, EsclScanner)
        assert device.descriptor.connection == "simulated"
        assert device.descriptor.address.startswith("http://127.0.0.1:")
        await device.open()
        flatbed = [p async for p in device.scan(ScanSettings(resolution=75, color_mode=ColorMode.GRAY))]
        assert len(flatbed) == 1
        with Image.open(io.BytesIO(flatbed[0].data)) as img:
            assert (img.mode, img.size) == ("L", (620, 877))
        adf = ScanSettings(source=ScanSource.ADF, resolution=75)
        assert len([p async for p in device.scan(adf)]) == 3
        assert len([p async for p in device.scan(adf)]) == 3  # the simulated feeder refills
        assert device.health().counters["pages_scanned"] == 7
    finally:
        await backend.stop()


def test_scanner_backends_are_registered() -> None:
    assert load_backend_class("sane").name == "sane"
    assert load_backend_class("escl").name == "escl"
