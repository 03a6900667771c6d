"""The eSCL backend against the eSCL emulator running as its own process."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable

import httpx
import pikepdf
import pytest
from PIL import Image
from zeroconf.asyncio import AsyncServiceInfo

from agent.documents.pdf_stream import PdfStreamWriter, stream_pdf
from agent.domain.device import DeviceState
from agent.domain.scanner import ColorMode, PageFormat, ScannedPage, ScanSettings, ScanSource
from agent.drivers.scanner.escl import EsclClient, EsclScanner, parse_capabilities, parse_status, parse_xml
from agent.drivers.scanner.escl_discovery import EsclBackend, probe_escl, service_url
from agent.errors import (
    DeviceBusyError,
    DeviceGoneError,
    DeviceProtocolError,
    DeviceStateError,
    DeviceUnavailableError,
    InvalidRequestError,
)
from tests.scanner.conftest import EmulatorProcess
from tests.support.context import RecordingContext

ADF = ScanSettings(source=ScanSource.ADF, resolution=150)


async def _scanner(ctx: RecordingContext, emulator: EmulatorProcess) -> EsclScanner:
    scanner = await probe_escl(ctx, emulator.url, backend="escl")
    # keep 503 retries quick in tests
    scanner.client._retry_delay = 0.05
    return scanner


async def _collect(scanner: EsclScanner, settings: ScanSettings, pages: list[ScannedPage]) -> None:
    async for page in scanner.scan(settings):
        pages.append(page)


def page_number(page: ScannedPage) -> int:
    """The emulator draws a red block (dpi/10 wide per page number + 1) on each page."""
    img = Image.open(io.BytesIO(page.data)).convert("RGB")
    dpi = page.resolution
    row = dpi // 2 + dpi + dpi // 2
    red = 0
    for x in range(img.width):
        pixel = img.getpixel((x, row))
        assert isinstance(pixel, tuple)
        red += pixel[0] > 150 and pixel[1] < 80 and pixel[2] < 80
    return round(red / (dpi // 10)) - 1


async def test_capabilities(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    scanner = await _scanner(ctx, emulator)
    try:
        caps = scanner.scanner_capabilities()
        assert caps.sources == (ScanSource.FLATBED, ScanSource.ADF, ScanSource.ADF_DUPLEX)
        assert caps.resolutions == (75, 150, 200, 300, 600)
        assert caps.color_modes == (ColorMode.COLOR, ColorMode.GRAY, ColorMode.BW)
        assert caps.max_width_mm == pytest.approx(215.9)
        assert caps.max_height_mm == pytest.approx(355.6)
        assert {"adf", "adf_duplex", "escl"} <= scanner.capabilities().features
        assert scanner.descriptor.stable_key  # the eSCL UUID
        assert scanner.descriptor.name == "Centre eSCL Emulator"
    finally:
        await scanner.close()


async def test_flatbed_a4_300dpi_colour(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []
    await _collect(scanner, ScanSettings(), pages)
    await scanner.close()
    assert len(pages) == 1
    page = pages[0]
    assert (page.format, page.width, page.height, page.resolution) == (PageFormat.JPEG, 2480, 3508, 300)
    img = Image.open(io.BytesIO(page.data))
    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (2480, 3508))
    assert page_number(page) == 0
    assert scanner.health().counters["pages_scanned"] == 1
    assert scanner.health().state == DeviceState.READY


async def test_adf_multi_page_and_health(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(sheets=4)
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []
    await _collect(scanner, ADF, pages)
    await scanner.close()
    assert [p.index for p in pages] == [0, 1, 2, 3]
    assert [page_number(p) for p in pages] == [0, 1, 2, 3]
    health = scanner.health()
    assert (health.counters["pages_scanned"], health.state) == (4, DeviceState.READY)
    assert len(ctx.health_changes) >= 4


async def test_adf_duplex_gives_two_pages_per_sheet(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(sheets=2)
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []
    await _collect(scanner, ScanSettings(source=ScanSource.ADF_DUPLEX, resolution=75, color_mode=ColorMode.GRAY), pages)
    await scanner.close()
    assert len(pages) == 4
    assert all(Image.open(io.BytesIO(p.data)).mode == "L" for p in pages)


async def test_png_pages_on_request(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []
    await _collect(scanner, ScanSettings(resolution=75, page_format=PageFormat.PNG), pages)
    await scanner.close()
    img = Image.open(io.BytesIO(pages[0].data))
    assert (img.format, img.size) == ("PNG", (620, 877))


async def test_feeder_empty(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(sheets=0)
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []
    with pytest.raises(DeviceStateError) as info:
        await _collect(scanner, ADF, pages)
    await scanner.close()
    assert (info.value.reason, pages) == ("FEEDER_EMPTY", [])
    assert scanner.health().state == DeviceState.READY
    assert scanner.health().last_error.startswith("FEEDER_EMPTY")


async def test_paper_jam_after_two_pages(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(jam_after=2)
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []
    with pytest.raises(DeviceStateError) as info:
        await _collect(scanner, ADF, pages)
    await scanner.close()
    assert (info.value.reason, len(pages)) == ("PAPER_JAM", 2)
    health = scanner.health()
    assert health.state == DeviceState.ERROR
    assert [c.code for c in health.conditions] == ["media-jam"]
    assert health.counters["pages_scanned"] == 2


async def test_cover_open(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(cover_open=1)
    scanner = await _scanner(ctx, emulator)
    with pytest.raises(DeviceStateError) as info:
        await _collect(scanner, ADF, [])
    await scanner.close()
    assert info.value.reason == "COVER_OPEN"


async def test_busy_503_is_retried(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(busy=3)
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []
    await _collect(scanner, ScanSettings(resolution=75), pages)
    await scanner.close()
    assert len(pages) == 1


async def test_busy_503_on_next_document_is_retried(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(busy_pages=2, sheets=2)
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []
    await _collect(scanner, ADF, pages)
    await scanner.close()
    assert [page_number(p) for p in pages] == [0, 1]


async def test_location_with_a_foreign_host_is_not_followed(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(location_host="scanner-7.invalid:631")
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []
    await _collect(scanner, ScanSettings(resolution=75), pages)
    await scanner.close()
    assert len(pages) == 1


async def test_a_job_without_any_page_is_an_error(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(empty_platen=1)
    scanner = await _scanner(ctx, emulator)
    with pytest.raises(DeviceProtocolError):
        await _collect(scanner, ScanSettings(resolution=75), [])
    await scanner.close()
    assert scanner.health().last_error.startswith("PROTOCOL_ERROR")


async def test_busy_503_that_persists_is_device_busy(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(busy=50)
    scanner = await _scanner(ctx, emulator)
    scanner.client._busy_retries = 2
    with pytest.raises(DeviceBusyError):
        await _collect(scanner, ScanSettings(resolution=75), [])
    await scanner.close()
    assert scanner.health().state == DeviceState.READY


async def test_device_gone_mid_job_discards_partial_page(
    ctx: RecordingContext, emulator_factory: Callable[..., EmulatorProcess]
) -> None:
    private = emulator_factory("--no-zeroconf")
    private.set(vanish_after=2, sheets=5)
    scanner = await _scanner(ctx, private)
    pages: list[ScannedPage] = []
    with pytest.raises(DeviceGoneError) as info:
        await _collect(scanner, ADF, pages)
    assert len(pages) == 2  # the third page was cut off mid-body and never handed out
    assert all(Image.open(io.BytesIO(p.data)).size == (1240, 1754) for p in pages)
    assert "discarded" in info.value.message
    assert scanner.health().state == DeviceState.ERROR
    private.process.wait(10)  # the emulated device stops answering altogether
    with pytest.raises(DeviceUnavailableError):
        await scanner.client.status()
    await scanner.close()


async def test_cancel_by_closing_the_generator_deletes_the_job(
    ctx: RecordingContext, emulator: EmulatorProcess
) -> None:
    emulator.set(page_delay=0.3)
    scanner = await _scanner(ctx, emulator)
    scan = scanner.scan(ADF)
    first = await anext(scan)
    assert first.index == 0
    await scan.aclose()  # type: ignore[attr-defined]
    status = await scanner.client.status()
    assert status.jobs[-1].state == "Canceled"
    assert scanner.health().state == DeviceState.READY
    # the device takes the next job at once
    emulator.set(page_delay=0)
    pages: list[ScannedPage] = []
    await _collect(scanner, ScanSettings(resolution=75), pages)
    await scanner.close()
    assert len(pages) == 1


async def test_cancel_by_task_cancellation(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(page_delay=5)
    scanner = await _scanner(ctx, emulator)
    task = asyncio.create_task(_collect(scanner, ADF, []))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    status = await scanner.client.status()
    assert status.jobs[-1].state == "Canceled"
    await scanner.close()


async def test_unsupported_source_is_invalid(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    scanner = await _scanner(ctx, emulator)
    object.__setattr__(scanner._caps.scanner, "sources", (ScanSource.FLATBED,))
    with pytest.raises(InvalidRequestError):
        await _collect(scanner, ADF, [])
    await scanner.close()


async def test_adf_job_to_pdf(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    emulator.set(sheets=3)
    scanner = await _scanner(ctx, emulator)
    pages: list[ScannedPage] = []

    async def tee() -> AsyncIterator[ScannedPage]:
        async for page in scanner.scan(ADF):
            pages.append(page)
            yield page

    writer = PdfStreamWriter()
    pdf = b"".join([chunk async for chunk in stream_pdf(tee(), writer)])
    await scanner.close()
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert len(doc.pages) == 3
        for pdf_page, page in zip(doc.pages, pages, strict=True):
            (image,) = pdf_page.get_images().values()
            assert image.read_raw_bytes() == page.data  # passed through, not re-encoded
            assert [float(v) for v in pdf_page.MediaBox] == pytest.approx([0, 0, 595.2, 841.92])
    assert len(writer.sha256) == 64


async def test_unreachable_scanner(ctx: RecordingContext) -> None:
    with pytest.raises(DeviceUnavailableError):
        await probe_escl(ctx, "http://127.0.0.1:9/eSCL", backend="escl")


def test_xml_with_dtd_is_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(DeviceProtocolError):
        parse_xml(bomb)
    with pytest.raises(DeviceProtocolError):
        parse_xml(b"<unclosed>")
    status = parse_status(
        parse_xml(
            b'<scan:ScannerStatus xmlns:scan="http://schemas.hp.com/imaging/escl/2011/05/03" '
            b'xmlns:pwg="http://www.pwg.org/schemas/2010/12/sm"><pwg:State>Idle</pwg:State>'
            b"<scan:AdfState>ScannerAdfJam</scan:AdfState></scan:ScannerStatus>"
        )
    )
    assert (status.state, status.adf_state, status.jobs) == ("Idle", "ScannerAdfJam", ())


def test_service_url() -> None:
    assert service_url("_uscan._tcp.local.", ["127.0.0.1"], 8080, {"rs": "eSCL"}) == "http://127.0.0.1:8080/eSCL"
    assert service_url("_uscans._tcp.local.", ["::1"], 443, {"rs": "/scan/"}) == "https://[::1]:443/scan"
    with pytest.raises(ValueError):
        service_url("_uscan._tcp.local.", [], 80, {})


async def test_backend_with_configured_url(ctx: RecordingContext, emulator: EmulatorProcess) -> None:
    backend = EsclBackend(ctx, {"urls": [emulator.url], "zeroconf": False})
    await backend.start()
    try:
        await ctx.wait_for(lambda: len(ctx.devices) == 1)
        (device,) = ctx.devices.values()
        assert device.descriptor.address == emulator.url
    finally:
        await backend.stop()


async def test_backend_retries_an_unreachable_configured_url(
    ctx: RecordingContext,
    emulator_factory: Callable[..., EmulatorProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a free port, then an emulator started on it later
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = EsclBackend(ctx, {"urls": [f"http://127.0.0.1:{port}/eSCL"], "zeroconf": False, "retry_delay": 0.2})
    await backend.start()
    try:
        await asyncio.sleep(0.5)
        assert ctx.devices == {}
        emulator_factory("--no-zeroconf", "--port", str(port))
        await ctx.wait_for(lambda: len(ctx.devices) == 1)
        assert sum("not reachable yet" in r.getMessage() for r in caplog.records) == 1
    finally:
        await backend.stop()


async def test_zeroconf_discovery_on_loopback(
    ctx: RecordingContext, emulator_factory: Callable[..., EmulatorProcess]
) -> None:
    announced = emulator_factory()  # announces _uscan._tcp on 127.0.0.1
    async with httpx.AsyncClient() as http:
        caps = (await http.get(f"{announced.url}/ScannerCapabilities")).content
    uuid = parse_xml(caps).findtext("{http://schemas.hp.com/imaging/escl/2011/05/03}UUID")
    backend = EsclBackend(ctx, {"zeroconf": True})
    await backend.start()
    try:
        await ctx.wait_for(lambda: uuid in ctx.devices)
        device = ctx.devices[str(uuid)]
        assert device.descriptor.address == announced.url
        info = AsyncServiceInfo("_uscan._tcp.local.", f"Centre eSCL Emulator {announced.port}._uscan._tcp.local.")
        assert await info.async_request((await ctx.zeroconf()).zeroconf, 3000)
        txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        assert {k: txt[k] for k in ("rs", "pdl", "cs", "is", "duplex", "uuid")} == {
            "rs": "eSCL",
            "pdl": "image/jpeg",
            "cs": "color,grayscale,binary",
            "is": "platen,adf",
            "duplex": "T",
            "uuid": uuid,
        }
        assert txt["vers"]
        assert info.parsed_addresses() == ["127.0.0.1"]
        announced.stop()  # unregisters: the backend reports the device lost
        await ctx.wait_for(lambda: any(lost[2] == uuid for lost in ctx.lost))
    finally:
        await backend.stop()


async def test_client_against_plain_http_errors(emulator: EmulatorProcess) -> None:
    client = EsclClient(f"http://127.0.0.1:{emulator.port}/nope")
    with pytest.raises(DeviceProtocolError):
        await client.capabilities()
    await client.aclose()


async def test_a_scanner_announced_twice_is_lost_with_its_last_announcement(
    ctx: RecordingContext, emulator: EmulatorProcess
) -> None:
    from zeroconf import ServiceStateChange

    backend = EsclBackend(ctx, {"zeroconf": False})
    device = await probe_escl(ctx, emulator.url, backend="escl")
    key = device.descriptor.stable_key
    backend._devices[key] = device
    backend._services = {"Emu._uscan._tcp.local.": key, "Emu._uscans._tcp.local.": key}
    backend._on_change(None, "_uscans._tcp.local.", "Emu._uscans._tcp.local.", ServiceStateChange.Removed)  # type: ignore[arg-type]
    assert ctx.lost == []
    backend._on_change(None, "_uscan._tcp.local.", "Emu._uscan._tcp.local.", ServiceStateChange.Removed)  # type: ignore[arg-type]
    assert [lost[2] for lost in ctx.lost] == [key]
    await backend.stop()


async def test_idle_status_polls_show_faults_and_offline(
    ctx: RecordingContext, emulator_factory: Callable[..., EmulatorProcess]
) -> None:
    private = emulator_factory("--no-zeroconf")
    scanner = await probe_escl(ctx, private.url, backend="escl", status_interval=0.05)
    await scanner.open()  # starts the idle poller
    try:
        private.set(cover_open=1)
        await ctx.wait_for(lambda: [c.code for c in scanner.health().conditions] == ["cover-open"])
        assert scanner.health().state == DeviceState.ERROR
        private.set(cover_open=0)
        await ctx.wait_for(lambda: scanner.health().state == DeviceState.READY)

        private.set(jam_after=0, sheets=3)
        with pytest.raises(DeviceStateError):
            await _collect(scanner, ADF, [])
        await scanner.poll_status()  # the jam is still in the feeder
        assert [c.code for c in scanner.health().conditions] == ["media-jam"]
        private.set(sheets=3, jam_after=None)  # cleared and reloaded
        await ctx.wait_for(lambda: scanner.health().state == DeviceState.READY)

        private.stop()
        await ctx.wait_for(lambda: [c.code for c in scanner.health().conditions] == ["offline"])
    finally:
        await scanner.close()


def test_capabilities_of_a_platen_only_scanner_with_a_resolution_range() -> None:
    xml = b"""<?xml version="1.0" encoding="UTF-8"?>
<scan:ScannerCapabilities xmlns:scan="http://schemas.hp.com/imaging/escl/2011/05/03"
    xmlns:pwg="http://www.pwg.org/schemas/2010/12/sm">
  <pwg:Version>2.0</pwg:Version><pwg:MakeAndModel>Flat 1</pwg:MakeAndModel>
  <scan:Platen><scan:PlatenInputCaps>
    <scan:MaxWidth>2550</scan:MaxWidth><scan:MaxHeight>3508</scan:MaxHeight>
    <scan:SettingProfiles><scan:SettingProfile>
      <scan:ColorModes><scan:ColorMode>Grayscale8</scan:ColorMode><scan:ColorMode>RGB48</scan:ColorMode>
      </scan:ColorModes>
      <scan:SupportedResolutions><scan:ResolutionRange>
        <scan:XResolutionRange><scan:Min>100</scan:Min><scan:Max>300</scan:Max></scan:XResolutionRange>
      </scan:ResolutionRange></scan:SupportedResolutions>
    </scan:SettingProfile></scan:SettingProfiles>
  </scan:PlatenInputCaps></scan:Platen>
</scan:ScannerCapabilities>"""
    caps = parse_capabilities(parse_xml(xml))
    assert caps.scanner.sources == (ScanSource.FLATBED,)
    assert caps.scanner.color_modes == (ColorMode.GRAY,)
    assert caps.scanner.resolutions == (100, 150, 200, 300)
    assert (caps.scanner.max_width_mm, caps.scanner.max_height_mm) == (215.9, 297.0)
    assert not caps.duplex
    with pytest.raises(DeviceProtocolError):
        parse_capabilities(parse_xml(b"<scan:ScannerCapabilities xmlns:scan='x'/>"))
