"""The per-printer queue against a printer whose link fails and comes back (core logic only;
the real IPP peer is exercised in tests/printer)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.core.printing import PrinterQueues
from agent.domain.device import Capabilities, DeviceDescriptor, DeviceFamily, DeviceHealth, DeviceState
from agent.domain.printer import (
    PrintDocument,
    PrinterCapabilities,
    PrinterState,
    PrinterStatus,
    PrintJobState,
    PrintJobStatus,
)
from agent.drivers.base import DriverContext, Printer
from agent.errors import DeviceBusyError, DeviceUnavailableError
from tests.core.test_registry import Harness


class FlakyPrinter(Printer):
    job_poll_interval = 0.01

    def __init__(self, ctx: DriverContext, busy: int, unreachable_submits: int, unreachable_polls: int) -> None:
        super().__init__(DeviceDescriptor(DeviceFamily.PRINTER, "flaky", "P1", "Flaky"), ctx)
        self.busy, self.unreachable_submits, self.unreachable_polls = busy, unreachable_submits, unreachable_polls
        self.submitted: list[bytes] = []
        self.polls = 0

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def health(self) -> DeviceHealth:
        return DeviceHealth(DeviceState.READY)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def printer_capabilities(self) -> PrinterCapabilities:
        return PrinterCapabilities(("application/pdf",))

    async def printer_status(self) -> PrinterStatus:
        return PrinterStatus(PrinterState.IDLE)

    async def submit(self, document: PrintDocument) -> str:
        if self.busy:
            self.busy -= 1
            raise DeviceBusyError("busy")
        if self.unreachable_submits:
            self.unreachable_submits -= 1
            raise DeviceUnavailableError("no route to printer")
        self.submitted.append(document.data)
        return str(len(self.submitted))

    async def job_status(self, printer_job_id: str) -> PrintJobStatus:
        self.polls += 1
        if self.unreachable_polls:
            self.unreachable_polls -= 1
            raise DeviceUnavailableError("connection reset")
        return PrintJobStatus(PrintJobState.COMPLETED, printer_job_id, pages_printed=1)

    async def cancel(self, printer_job_id: str) -> None:
        return None


async def test_busy_and_unreachable_printer_loses_no_job_and_keeps_order(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    printer = FlakyPrinter(h.ctx, busy=2, unreachable_submits=2, unreachable_polls=3)
    h.ctx.device_found(printer)
    await h.settle()
    queues = PrinterQueues(h.registry, h.bus, busy_retry=0.01, busy_retry_max=0.02, unreachable_retry_max=0.02)
    dev_id = h.registry.device_id_of(printer)
    jobs = [queues.submit(dev_id, "clerk", PrintDocument(f"doc{i}".encode(), "application/pdf")) for i in range(5)]
    final = []
    for job in jobs:
        async for view in queues.watch(job.job_id):
            last = view
        final.append(last)
    assert [v.state for v in final] == [PrintJobState.COMPLETED] * 5
    assert printer.submitted == [f"doc{i}".encode() for i in range(5)]
    seen_reasons = {r for job in jobs for r in queues.get(job.job_id).reasons}
    assert seen_reasons == set()  # cleared once the printer answered
    await queues.close()
    await h.registry.close()


async def test_queued_job_can_be_cancelled_while_printer_unreachable(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    printer = FlakyPrinter(h.ctx, busy=0, unreachable_submits=10**6, unreachable_polls=0)
    h.ctx.device_found(printer)
    await h.settle()
    queues = PrinterQueues(h.registry, h.bus, busy_retry=0.01, unreachable_retry_max=0.02)
    dev_id = h.registry.device_id_of(printer)
    job = queues.submit(dev_id, "clerk", PrintDocument(b"doc", "application/pdf"))
    for _ in range(100):
        if "printer-unreachable" in queues.get(job.job_id).reasons:
            break
        await asyncio.sleep(0.01)
    assert "printer-unreachable" in queues.get(job.job_id).reasons
    await queues.cancel(job.job_id, "clerk")
    async for view in queues.watch(job.job_id):
        last = view
    assert last.state is PrintJobState.CANCELLED
    await queues.close()
    await h.registry.close()
