"""Simulated printer: takes PDF and JPEG, finishes each job after a short delay.

Replaced by the emulated IPP printer driven through the real IPP backend (issue 4).
"""

from __future__ import annotations

import itertools
import time

from agent.domain.device import DeviceDescriptor, DeviceFamily
from agent.domain.printer import (
    PrintDocument,
    PrinterCapabilities,
    PrinterState,
    PrinterStatus,
    PrintJobState,
    PrintJobStatus,
)
from agent.drivers.base import Device, Printer
from agent.errors import NotFoundError
from agent.simulator.base import SimulatedDeviceMixin, SingleDeviceBackend


class SimulatedPrinter(SimulatedDeviceMixin, Printer):
    job_poll_interval = 0.02
    job_seconds = 0.05

    def __init__(self, descriptor: DeviceDescriptor, ctx: object) -> None:
        super().__init__(descriptor, ctx)  # type: ignore[arg-type]
        self._counters = {"pages_printed": 0}
        self._ids = itertools.count(1)
        self._jobs: dict[str, tuple[float, bool]] = {}

    def printer_capabilities(self) -> PrinterCapabilities:
        return PrinterCapabilities(("application/pdf", "image/jpeg"), media=("iso_a4_210x297mm",), max_copies=99)

    async def printer_status(self) -> PrinterStatus:
        return PrinterStatus(PrinterState.IDLE)

    async def submit(self, document: PrintDocument) -> str:
        job_id = str(next(self._ids))
        self._jobs[job_id] = (time.monotonic(), False)
        return job_id

    async def job_status(self, printer_job_id: str) -> PrintJobStatus:
        try:
            started, cancelled = self._jobs[printer_job_id]
        except KeyError:
            raise NotFoundError(f"printer has no job {printer_job_id}") from None
        if cancelled:
            return PrintJobStatus(PrintJobState.CANCELLED, printer_job_id)
        if time.monotonic() - started >= self.job_seconds:
            if self._jobs.pop(printer_job_id, None):
                self._counters["pages_printed"] += 1
            return PrintJobStatus(PrintJobState.COMPLETED, printer_job_id, pages_printed=1)
        return PrintJobStatus(PrintJobState.PROCESSING, printer_job_id)

    async def cancel(self, printer_job_id: str) -> None:
        if printer_job_id in self._jobs:
            self._jobs[printer_job_id] = (self._jobs[printer_job_id][0], True)


class SimulatedPrinterBackend(SingleDeviceBackend):
    name = "sim-printer"
    family = DeviceFamily.PRINTER
    device_name = "Simulated printer"

    def make_device(self, descriptor: DeviceDescriptor) -> Device:
        return SimulatedPrinter(descriptor, self._ctx)
