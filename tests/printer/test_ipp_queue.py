"""The core's per-printer queue driving the IPP backend against ippeveprinter: a busy
printer (server-error-busy) is retried, jobs run in order, cancel reaches the printer."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.core.events import EventBus
from agent.core.ids import KnownDeviceStore
from agent.core.printing import PrinterQueues, PrintJobView
from agent.core.registry import DeviceRegistry
from agent.domain.device import DeviceState
from agent.domain.printer import PrintDocument, PrintJobState
from agent.drivers.base import Device
from agent.drivers.printer.ipp_backend import IppBackend
from tests.printer.context import PrinterTestContext
from tests.printer.documents import one_page_pdf
from tests.printer.peers import IppEvePrinter


class RegistryContext(PrinterTestContext):
    """Hands found devices to a real core registry."""

    def __init__(self, state_dir: Path, registry: DeviceRegistry) -> None:
        super().__init__(state_dir)
        self.registry = registry

    def device_found(self, device: Device) -> None:
        super().device_found(device)
        self.registry.found(device)


@pytest.fixture
async def queues(ippeve: IppEvePrinter, tmp_path: Path) -> AsyncIterator[tuple[PrinterQueues, str]]:
    bus = EventBus()
    registry = DeviceRegistry(bus, KnownDeviceStore(None))
    ctx = RegistryContext(tmp_path, registry)
    backend = IppBackend(ctx, {"uris": [ippeve.uri], "browse": False, "poll_interval": 0.5})
    await backend.start()
    printer_queues = PrinterQueues(registry, bus, busy_retry=0.1, busy_retry_max=0.5)
    try:
        await ctx.wait_for(lambda: bool(ctx.found))
        device_id = registry.device_id_of(ctx.found[0])
        await ctx.wait_for(lambda: registry.info(device_id).state is DeviceState.READY)
        yield printer_queues, device_id
    finally:
        await printer_queues.close()
        await backend.stop()
        await registry.close()
        await ctx.aclose()


async def follow(queues: PrinterQueues, job_id: str) -> list[PrintJobView]:
    seen = []
    async with asyncio.timeout(30):
        async for view in queues.watch(job_id):
            seen.append(view)
    return seen


async def test_busy_printer_is_retried_through_the_queue(queues: tuple[PrinterQueues, str],
                                                         ippeve: IppEvePrinter, tmp_path: Path) -> None:
    printer_queues, device_id = queues
    ippeve.script_job(delay=1.5)
    pdf = tmp_path / "other.pdf"
    pdf.write_bytes(one_page_pdf())
    # another client (ipptool) keeps the printer busy, straight over IPP
    subprocess.run(["ipptool", "-q", "-f", str(pdf), ippeve.uri, "print-job.test"], check=True)
    view = printer_queues.submit(device_id, "clerk-1", PrintDocument(one_page_pdf(), "application/pdf"), "r1")
    seen = await follow(printer_queues, view.job_id)
    assert any("server-error-busy" in v.reasons for v in seen)
    assert seen[-1].state is PrintJobState.COMPLETED
    assert seen[-1].printer_job_id


async def test_jobs_run_in_order_and_cancel(queues: tuple[PrinterQueues, str], ippeve: IppEvePrinter) -> None:
    printer_queues, device_id = queues
    ippeve.script_job(delay=0.3)
    views = [printer_queues.submit(device_id, "clerk-2", PrintDocument(one_page_pdf(), "application/pdf"),
                                   f"r{n}") for n in range(3)]
    # idempotent submit: the same request id gives the same job
    again = printer_queues.submit(device_id, "clerk-2", PrintDocument(one_page_pdf(), "application/pdf"), "r0")
    assert again.job_id == views[0].job_id
    results = [(await follow(printer_queues, v.job_id))[-1] for v in views]
    assert [r.state for r in results] == [PrintJobState.COMPLETED] * 3
    ids = [int(r.printer_job_id) for r in results]
    assert ids == sorted(ids)
    ippeve.script_job(delay=5)
    long_job = printer_queues.submit(device_id, "clerk-2", PrintDocument(one_page_pdf(), "application/pdf"),
                                     "long")
    async with asyncio.timeout(10):
        while not printer_queues.get(long_job.job_id).printer_job_id:
            await asyncio.sleep(0.05)
    await printer_queues.cancel(long_job.job_id, "clerk-2")
    assert (await follow(printer_queues, long_job.job_id))[-1].state is PrintJobState.CANCELLED
