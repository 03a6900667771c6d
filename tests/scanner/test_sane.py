"""The SANE backend against libsane's ``test`` backend, with a private SANE_CONFIG_DIR."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from PIL import Image

from agent.documents.pdf_stream import PdfStreamWriter, stream_pdf
from agent.domain.device import DeviceState
from agent.domain.scanner import ColorMode, PageFormat, ScannedPage, ScanSettings, ScanSource
from agent.drivers.scanner.sane_backend import SaneBackend, SaneScanner, describe_options
from agent.errors import DeviceBusyError, DeviceGoneError, DeviceStateError, InvalidRequestError
from tests.support.context import RecordingContext

ADF = ScanSettings(source=ScanSource.ADF, resolution=75, color_mode=ColorMode.GRAY)


@pytest.fixture
async def sane_device(sane_config_dir: Path, ctx: RecordingContext) -> AsyncIterator[Any]:
    """A factory: the ``test:0`` device as the backend found it, with extra SANE options."""
    backends: list[SaneBackend] = []

    async def make(**extra: object) -> SaneScanner:
        # the test backend keeps option values across opens: reset the fault options every time
        options = {
            "read_return_value": "Default",
            "read_delay": False,
            "test_picture": "Solid black",
            **extra,
        }
        backend = SaneBackend(ctx, {"rescan_interval": 0, "devices": ["test:0"], "device_options": {"test:0": options}})
        backends.append(backend)
        await backend.start()
        await ctx.wait_for(lambda: "test:0" in ctx.devices)
        device = ctx.devices.pop("test:0")
        assert isinstance(device, SaneScanner)
        await device.open()
        return device

    yield make
    for backend in backends:
        await backend.stop()


async def _scan(device: SaneScanner, settings: ScanSettings) -> list[ScannedPage]:
    return [page async for page in device.scan(settings)]


async def test_enumeration_and_capabilities(sane_config_dir: Path, ctx: RecordingContext) -> None:
    backend = SaneBackend(ctx, {"rescan_interval": 0})
    await backend.start()
    try:
        await ctx.wait_for(lambda: {"test:0", "test:1"} <= set(ctx.devices))
        device = ctx.devices["test:0"]
        assert isinstance(device, SaneScanner)
        caps = device.scanner_capabilities()
        assert caps.sources == (ScanSource.FLATBED, ScanSource.ADF)
        assert caps.color_modes == (ColorMode.COLOR, ColorMode.GRAY, ColorMode.BW)
        assert caps.resolutions == (75, 100, 150, 200, 300, 400, 600, 1200)
        assert (caps.max_width_mm, caps.max_height_mm) == (300.0, 300.0)
        assert device.descriptor.vendor == "Noname"
        assert "adf" in device.capabilities().features
    finally:
        await backend.stop()


async def test_enumeration_does_not_block_the_loop(sane_config_dir: Path, ctx: RecordingContext) -> None:
    calls: list[str] = []
    original = ctx.run_blocking

    async def recording(fn: Any, *args: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(fn, *args)

    ctx.run_blocking = recording  # type: ignore[method-assign]
    backend = SaneBackend(ctx, {"rescan_interval": 0})
    await backend.start()
    await backend.enumerated.wait()
    await backend.stop()
    assert "devices" in calls
    assert "read_options" in calls


async def test_flatbed_a4_300dpi_colour(sane_device: Any) -> None:
    device = await sane_device(test_picture="Color pattern")
    pages = await _scan(device, ScanSettings())
    assert len(pages) == 1
    page = pages[0]
    assert (page.format, page.width, page.height, page.resolution) == (PageFormat.JPEG, 2480, 3507, 300)
    img = Image.open(io.BytesIO(page.data))
    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (2480, 3507))
    assert len(img.getcolors(1 << 16) or range(1 << 17)) > 8  # the colour pattern, not a blank page
    assert device.health().counters["pages_scanned"] == 1


async def test_adf_gives_ten_sheets_then_ends(sane_device: Any) -> None:
    device = await sane_device()
    pages = await _scan(device, ADF)
    assert [p.index for p in pages] == list(range(10))
    health = device.health()
    assert (health.state, health.counters["pages_scanned"]) == (DeviceState.READY, 10)


async def test_empty_feeder(sane_device: Any) -> None:
    device = await sane_device(read_return_value="SANE_STATUS_NO_DOCS")
    with pytest.raises(DeviceStateError) as info:
        await _scan(device, ADF)
    assert info.value.reason == "FEEDER_EMPTY"
    assert device.health().last_error.startswith("FEEDER_EMPTY")


@pytest.mark.parametrize(
    ("status", "reason", "condition"),
    [
        ("SANE_STATUS_JAMMED", "PAPER_JAM", "media-jam"),
        ("SANE_STATUS_COVER_OPEN", "COVER_OPEN", "cover-open"),
    ],
)
async def test_faults(sane_device: Any, status: str, reason: str, condition: str) -> None:
    device = await sane_device(read_return_value=status)
    with pytest.raises(DeviceStateError) as info:
        await _scan(device, ADF)
    assert info.value.reason == reason
    health = device.health()
    assert health.state == DeviceState.ERROR
    assert [c.code for c in health.conditions] == [condition]


async def test_busy_and_io_error(sane_device: Any) -> None:
    busy = await sane_device(read_return_value="SANE_STATUS_DEVICE_BUSY")
    with pytest.raises(DeviceBusyError):
        await _scan(busy, ADF)
    await busy.close()  # the test backend opens a device once at a time
    gone = await sane_device(read_return_value="SANE_STATUS_IO_ERROR")
    with pytest.raises(DeviceGoneError):
        await _scan(gone, ADF)
    assert gone.health().state == DeviceState.ERROR


async def test_unsupported_source(sane_device: Any) -> None:
    device = await sane_device()
    with pytest.raises(InvalidRequestError):
        await _scan(device, ScanSettings(source=ScanSource.ADF_DUPLEX))


async def test_grey_and_black_and_white_png_pages(sane_device: Any) -> None:
    device = await sane_device(test_picture="Grid")
    grey = await _scan(device, ScanSettings(resolution=75, color_mode=ColorMode.GRAY, page_format=PageFormat.PNG))
    bw = await _scan(device, ScanSettings(resolution=75, color_mode=ColorMode.BW, page_format=PageFormat.PNG))
    raw = await _scan(device, ScanSettings(resolution=75, color_mode=ColorMode.GRAY, page_format=PageFormat.RAW_GRAY8))
    assert Image.open(io.BytesIO(grey[0].data)).mode == "L"
    bw_img = Image.open(io.BytesIO(bw[0].data))
    assert (bw_img.mode, bw_img.size) == ("1", (620, 876))
    assert len(raw[0].data) == raw[0].width * raw[0].height


async def test_slow_scanner_cancel_by_task(sane_device: Any) -> None:
    device = await sane_device(read_delay=True, read_delay_duration=100000)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    scan = asyncio.create_task(_scan(device, ScanSettings(resolution=150)))
    await asyncio.sleep(0.5)
    assert not scan.done()
    scan.cancel()
    with pytest.raises(asyncio.CancelledError):
        await scan
    ticking.cancel()
    assert ticks >= 10  # the loop kept running while the scanner was slow
    assert device.health().state == DeviceState.READY
    # the device is usable again at once
    device._extra = {"read_delay": False}
    assert len(await _scan(device, ScanSettings(resolution=75))) == 1


async def test_closing_the_generator_cancels_the_feeder_job(sane_device: Any) -> None:
    device = await sane_device()
    scan = device.scan(ADF)
    first = await anext(scan)
    assert first.index == 0
    await scan.aclose()
    assert device.health().state == DeviceState.READY
    # the test feeder holds 10 sheets; the driver pulls the next sheet while encoding a page,
    # so the sheet in flight at the cancel went through too: the next job gets the 8 (or 9) left
    assert len(await _scan(device, ADF)) in (8, 9)


async def test_a4_page_to_pdf(sane_device: Any) -> None:
    device = await sane_device(test_picture="Color pattern")
    writer = PdfStreamWriter()
    pdf = b"".join([chunk async for chunk in stream_pdf(device.scan(ScanSettings()), writer)])
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert len(doc.pages) == 1
        assert [float(v) for v in doc.pages[0].MediaBox] == pytest.approx([0, 0, 595.2, 841.68])
    assert len(writer.sha256) == 64


async def test_a_device_no_longer_enumerated_is_reported_lost(sane_config_dir: Path, ctx: RecordingContext) -> None:
    backend = SaneBackend(ctx, {"rescan_interval": 0})
    await backend.start()
    try:
        await ctx.wait_for(lambda: {"test:0", "test:1"} <= set(ctx.devices))
        backend._only = {"test:0"}  # as if test:1 had been unplugged
        await backend.enumerate()
        assert "test:1" not in ctx.devices
        assert [lost[2] for lost in ctx.lost] == ["test:1"]
    finally:
        await backend.stop()


def test_options_of_other_devices() -> None:
    """Capabilities from option sets unlike the test backend's (names as real backends spell them)."""

    class Option:
        def __init__(self, constraint: object, unit: int = 0) -> None:
            self.constraint = constraint
            self.unit = unit

    caps, option_map = describe_options(
        {
            "source": Option(["Flatbed", "ADF Front", "ADF Duplex"]),
            "mode": Option(["Lineart", "Gray", "Color"]),
            "resolution": Option([100, 200, 300, 600]),
            "br_x": Option((0.0, 215.9, 0.0), unit=3),
            "br_y": Option((0.0, 355.6, 0.0), unit=3),
        }
    )
    assert caps.sources == (ScanSource.FLATBED, ScanSource.ADF, ScanSource.ADF_DUPLEX)
    assert caps.color_modes == (ColorMode.COLOR, ColorMode.GRAY, ColorMode.BW)
    assert caps.resolutions == (100, 200, 300, 600)
    assert (caps.max_width_mm, caps.max_height_mm) == (215.9, 355.6)
    assert option_map.modes[ColorMode.BW] == ("Lineart", 1)
    assert option_map.sources[ScanSource.ADF_DUPLEX] == "ADF Duplex"
    assert option_map.has_geometry

    bare, bare_map = describe_options({"resolution": Option((50.0, 400.0, 1.0))})
    assert bare.sources == (ScanSource.FLATBED,)
    assert bare.resolutions == (75, 100, 150, 200, 300, 400)
    assert (bare.max_width_mm, bare.max_height_mm) == (210.0, 297.0)
    assert not bare_map.has_geometry


async def test_three_pass_colour(sane_device: Any) -> None:
    device = await sane_device(test_picture="Color pattern", three_pass=True)
    (page,) = await _scan(device, ScanSettings(resolution=75, page_format=PageFormat.RAW_RGB8))
    assert page.width == 620
    assert len(page.data) == page.width * page.height * 3
    assert page.height in (876, 877)
    # the test backend keeps option values across opens: switch three-pass off again
    device._extra = {"three_pass": False}
    assert len(await _scan(device, ScanSettings(resolution=75))) == 1
