"""Printers that need a driver, through a CUPS server (pycups, via ``ctx.run_blocking``).

Every CUPS queue is a device. Documents stream from memory into the job
(Create-Job + Send-Document), never through a temporary file. Backend options
(``[drivers.cups]``): ``server`` ("host:port"; default: libcups' default server),
``poll_interval`` (queue status and queue list, seconds, default 30).

libcups keeps the server as process-wide state, so an agent talks to one CUPS server.
Note: CUPS does not poll an idle printer; supply levels appear after a job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from agent.domain.device import Capabilities, DeviceDescriptor, DeviceFamily, DeviceHealth, DeviceState, Severity
from agent.domain.printer import (
    PrintDocument,
    PrinterCapabilities,
    PrinterState,
    PrinterStatus,
    PrintJobStatus,
)
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext, Printer
from agent.drivers.options import CupsOptions, typed_options
from agent.drivers.printer.ipp import parse_capabilities, parse_job, parse_status
from agent.drivers.printer.ipp_codec import Attribute, AttributeGroup, GroupTag, IntRange, Value, ValueTag
from agent.errors import (
    AgentError,
    DeviceBusyError,
    DeviceProtocolError,
    DeviceUnavailableError,
    InvalidRequestError,
    NotFoundError,
)

T = TypeVar("T")
_HTTP_CONTINUE = 100  # what libcups' cupsWriteRequestData returns while the request is open
_IPP_ERRORS: dict[int, type[AgentError]] = {
    0x0406: NotFoundError, 0x040A: InvalidRequestError, 0x040B: InvalidRequestError,
    0x0507: DeviceBusyError, 0x0502: DeviceUnavailableError, 0x0506: DeviceUnavailableError,
}


def _value(item: object) -> Value:
    if isinstance(item, bool):
        return Value(ValueTag.BOOLEAN, item)
    if isinstance(item, int):
        return Value(ValueTag.INTEGER, item)
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(i, int) for i in item):
        return Value(ValueTag.RANGE_OF_INTEGER, IntRange(min(item), max(item)))
    return Value(ValueTag.TEXT, str(item))


def as_group(tag: GroupTag, attributes: Mapping[str, Any]) -> AttributeGroup:
    """pycups' attribute dicts as an attribute group, so one set of IPP mappings serves both."""
    out = []
    for name, raw in attributes.items():
        items = raw if isinstance(raw, list) else [raw]
        if items:
            out.append(Attribute(name, tuple(_value(item) for item in items)))
    return AttributeGroup(tag, tuple(out))


class CupsPrinter(Printer):
    """One CUPS queue."""

    job_poll_interval: ClassVar[float] = 0.25

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, queue: str,
                 call: Callable[..., Any]) -> None:
        super().__init__(descriptor, ctx)
        self.queue = queue
        self._call = call
        self._capabilities = PrinterCapabilities(document_formats=())
        self._status: PrinterStatus | None = None
        self._error = ""
        self._jobs_submitted = 0

    def capabilities(self) -> Capabilities:
        return Capabilities(frozenset({"job_status", "cancel"}))

    def printer_capabilities(self) -> PrinterCapabilities:
        return self._capabilities

    def health(self) -> DeviceHealth:
        counters = {"jobs_submitted": self._jobs_submitted}
        status = self._status
        if status is None and not self._error:
            return DeviceHealth(DeviceState.PRESENT, counters=counters)
        if status is None:
            return DeviceHealth(DeviceState.ERROR, counters=counters, last_error=self._error)
        error = status.state == PrinterState.STOPPED or any(c.severity == Severity.ERROR
                                                            for c in status.conditions)
        state = DeviceState.ERROR if error else (
            DeviceState.BUSY if status.state == PrinterState.PROCESSING else DeviceState.READY)
        return DeviceHealth(state, status.conditions, status.supplies, counters, self._error)

    async def open(self) -> None:
        attributes = await self._call(lambda conn: conn.getPrinterAttributes(self.queue))
        group = as_group(GroupTag.PRINTER, attributes)
        self._capabilities = parse_capabilities(group)
        self._update(parse_status(group), "")

    async def close(self) -> None:
        self._status = None

    def _update(self, status: PrinterStatus | None, error: str) -> None:
        previous, self._status, self._error = self._status, status, error
        if previous != status:
            if previous is None or status is None or previous.conditions != status.conditions:
                described = ", ".join(c.code for c in status.conditions) if status else "unreachable"
                self._ctx.logger.info("CUPS queue %s: %s", self.queue, described or "ready")
            self._ctx.health_changed(self)

    async def refresh(self) -> None:
        try:
            attributes = await self._call(lambda conn: conn.getPrinterAttributes(self.queue))
            self._update(parse_status(as_group(GroupTag.PRINTER, attributes)), "")
        except AgentError as exc:
            self._update(None, exc.message)

    async def printer_status(self) -> PrinterStatus:
        await self.refresh()
        if self._status is None:
            raise DeviceUnavailableError(f"CUPS queue {self.queue}: {self._error}")
        return self._status

    async def submit(self, document: PrintDocument) -> str:
        formats = self._capabilities.document_formats
        if document.mime_type not in formats:
            raise InvalidRequestError(f"CUPS queue {self.queue} does not take {document.mime_type}",
                                      reason="UNSUPPORTED_FORMAT")
        options: dict[str, str] = {}
        if document.copies != 1:
            options["copies"] = str(document.copies)
        if document.duplex:
            options["sides"] = "two-sided-long-edge"
        if document.media:
            options["media"] = document.media

        def send(conn: Any) -> int:
            job_id: int = conn.createJob(self.queue, document.name or "document", options)
            conn.startDocument(self.queue, job_id, document.name or "document", document.mime_type, 1)
            if conn.writeRequestData(document.data, len(document.data)) != _HTTP_CONTINUE:
                raise DeviceProtocolError(f"CUPS queue {self.queue}: sending the document failed")
            status = conn.finishDocument(self.queue)
            if status >= 0x0100:
                raise _IPP_ERRORS.get(status, DeviceProtocolError)(
                    f"CUPS queue {self.queue}: Send-Document failed (0x{status:04x})")
            return job_id

        job_id = await self._call(send)
        self._jobs_submitted += 1
        return str(job_id)

    async def job_status(self, printer_job_id: str) -> PrintJobStatus:
        number = _job_number(printer_job_id)
        attributes = await self._call(lambda conn: conn.getJobAttributes(number))
        return parse_job(as_group(GroupTag.JOB, attributes), printer_job_id)

    async def cancel(self, printer_job_id: str) -> None:
        if (await self.job_status(printer_job_id)).state.terminal:
            return
        number = _job_number(printer_job_id)
        try:
            await self._call(lambda conn: conn.cancelJob(number))
        except AgentError:
            if not (await self.job_status(printer_job_id)).state.terminal:
                raise


def _job_number(printer_job_id: str) -> int:
    try:
        return int(printer_job_id)
    except ValueError:
        raise NotFoundError(f"no CUPS job {printer_job_id!r}") from None


class CupsBackend(DeviceBackend):
    """Every CUPS queue as a printer; the queue list is re-read at the poll interval."""

    name: ClassVar[str] = "cups"
    family: ClassVar[DeviceFamily] = DeviceFamily.PRINTER

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        opts = typed_options(CupsOptions, options)
        self._server = opts.server
        self._poll_interval = opts.poll_interval
        self.devices: dict[str, CupsPrinter] = {}
        self._task: asyncio.Task[None] | None = None
        self._logged_down = False

    def _connect(self) -> Any:
        import cups

        if self._server:
            host, _, port = self._server.rpartition(":")
            cups.setServer(host or self._server)
            if port.isdigit():
                cups.setPort(int(port))
        return cups.Connection()

    async def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` in a worker thread with a fresh connection (pycups is blocking)."""

        def run() -> T:
            import cups

            try:
                conn = self._connect()
            except RuntimeError:
                raise DeviceUnavailableError(f"CUPS server {self._server or 'default'} unreachable") from None
            try:
                return fn(conn)
            except cups.IPPError as exc:
                code, message = exc.args if len(exc.args) == 2 else (0, str(exc))
                raise _IPP_ERRORS.get(code, DeviceProtocolError)(f"CUPS: {message} (0x{code:04x})") from None

        return await self._ctx.run_blocking(run)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="cups-queues")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for device in self.devices.values():
            await device.close()
        self.devices.clear()

    async def _watch(self) -> None:
        while True:
            await self._scan()
            await asyncio.sleep(self._poll_interval)
            for device in list(self.devices.values()):
                await device.refresh()

    async def _scan(self) -> None:
        try:
            queues: dict[str, dict[str, Any]] = await self.call(lambda conn: conn.getPrinters())
        except AgentError as exc:
            if not self._logged_down:
                self._ctx.logger.warning("CUPS not available: %s", exc.message)
                self._logged_down = True
            return
        self._logged_down = False
        for queue, info in queues.items():
            if queue in self.devices:
                continue
            model = str(info.get("printer-make-and-model", ""))
            descriptor = DeviceDescriptor(
                family=self.family, backend=self.name, stable_key=f"{self._server or 'default'}/{queue}",
                name=str(info.get("printer-info") or queue), vendor=model.split(" ")[0], model=model,
                connection="cups", address=queue)
            device = CupsPrinter(descriptor, self._ctx, queue, self.call)
            self.devices[queue] = device
            self._ctx.device_found(device)
        for queue in [q for q in self.devices if q not in queues]:
            device = self.devices.pop(queue)
            await device.close()
            self._ctx.device_lost(self.family, self.name, device.descriptor.stable_key, "CUPS queue removed")
