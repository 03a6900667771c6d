"""One queue per printer: jobs go to the printer one at a time, in order, and are followed
to their end. A busy printer (IPP server-error-busy) is retried, never reported as a failure."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from agent.core.events import EventBus
from agent.core.jobs import JobTable, new_job_id
from agent.core.registry import DeviceRegistry
from agent.domain.device import DeviceFamily
from agent.domain.events import Event, EventKind
from agent.domain.printer import PrintDocument, PrintJobState
from agent.drivers.base import Printer
from agent.errors import AgentError, DeviceBusyError, DeviceUnavailableError, InvalidRequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PrintJobView:
    """A job as clients see it."""

    job_id: str
    device_id: str
    client_id: str
    state: PrintJobState
    reasons: tuple[str, ...] = ()
    printer_job_id: str = ""
    pages_printed: int = 0
    queue_position: int = 0
    message: str = ""


@dataclass(eq=False)
class _Job:
    view: PrintJobView
    document: PrintDocument | None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_requested: bool = False


def _cancel_pending(job: _Job) -> bool:
    # read through a function: the flag is set concurrently by cancel(), which type narrowing cannot see
    return job.cancel_requested


class PrinterQueues:
    """All printer queues of the agent."""

    def __init__(self, registry: DeviceRegistry, bus: EventBus, busy_retry: float = 0.5,
                 busy_retry_max: float = 5.0, unreachable_retry_max: float = 10.0) -> None:
        self._registry = registry
        self._bus = bus
        self._busy_retry = busy_retry
        self._busy_retry_max = busy_retry_max
        self._unreachable_retry_max = unreachable_retry_max
        self._jobs: JobTable[_Job] = JobTable()
        self._queues: dict[str, asyncio.Queue[_Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, list[_Job]] = {}

    def submit(self, device_id: str, client_id: str, document: PrintDocument, request_id: str = "") -> PrintJobView:
        existing = self._jobs.by_request(client_id, request_id)
        if existing is not None:
            return existing.view
        printer = self._registry.device(device_id, DeviceFamily.PRINTER)
        assert isinstance(printer, Printer)
        formats = printer.printer_capabilities().document_formats
        if formats and document.mime_type not in formats:
            raise InvalidRequestError(
                f"printer {device_id} does not take {document.mime_type} (it takes {', '.join(formats)})",
                reason="UNSUPPORTED_FORMAT", device_id=device_id)
        job = _Job(PrintJobView(new_job_id("print"), device_id, client_id, PrintJobState.QUEUED), document)
        self._jobs.add(job.view.job_id, job, client_id, request_id)
        waiting = self._waiting.setdefault(device_id, [])
        waiting.append(job)
        self._update(job, queue_position=len(waiting))
        self._queue(device_id).put_nowait(job)
        return job.view

    def get(self, job_id: str) -> PrintJobView:
        return self._jobs.get(job_id).view

    def list(self, device_id: str = "") -> list[PrintJobView]:
        return [j.view for j in self._jobs.values() if not device_id or j.view.device_id == device_id]

    async def watch(self, job_id: str) -> AsyncIterator[PrintJobView]:
        job = self._jobs.get(job_id)
        last: PrintJobView | None = None
        while True:
            job.changed.clear()
            if job.view != last:
                last = job.view
                yield last
            if last.state.terminal:
                return
            await job.changed.wait()

    async def cancel(self, job_id: str, client_id: str) -> PrintJobView:
        job = self._jobs.get(job_id)
        if job.view.state.terminal:
            return job.view
        job.cancel_requested = True
        if job.view.state is PrintJobState.QUEUED:
            self._finish(job, PrintJobState.CANCELLED, message=f"cancelled by {client_id}")
        elif job.view.printer_job_id:
            try:
                printer = self._registry.device(job.view.device_id, DeviceFamily.PRINTER)
            except DeviceUnavailableError:
                return job.view  # the job's poll loop cancels it when the printer answers again
            assert isinstance(printer, Printer)
            await self._cancel_at_printer(printer, job.view.printer_job_id)
        return job.view

    async def _cancel_at_printer(self, printer: Printer, printer_job_id: str) -> bool:
        """Ask the printer to cancel; False when it cannot be reached (the poll loop asks again)."""
        try:
            await printer.cancel(printer_job_id)
        except DeviceUnavailableError:
            return False
        return True

    async def close(self) -> None:
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    # -- internals -----------------------------------------------------------------------------

    def _queue(self, device_id: str) -> asyncio.Queue[_Job]:
        queue = self._queues.get(device_id)
        if queue is None:
            queue = self._queues[device_id] = asyncio.Queue()
            self._workers[device_id] = asyncio.get_running_loop().create_task(self._work(device_id, queue))
        return queue

    async def _work(self, device_id: str, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            waiting = self._waiting.get(device_id, [])
            if job in waiting:
                waiting.remove(job)
            for position, other in enumerate(waiting, start=1):
                self._update(other, queue_position=position)
            if job.view.state.terminal:
                continue
            try:
                await self._run(job)
            except asyncio.CancelledError:
                self._finish(job, PrintJobState.ABORTED, reasons=("agent-shutdown",))
                raise
            except AgentError as exc:
                self._finish(job, PrintJobState.ABORTED, reasons=(exc.reason.lower(),), message=exc.message)
            except Exception as exc:
                log.exception("print job %s failed in the driver", job.view.job_id)
                self._finish(job, PrintJobState.ABORTED, reasons=("internal-error",), message=type(exc).__name__)

    async def _run(self, job: _Job) -> None:
        device_id = job.view.device_id
        delay = self._busy_retry
        self._registry.set_busy(device_id, True)
        try:
            while True:
                if job.cancel_requested:
                    self._finish(job, PrintJobState.CANCELLED)
                    return
                assert job.document is not None
                try:
                    printer = self._registry.device(device_id, DeviceFamily.PRINTER)
                    assert isinstance(printer, Printer)
                    printer_job_id = await printer.submit(job.document)
                    break
                except DeviceBusyError:
                    self._update(job, reasons=("server-error-busy",))
                    cap = self._busy_retry_max
                except DeviceUnavailableError:
                    # printer off or unplugged: the job waits in memory until it is back or cancelled
                    self._update(job, reasons=("printer-unreachable",))
                    cap = self._unreachable_retry_max
                await asyncio.sleep(delay)
                delay = min(delay * 1.6, cap)
            job.document = None  # the printer has it; do not keep citizens' documents around
            self._update(job, state=PrintJobState.PENDING, printer_job_id=printer_job_id, reasons=(),
                         queue_position=0)
            delay = self._busy_retry
            cancel_sent = False
            while True:
                if not cancel_sent and _cancel_pending(job):
                    cancel_sent = await self._cancel_at_printer(printer, printer_job_id)
                try:
                    status = await printer.job_status(printer_job_id)
                except DeviceUnavailableError:
                    # a network blip must not lose the job: keep asking until the printer answers
                    self._update(job, reasons=("printer-unreachable",))
                    await asyncio.sleep(delay)
                    delay = min(delay * 1.6, self._unreachable_retry_max)
                    continue
                delay = self._busy_retry
                if status.state.terminal:
                    self._finish(job, status.state, reasons=status.reasons, pages=status.pages_printed,
                                 message=status.message)
                    return
                self._update(job, state=status.state, reasons=status.reasons, pages_printed=status.pages_printed,
                             message=status.message)
                await asyncio.sleep(printer.job_poll_interval)
        finally:
            self._registry.set_busy(device_id, False)

    def _update(self, job: _Job, **changes: object) -> None:
        new = dataclasses.replace(job.view, **changes)  # type: ignore[arg-type]
        if new == job.view:
            return
        state_changed = new.state is not job.view.state
        job.view = new
        job.changed.set()
        if state_changed:
            self._bus.publish(Event(kind=EventKind.JOB_UPDATED, device_id=new.device_id, timestamp=time.time(),
                                    attributes={"job_id": new.job_id, "state": new.state.value,
                                                "kind": "print"}))

    def _finish(self, job: _Job, state: PrintJobState, reasons: tuple[str, ...] = (), pages: int = 0,
                message: str = "") -> None:
        job.document = None
        self._update(job, state=state, reasons=reasons, pages_printed=pages or job.view.pages_printed,
                     message=message, queue_position=0)
