"""Checks that exercise every device through the running agent's API."""

from __future__ import annotations

import asyncio
import io
import os
import stat
from dataclasses import dataclass, field

import grpc

from agent.client import AgentClient
from agent.doctor.card_check import CardKey, describe_error, read_test_card
from agent.doctor.checks import Outcome, Report
from agent.doctor.expectations import check_inventory
from agent.doctor.prompts import Installer
from centre.agent.v1 import agent_pb2
from centre.agent.v1 import barcode_pb2 as bpb
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import devices_pb2 as dpb
from centre.agent.v1 import fingerprint_pb2 as fpb
from centre.agent.v1 import printer_pb2 as ppb
from centre.agent.v1 import scanner_pb2 as spb

#: seconds between attempts to scan from an empty document feeder
FEEDER_RETRY_S = 2.0


@dataclass(frozen=True)
class DoctorOptions:
    socket: str
    card_mrz: tuple[str, str, str] | None = None  # document number, birth date, expiry date
    card_can: str = ""
    print_test_page: bool = True
    scan_test_page: bool = True
    capture_finger: bool = True
    scan_barcode: bool = True
    expect: tuple[str, ...] = ()  # families this counter must have
    wait_s: float = 60.0  # how long each prompt waits for the installer
    csca_dir: str = ""  # where the agent's trusted CSCAs are (named when a card's issuer is unknown)
    installer: Installer = field(default_factory=Installer)


def test_page_pdf() -> bytes:
    """A one-page A4 PDF saying what it is, made without personal data."""
    import img2pdf
    from PIL import Image, ImageDraw

    image = Image.new("L", (1240, 1754), 255)  # A4 at 150 dpi
    draw = ImageDraw.Draw(image)
    draw.rectangle((60, 60, 1180, 1694), outline=0, width=6)
    draw.text((120, 140), "centre-devices printer test page", fill=0)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    layout = img2pdf.get_fixed_dpi_layout_fun((150, 150))
    return bytes(img2pdf.convert(buf.getvalue(), layout_fun=layout))


def _family(d: cpb.Device) -> str:
    return cpb.DeviceFamily.Name(d.family).removeprefix("DEVICE_FAMILY_").lower()


def _ref(d: cpb.Device) -> cpb.DeviceRef:
    return cpb.DeviceRef(device_id=d.id)


async def run_device_checks(report: Report, client: AgentClient, options: DoctorOptions) -> None:
    health: list[agent_pb2.AgentHealth] = []

    async def agent_check() -> tuple[Outcome, str]:
        version = await client.agent.GetVersion(agent_pb2.GetVersionRequest(), timeout=10)
        health.append(await client.agent.GetHealth(agent_pb2.GetHealthRequest(), timeout=10))
        return Outcome.PASS, f"agent {version.agent_version} serving"

    result = await report.run("agent reachable", agent_check)
    if result.outcome is Outcome.FAIL:
        return
    running = list(health[0].backends)

    async def backends_check() -> tuple[Outcome, str]:
        if health[0].backend_errors:
            return Outcome.FAIL, "; ".join(health[0].backend_errors) + " (see the agent's log)"
        if not running:
            return Outcome.FAIL, "no driver backend is on: enable them with [drivers.<backend>] in the config"
        return Outcome.PASS, ", ".join(running)

    await report.run("backends", backends_check)

    async def socket_check() -> tuple[Outcome, str]:
        path = options.socket.removeprefix("unix:")
        if not os.path.exists(path):
            return Outcome.SKIP, "agent reached over TCP"
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o007:
            return Outcome.FAIL, f"{path} is mode {mode:o}: other users can drive the devices"
        return Outcome.PASS, f"{path} mode {mode:o}"

    await report.run("socket permissions", socket_check)
    reply = await client.devices.ListDevices(dpb.ListDevicesRequest(), timeout=10)
    devices = list(reply.devices)

    async def pcscd_check() -> tuple[Outcome, str]:
        if "pcsc" not in running:
            return Outcome.SKIP, "the pcsc backend is not running"
        # the agent's own view: it may reach pcscd through another socket (PCSCLITE_CSOCK_NAME) than ours
        if any(e.startswith("pcsc:") for e in health[0].backend_errors):
            return Outcome.FAIL, "pcscd is not running: ID-card readers cannot work (systemctl status pcscd.socket)"
        return Outcome.PASS, "reachable by the agent"

    await report.run("pcscd", pcscd_check)
    check_inventory(report, [_family(d) for d in devices], options.expect, running)
    ready = [d for d in devices if _ready(report, d)]
    readers = [d for d in ready if _family(d) == "idcard"]
    if readers:
        key = CardKey(options.card_mrz, options.card_can)
        await report.run("idcard: read the test card", lambda: read_test_card(
            client, readers, key, options.installer, options.wait_s, options.csca_dir))
    for device in ready:
        await _exercise(report, client, device, options)


def _ready(report: Report, device: cpb.Device) -> bool:
    label = f"{_family(device)} {device.name} ({device.id})"
    state = cpb.DeviceState.Name(device.state).removeprefix("DEVICE_STATE_").lower()
    if state not in ("ready", "busy"):
        conditions = ", ".join(c.code for c in device.health.conditions) or device.health.last_error
        report.add(f"{label}: ready", Outcome.FAIL, f"state {state} {conditions}".strip())
        return False
    report.add(f"{label}: ready", Outcome.PASS, f"{device.backend} via {device.connection}")
    return True


async def _exercise(report: Report, client: AgentClient, device: cpb.Device, options: DoctorOptions) -> None:
    family = _family(device)
    label = f"{family} {device.name} ({device.id})"
    installer, wait_s = options.installer, options.wait_s
    if family == "scanner" and options.scan_test_page:
        await report.run(f"{label}: scan a test page", lambda: _scan(client, device, installer, wait_s))
    elif family == "printer":
        await report.run(f"{label}: status", lambda: _printer_status(client, device))
        if options.print_test_page:
            await report.run(f"{label}: print a test page", lambda: _print_page(client, device))
    elif family == "fingerprint" and options.capture_finger:
        async def capture() -> tuple[Outcome, str]:
            installer.ask(f"place a finger on the fingerprint sensor {device.name}", wait_s)
            image = await client.fingerprint.Capture(
                fpb.CaptureRequest(device=_ref(device), timeout_ms=int(wait_s * 1000)), timeout=wait_s + 10)
            return Outcome.PASS, f"{image.width}x{image.height} image, quality {image.quality}"
        await report.run(f"{label}: capture a finger", capture)
    elif family == "barcode" and options.scan_barcode:
        await report.run(f"{label}: scan a barcode", lambda: _barcode(client, device, installer, wait_s))


async def _scan(client: AgentClient, device: cpb.Device, installer: Installer, wait_s: float) -> tuple[Outcome, str]:
    caps = await client.scanner.GetScannerCapabilities(spb.GetScannerCapabilitiesRequest(device=_ref(device)))
    resolution = min(caps.resolutions) if caps.resolutions else 150
    flatbed = spb.SCAN_SOURCE_FLATBED in caps.sources or not caps.sources
    source = spb.SCAN_SOURCE_FLATBED if flatbed else caps.sources[0]
    where = "on the glass" if flatbed else "in the feeder"
    await installer.confirm(f"put a sheet {where} of the scanner {device.name}", wait_s)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        pages, failed = 0, ""
        try:
            async for update in client.scanner.Scan(spb.ScanRequest(device=_ref(device), source=source,
                                                                    resolution=resolution, pdf=True), timeout=120):
                if update.HasField("completed"):
                    pages = update.completed.pages
                if update.HasField("status") and update.status.reason:
                    failed = update.status.reason
        except grpc.aio.AioRpcError as exc:
            failed = describe_error(exc)
        if failed.startswith("FEEDER_EMPTY") and loop.time() < deadline:
            await asyncio.sleep(FEEDER_RETRY_S)  # the installer is still loading the feeder
            continue
        if failed:
            return Outcome.FAIL, failed
        return Outcome.PASS, f"{pages} page(s) at {resolution} dpi"


async def _printer_status(client: AgentClient, device: cpb.Device) -> tuple[Outcome, str]:
    st = await client.printer.GetPrinterStatus(ppb.GetPrinterStatusRequest(device=_ref(device)), timeout=30)
    errors = [c.code for c in st.conditions if c.severity == cpb.SEVERITY_ERROR]
    warnings = [c.code for c in st.conditions if c.severity == cpb.SEVERITY_WARNING]
    if errors:
        return Outcome.FAIL, "printer reports " + ", ".join(errors)
    if warnings:
        return Outcome.WARN, "printer reports " + ", ".join(warnings)
    return Outcome.PASS, ppb.PrinterState.Name(st.state).removeprefix("PRINTER_STATE_").lower()


async def _print_page(client: AgentClient, device: cpb.Device) -> tuple[Outcome, str]:
    caps = await client.printer.GetPrinterCapabilities(ppb.GetPrinterCapabilitiesRequest(device=_ref(device)),
                                                       timeout=30)
    if caps.document_formats and "application/pdf" not in caps.document_formats:
        return Outcome.SKIP, "printer takes no PDF (receipt printer)"
    job = await client.printer.Print(ppb.PrintRequest(device=_ref(device), document=test_page_pdf(),
                                                      mime_type="application/pdf", name="test page"))
    async for update in client.printer.WatchPrintJob(ppb.WatchPrintJobRequest(job_id=job.job_id), timeout=180):
        job = update
    state = ppb.PrintJobState.Name(job.state).removeprefix("PRINT_JOB_STATE_").lower()
    outcome = Outcome.PASS if state == "completed" else Outcome.FAIL
    return outcome, f"job {job.job_id} {state} {' '.join(job.reasons)}".strip()


async def _barcode(client: AgentClient, device: cpb.Device, installer: Installer,
                   wait_s: float) -> tuple[Outcome, str]:
    """Wait for one scan. What was scanned is never reported (it may be a citizen's QR code)."""
    call = client.barcode.WatchScans(bpb.WatchScansRequest(device=_ref(device)))
    installer.ask(f"scan any barcode with {device.name}", wait_s)
    try:
        scan = await asyncio.wait_for(call.read(), wait_s)
    except TimeoutError:
        return Outcome.FAIL, f"no scan within {wait_s:g} s: is the scanner in keyboard (HID) or serial mode " \
                             "as configured, and did the udev rules give it to the agent?"
    finally:
        call.cancel()
    if not isinstance(scan, dpb.BarcodeScanned):  # grpc.aio.EOF
        return Outcome.FAIL, "the scan stream ended before a scan"
    return Outcome.PASS, "scan received" + (f" ({scan.symbology})" if scan.symbology else "")
