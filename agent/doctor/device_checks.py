"""Checks that exercise every device through the running agent's API."""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from agent.client import AgentClient
from agent.doctor.checks import Outcome, Report
from centre.agent.v1 import agent_pb2
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import devices_pb2 as dpb
from centre.agent.v1 import fingerprint_pb2 as fpb
from centre.agent.v1 import idcard_pb2 as ipb
from centre.agent.v1 import printer_pb2 as ppb
from centre.agent.v1 import scanner_pb2 as spb

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")


@dataclass(frozen=True)
class DoctorOptions:
    socket: str
    card_mrz: tuple[str, str, str] | None = None  # document number, birth date, expiry date
    card_can: str = ""
    print_test_page: bool = True
    scan_test_page: bool = True
    capture_finger: bool = True
    finger_timeout_s: float = 20.0


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
    async def agent_check() -> tuple[Outcome, str]:
        version = await client.agent.GetVersion(agent_pb2.GetVersionRequest(), timeout=10)
        health = await client.agent.GetHealth(agent_pb2.GetHealthRequest(), timeout=10)
        if health.backend_errors:
            return Outcome.FAIL, f"agent {version.agent_version}; backends failed: {'; '.join(health.backend_errors)}"
        return Outcome.PASS, f"agent {version.agent_version} serving, backends: {', '.join(health.backends)}"

    result = await report.run("agent reachable", agent_check)
    if result.outcome is Outcome.FAIL:
        return

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
    families = {_family(d) for d in devices}

    async def pcscd_check() -> tuple[Outcome, str]:
        if "idcard" not in families and not PCSCD_SOCKET.exists():
            return Outcome.SKIP, "no ID-card reader configured"
        if any(d.connection == "simulated" for d in devices if _family(d) == "idcard"):
            return Outcome.SKIP, "simulated reader"
        return (Outcome.PASS, f"{PCSCD_SOCKET} present") if PCSCD_SOCKET.exists() else \
            (Outcome.FAIL, "pcscd is not running (no /run/pcscd/pcscd.comm)")

    await report.run("pcscd", pcscd_check)
    for family in ("idcard", "fingerprint", "scanner", "printer", "barcode"):
        if family not in families:
            report.add(f"{family}: found", Outcome.WARN, f"no {family} device found")
    for device in devices:
        await _exercise(report, client, device, options)


async def _exercise(report: Report, client: AgentClient, device: cpb.Device, options: DoctorOptions) -> None:
    family = _family(device)
    label = f"{family} {device.name} ({device.id})"
    state = cpb.DeviceState.Name(device.state).removeprefix("DEVICE_STATE_").lower()
    if state not in ("ready", "busy"):
        conditions = ", ".join(c.code for c in device.health.conditions) or device.health.last_error
        report.add(f"{label}: ready", Outcome.FAIL, f"state {state} {conditions}".strip())
        return
    report.add(f"{label}: ready", Outcome.PASS, f"{device.backend} via {device.connection}")

    if family == "idcard":
        async def read_card() -> tuple[Outcome, str]:
            request = ipb.ReadCardRequest(device=_ref(device), skip_face=False)
            if options.card_can:
                request.can = options.card_can
            elif options.card_mrz:
                doc, birth, expiry = options.card_mrz
                request.mrz.CopyFrom(ipb.MrzKey(document_number=doc, date_of_birth=birth, date_of_expiry=expiry))
            else:
                return Outcome.SKIP, "give --can or --doc-number/--birth-date/--expiry-date to read a test card"
            read = await client.idcard.ReadCard(request, timeout=60)
            verdict = ipb.Verdict.Name(read.verification.passive).removeprefix("VERDICT_").lower()
            # only non-personal facts go into the report
            return Outcome.PASS, f"{read.access_protocol}, DGs {list(read.data_groups_read)}, passive {verdict}"
        await report.run(f"{label}: read card", read_card)
    elif family == "scanner" and options.scan_test_page:
        async def scan() -> tuple[Outcome, str]:
            caps = await client.scanner.GetScannerCapabilities(spb.GetScannerCapabilitiesRequest(device=_ref(device)))
            resolution = min(caps.resolutions) if caps.resolutions else 150
            source = spb.SCAN_SOURCE_FLATBED if spb.SCAN_SOURCE_FLATBED in caps.sources else caps.sources[0]
            pages, failed = 0, ""
            async for update in client.scanner.Scan(spb.ScanRequest(device=_ref(device), source=source,
                                                                    resolution=resolution, pdf=True), timeout=120):
                if update.HasField("completed"):
                    pages = update.completed.pages
                if update.HasField("status") and update.status.reason:
                    failed = update.status.reason
            if failed:
                return Outcome.FAIL, failed
            return Outcome.PASS, f"{pages} page(s) at {resolution} dpi"
        await report.run(f"{label}: scan a test page", scan)
    elif family == "printer":
        async def status() -> tuple[Outcome, str]:
            st = await client.printer.GetPrinterStatus(ppb.GetPrinterStatusRequest(device=_ref(device)), timeout=30)
            errors = [c.code for c in st.conditions if c.severity == cpb.SEVERITY_ERROR]
            warnings = [c.code for c in st.conditions if c.severity == cpb.SEVERITY_WARNING]
            if errors:
                return Outcome.FAIL, "printer reports " + ", ".join(errors)
            if warnings:
                return Outcome.WARN, "printer reports " + ", ".join(warnings)
            return Outcome.PASS, ppb.PrinterState.Name(st.state).removeprefix("PRINTER_STATE_").lower()
        await report.run(f"{label}: status", status)
        if options.print_test_page:
            async def print_page() -> tuple[Outcome, str]:
                caps = await client.printer.GetPrinterCapabilities(
                    ppb.GetPrinterCapabilitiesRequest(device=_ref(device)), timeout=30)
                if caps.document_formats and "application/pdf" not in caps.document_formats:
                    return Outcome.SKIP, "printer takes no PDF (receipt printer)"
                job = await client.printer.Print(ppb.PrintRequest(device=_ref(device), document=test_page_pdf(),
                                                                  mime_type="application/pdf", name="test page"))
                async for update in client.printer.WatchPrintJob(ppb.WatchPrintJobRequest(job_id=job.job_id),
                                                                 timeout=180):
                    job = update
                state = ppb.PrintJobState.Name(job.state).removeprefix("PRINT_JOB_STATE_").lower()
                outcome = Outcome.PASS if state == "completed" else Outcome.FAIL
                return outcome, f"job {job.job_id} {state} {' '.join(job.reasons)}".strip()
            await report.run(f"{label}: print a test page", print_page)
    elif family == "fingerprint" and options.capture_finger:
        async def capture() -> tuple[Outcome, str]:
            image = await client.fingerprint.Capture(
                fpb.CaptureRequest(device=_ref(device), timeout_ms=int(options.finger_timeout_s * 1000)),
                timeout=options.finger_timeout_s + 10)
            return Outcome.PASS, f"{image.width}x{image.height} image, quality {image.quality}"
        await report.run(f"{label}: capture a finger", capture)
