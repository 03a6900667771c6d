"""The ``--simulate`` printer: the emulated IPP printer, through the real IPP backend,
kept honest by CUPS' ipptool."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.domain.device import DeviceState, Severity
from agent.domain.printer import PrintDocument, PrintJobState
from agent.drivers.printer.ipp import IppClient
from agent.drivers.printer.ipp_backend import IppPrinter
from agent.drivers.registry import load_backend_class
from agent.errors import DeviceBusyError, InvalidRequestError
from agent.simulator.ipp_printer import EmulatedIppPrinter
from agent.simulator.printer import SimulatedPrinterBackend
from tests.printer.context import PrinterTestContext
from tests.printer.documents import one_page_pdf


@pytest.fixture
async def sim(ctx: PrinterTestContext) -> AsyncIterator[SimulatedPrinterBackend]:
    cls = load_backend_class("sim-printer")
    assert cls is SimulatedPrinterBackend
    backend = SimulatedPrinterBackend(ctx, {"job_seconds": 0.05, "poll_interval": 0.05})
    await backend.start()
    assert backend.device is not None
    assert ctx.found == [backend.device]
    await backend.device.open()
    try:
        yield backend
    finally:
        await backend.stop()


def device_of(sim: SimulatedPrinterBackend) -> IppPrinter:
    assert sim.device is not None
    return sim.device


async def finish(printer: IppPrinter, job_id: str) -> PrintJobState:
    async with asyncio.timeout(10):
        while True:
            status = await printer.job_status(job_id)
            if status.state.terminal:
                return status.state
            await asyncio.sleep(0.02)


async def test_simulated_printer_prints_through_ipp(sim: SimulatedPrinterBackend) -> None:
    printer = device_of(sim)
    assert printer.descriptor.connection == "simulated"
    assert printer.printer_capabilities().duplex
    job_id = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf", copies=2, duplex=True,
                                                media="iso_a4_210x297mm"))
    assert await finish(printer, job_id) == PrintJobState.COMPLETED
    assert sim.emulator.documents_received == 1
    assert printer.health().state == DeviceState.READY
    assert printer.health().supplies[0].level_percent == 80


async def test_simulated_busy_cancel_and_format(sim: SimulatedPrinterBackend) -> None:
    printer = device_of(sim)
    sim.emulator.job_seconds = 5
    job_id = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    with pytest.raises(DeviceBusyError):
        await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    await printer.cancel(job_id)
    assert await finish(printer, job_id) == PrintJobState.CANCELLED
    with pytest.raises(InvalidRequestError):
        await printer.submit(PrintDocument(b"%!PS", "application/postscript"))


async def test_simulated_faults_reach_health(sim: SimulatedPrinterBackend, ctx: PrinterTestContext) -> None:
    printer = device_of(sim)
    sim.emulator.apply_faults("toner=5")
    await ctx.wait_for(lambda: any(c.code == "toner-low" and c.severity == Severity.WARNING
                                   for c in printer.health().conditions))
    sim.emulator.apply_faults("paper=0")
    await ctx.wait_for(lambda: printer.health().state == DeviceState.ERROR)
    job_id = await printer.submit(PrintDocument(one_page_pdf(), "application/pdf"))
    async with asyncio.timeout(10):
        while "media-empty" not in (await printer.job_status(job_id)).reasons:
            await asyncio.sleep(0.02)
    sim.emulator.apply_faults("paper=100")
    assert await finish(printer, job_id) == PrintJobState.COMPLETED
    sim.emulator.apply_faults("reasons=%2Bmedia-jam,cover-open")
    await ctx.wait_for(lambda: {"media-jam", "cover-open"} <= {c.code for c in printer.health().conditions})
    assert printer.health().state == DeviceState.ERROR
    sim.emulator.apply_faults("reasons=-media-jam,cover-open&toner=80")
    await ctx.wait_for(lambda: printer.health().state == DeviceState.READY
                       and not printer.health().conditions)


async def test_fault_urls_over_http(tmp_path: Path) -> None:
    emulator = EmulatedIppPrinter()
    await emulator.start()
    try:
        import httpx

        async with httpx.AsyncClient() as http:
            base = f"http://127.0.0.1:{emulator.port}"
            assert (await http.get(f"{base}/faults", params={"toner": "0"})).status_code == 200
            assert (await http.get(f"{base}/faults", params={"toner": "x"})).status_code == 400
        client = IppClient(emulator.uri)
        status = await client.printer_status()
        await client.aclose()
        assert [c.code for c in status.conditions] == ["toner-empty"]
    finally:
        await emulator.stop()


async def _ipptool(*args: str) -> str:
    process = await asyncio.create_subprocess_exec("ipptool", *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, text
    return text


async def test_ipptool_accepts_the_emulator(tmp_path: Path) -> None:
    emulator = EmulatedIppPrinter()
    await emulator.start()
    pdf = tmp_path / "page.pdf"
    pdf.write_bytes(one_page_pdf())
    try:
        out = await _ipptool("-tv", emulator.uri, "get-printer-attributes.test")
        assert "[PASS]" in out
        out = await _ipptool("-tv", "-f", str(pdf), emulator.uri, "print-job.test")
        assert "[PASS]" in out
        wait_test = tmp_path / "wait.test"
        wait_test.write_text(WAIT_TEST)
        out = await _ipptool("-tv", "-d", "job-id=1", emulator.uri, str(wait_test))
        assert "[PASS]" in out
        assert "job-state (enum) = completed" in out
        assert emulator.documents_received == 1
    finally:
        await emulator.stop()


WAIT_TEST = """{
  NAME "Job 1 completes"
  OPERATION Get-Job-Attributes
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR language attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR integer job-id $job-id
  STATUS successful-ok
  EXPECT job-id
  EXPECT job-state WITH-VALUE >5 REPEAT-NO-MATCH
  DELAY "0,0.05"
}
"""


async def test_unreachable_printer_logged_once_and_back(ctx: PrinterTestContext,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    emulator = EmulatedIppPrinter()
    await emulator.start()
    port = emulator.port
    from agent.drivers.printer.ipp_backend import IppBackend

    backend = IppBackend(ctx, {"uris": [emulator.uri], "browse": False, "poll_interval": 0.05})
    await backend.start()
    try:
        await ctx.wait_for(lambda: bool(ctx.found))
        printer = ctx.found[0]
        assert isinstance(printer, IppPrinter)
        await printer.open()
        assert printer.health().state == DeviceState.READY
        await emulator.stop()
        await ctx.wait_for(lambda: printer.health().state == DeviceState.ERROR)
        assert printer.health().conditions[0].code == "offline"
        changes = len(ctx.health_changes)
        await asyncio.sleep(0.5)  # ~10 failed polls
        assert len(ctx.health_changes) == changes  # no change, no new report
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
        assert "Exception in callback" not in caplog.text
        await emulator.start(port)
        await ctx.wait_for(lambda: printer.health().state == DeviceState.READY)
    finally:
        await backend.stop()
        await emulator.stop()


async def test_emulator_survives_garbage(tmp_path: Path) -> None:
    emulator = EmulatedIppPrinter()
    await emulator.start()
    try:
        for junk in (b"\x00\x01garbage\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                     b"POST / HTTP/1.1\r\nContent-Type: application/ipp\r\nContent-Length: 3\r\n\r\n\x02\x00\x00",
                     b"GET /faults?toner=abc HTTP/1.1\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
            writer.write(junk)
            await writer.drain()
            await reader.read(4096)
            writer.close()
            await writer.wait_closed()
        client = IppClient(emulator.uri)
        try:
            assert (await client.printer_status()).conditions == ()
        finally:
            await client.aclose()
    finally:
        await emulator.stop()


async def test_emulator_runs_standalone() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.simulator.ipp_printer", stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2])
    try:
        assert process.stdout is not None
        uri = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        assert uri.startswith("ipp://127.0.0.1:")
        out = await _ipptool("-tv", uri, "get-printer-attributes.test")
        assert "[PASS]" in out
    finally:
        process.terminate()
        await process.wait()
