"""ESC/POS receipt printers on a serial port (pyserial) or raw TCP (port 9100).

Documents are rendered to ESC/POS with python-escpos: ``text/plain`` (UTF-8 lines),
``image/png``/``image/jpeg`` (raster), and a simple receipt document
(``application/vnd.centre.receipt+json``)::

    {"title": "UBND PHUONG ...", "lines": ["Ma ho so: 001", ["Le phi", "0 d"]],
     "footer": "Cam on", "qr": "https://..."}

Status comes from the real-time DLE EOT queries (paper end / near end, cover open,
offline), polled while idle. Backend options (``[drivers.escpos]``)::

    printers = [{device = "/dev/ttyUSB0", baudrate = 19200, name = "Receipts"},
                {address = "127.0.0.1:9100"}]
    poll_interval = 30
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import socket
import unicodedata
from typing import Any, ClassVar, Protocol

from agent.domain.device import (
    Capabilities,
    Condition,
    DeviceDescriptor,
    DeviceFamily,
    DeviceHealth,
    DeviceState,
    Severity,
)
from agent.domain.printer import (
    PrintDocument,
    PrinterCapabilities,
    PrinterState,
    PrinterStatus,
    PrintJobState,
    PrintJobStatus,
)
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext, Printer
from agent.drivers.options import EscposOptions, EscposPrinterOptions, typed_options
from agent.errors import (
    AgentError,
    DataFormatError,
    DeviceProtocolError,
    DeviceStateError,
    DeviceUnavailableError,
    InvalidRequestError,
    NotFoundError,
)

RECEIPT_FORMAT = "application/vnd.centre.receipt+json"
FORMATS = ("text/plain", RECEIPT_FORMAT, "image/png", "image/jpeg")
DLE_EOT = b"\x10\x04"
STATUS_TIMEOUT = 1.0
LINE_WIDTH = 42  # characters on 80 mm paper, font A


def decode_status(printer: int, offline: int, paper: int) -> PrinterStatus:
    """Map the answers to DLE EOT 1, 2 and 4 (each: bit 1 and bit 4 set, bits 0 and 7 clear)."""
    for byte in (printer, offline, paper):
        if byte & 0x93 != 0x12:
            raise DeviceProtocolError(f"ESC/POS status byte 0x{byte:02x} is malformed")
    conditions: list[Condition] = []
    if offline & 0x04:
        conditions.append(Condition("cover-open", Severity.ERROR, "cover open"))
    if paper & 0x60 or offline & 0x20:
        conditions.append(Condition("media-empty", Severity.ERROR, "out of paper"))
    elif paper & 0x0C:
        conditions.append(Condition("media-low", Severity.WARNING, "paper near end"))
    if offline & 0x40:
        conditions.append(Condition("printer-error", Severity.ERROR, "printer error"))
    if printer & 0x08 and not conditions:
        conditions.append(Condition("offline", Severity.ERROR, "printer offline"))
    state = PrinterState.STOPPED if any(c.severity == Severity.ERROR for c in conditions) else PrinterState.IDLE
    return PrinterStatus(state, tuple(conditions))


def plain(text: str) -> str:
    """Receipt printers rarely have Vietnamese code pages: print 'Phường' as 'Phuong'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def render(document: PrintDocument) -> bytes:
    """ESC/POS bytes for one document, ending with a cut."""
    from escpos.printer import Dummy
    from PIL import Image, UnidentifiedImageError

    out = Dummy(profile="TM-T88III")
    if document.mime_type == "text/plain":
        try:
            text = document.data.decode("utf-8")
        except UnicodeDecodeError:
            raise DataFormatError("text/plain document is not UTF-8") from None
        for line in text.splitlines():
            out.textln(plain(line))
    elif document.mime_type == RECEIPT_FORMAT:
        _render_receipt(out, document.data)
    elif document.mime_type in ("image/png", "image/jpeg"):
        try:
            image = Image.open(io.BytesIO(document.data))
            image.load()
        except (UnidentifiedImageError, OSError):
            raise DataFormatError(f"{document.mime_type} document does not decode") from None
        out.image(image.convert("L"), center=True)
    else:
        raise InvalidRequestError(f"ESC/POS printers do not take {document.mime_type}",
                                  reason="UNSUPPORTED_FORMAT")
    out.cut()
    data: bytes = out.output
    return data * max(1, document.copies)


def _render_receipt(out: Any, raw: bytes) -> None:
    try:
        receipt = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataFormatError("receipt document is not JSON") from None
    if not isinstance(receipt, dict):
        raise DataFormatError("receipt document must be a JSON object")
    title, footer, qr = receipt.get("title", ""), receipt.get("footer", ""), receipt.get("qr", "")
    lines = receipt.get("lines", [])
    if not all(isinstance(v, str) for v in (title, footer, qr)) or not isinstance(lines, list):
        raise DataFormatError("receipt title, footer and qr are strings; lines is a list")
    if title:
        out.set(align="center", bold=True, double_height=True)
        out.textln(plain(title))
        out.set(align="left", bold=False, normal_textsize=True)
    for line in lines:
        if isinstance(line, str):
            out.textln(plain(line))
        elif isinstance(line, list) and len(line) == 2 and all(isinstance(p, str) for p in line):
            left, right = plain(line[0]), plain(line[1])
            gap = max(1, LINE_WIDTH - len(left) - len(right))
            out.textln(left + " " * gap + right)
        else:
            raise DataFormatError("a receipt line is a string or a [left, right] pair")
    if qr:
        out.set(align="center")
        out.qr(qr, size=6)
        out.set(align="left")
    if footer:
        out.set(align="center")
        out.textln(plain(footer))
        out.set(align="left")
    out.print_and_feed(3)


class Link(Protocol):
    """A blocking byte pipe to the printer (run through ``ctx.run_blocking``)."""

    def write(self, data: bytes) -> None: ...
    def query(self, request: bytes, timeout: float) -> bytes: ...
    def close(self) -> None: ...


class SerialLink:
    def __init__(self, device: str, baudrate: int) -> None:
        import serial

        try:
            self._port = serial.Serial(device, baudrate=baudrate, timeout=STATUS_TIMEOUT, write_timeout=30)
        except (serial.SerialException, OSError) as exc:
            raise DeviceUnavailableError(f"cannot open serial port {device}: {exc.__class__.__name__}"
                                         ) from None

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def query(self, request: bytes, timeout: float) -> bytes:
        self._port.reset_input_buffer()
        self._port.write(request)
        self._port.timeout = timeout
        answer: bytes = self._port.read(1)
        return answer

    def close(self) -> None:
        self._port.close()


class TcpLink:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        try:
            self._sock = socket.create_connection((host, int(port)), timeout=5)
        except (OSError, ValueError) as exc:
            raise DeviceUnavailableError(f"cannot reach ESC/POS printer {address}: {exc.__class__.__name__}"
                                         ) from None

    def write(self, data: bytes) -> None:
        self._sock.settimeout(30)
        self._sock.sendall(data)

    def query(self, request: bytes, timeout: float) -> bytes:
        self._sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(4096):
                pass  # drop stale bytes
        self._sock.settimeout(timeout)
        self._sock.sendall(request)
        try:
            return self._sock.recv(1)
        except TimeoutError:
            return b""

    def close(self) -> None:
        self._sock.close()


class EscposPrinter(Printer):
    job_poll_interval: ClassVar[float] = 0.05

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, config: EscposPrinterOptions,
                 poll_interval: float) -> None:
        super().__init__(descriptor, ctx)
        self._config = config
        self._poll_interval = poll_interval
        self._link: Link | None = None
        self._lock = asyncio.Lock()
        self._status: PrinterStatus | None = None
        self._error = ""
        self._poller: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._jobs: dict[str, PrintJobStatus] = {}
        self._printed = 0

    def capabilities(self) -> Capabilities:
        return Capabilities(frozenset({"receipt", "cut", "qr"}))

    def printer_capabilities(self) -> PrinterCapabilities:
        return PrinterCapabilities(document_formats=FORMATS, max_copies=9)

    def health(self) -> DeviceHealth:
        counters = {"jobs_printed": self._printed}
        status = self._status
        if self._link is None and status is None:
            return DeviceHealth(DeviceState.PRESENT, counters=counters)
        if status is None:
            return DeviceHealth(DeviceState.ERROR, (Condition("offline", Severity.ERROR, "not answering"),),
                                counters=counters, last_error=self._error)
        state = DeviceState.ERROR if status.state == PrinterState.STOPPED else DeviceState.READY
        return DeviceHealth(state, status.conditions, counters=counters, last_error=self._error)

    def _connect(self) -> Link:
        if self._config.device:
            return SerialLink(self._config.device, self._config.baudrate)
        return TcpLink(self._config.address)

    async def open(self) -> None:
        if self._link is None:
            self._link = await self._ctx.run_blocking(self._connect)
        await self._refresh()
        if self._status is None:
            await self.close()
            raise DeviceUnavailableError(f"ESC/POS printer {self.descriptor.name} does not answer")
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name=f"escpos-poll {self.descriptor.name}")

    async def close(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(Exception):
                await self._ctx.run_blocking(link.close)

    async def _query(self) -> PrinterStatus:
        link = self._link
        if link is None:
            raise DeviceUnavailableError(f"ESC/POS printer {self.descriptor.name} is not open")
        answers = []
        for n in (1, 2, 4):
            answer = await self._ctx.run_blocking(link.query, DLE_EOT + bytes((n,)), STATUS_TIMEOUT)
            if len(answer) != 1:
                raise DeviceUnavailableError(f"ESC/POS printer {self.descriptor.name} did not answer DLE EOT")
            answers.append(answer[0])
        return decode_status(*answers)

    async def _refresh(self) -> None:
        async with self._lock:
            try:
                status: PrinterStatus | None = await self._query()
                error = ""
            except (AgentError, OSError) as exc:
                status, error = None, getattr(exc, "message", exc.__class__.__name__)
        previous, self._status, self._error = self._status, status, error
        if previous != status:
            codes = ", ".join(c.code for c in status.conditions) if status else "not answering"
            self._ctx.logger.info("ESC/POS printer %s: %s", self.descriptor.name, codes or "ready")
            self._ctx.health_changed(self)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            await self._refresh()

    async def printer_status(self) -> PrinterStatus:
        await self._refresh()
        if self._status is None:
            raise DeviceUnavailableError(f"ESC/POS printer {self.descriptor.name} not answering: {self._error}")
        return self._status

    async def submit(self, document: PrintDocument) -> str:
        if document.mime_type not in FORMATS:
            raise InvalidRequestError(f"ESC/POS printer {self.descriptor.name} does not take "
                                      f"{document.mime_type} (it takes {', '.join(FORMATS)})",
                                      reason="UNSUPPORTED_FORMAT")
        data = await self._ctx.run_blocking(render, document)
        status = await self.printer_status()
        blocking = [c for c in status.conditions if c.severity == Severity.ERROR]
        if blocking:
            code = blocking[0].code
            reason = {"media-empty": "MEDIA_EMPTY", "cover-open": "COVER_OPEN"}.get(code, "PRINTER_ERROR")
            raise DeviceStateError(f"ESC/POS printer {self.descriptor.name}: {blocking[0].message}",
                                   reason=reason)
        link = self._link
        if link is None:
            raise DeviceUnavailableError(f"ESC/POS printer {self.descriptor.name} is not open")
        async with self._lock:
            try:
                await self._ctx.run_blocking(link.write, data)
            except OSError as exc:
                raise DeviceUnavailableError(f"ESC/POS printer {self.descriptor.name}: write failed "
                                             f"({exc.__class__.__name__})") from None
        job_id = f"escpos-{next(self._ids)}"
        self._printed += 1
        # ESC/POS has no job model: the job is done once the printer took every byte
        self._jobs[job_id] = PrintJobStatus(PrintJobState.COMPLETED, job_id, ("job-completed-successfully",),
                                            pages_printed=max(1, document.copies))
        return job_id

    async def job_status(self, printer_job_id: str) -> PrintJobStatus:
        try:
            return self._jobs[printer_job_id]
        except KeyError:
            raise NotFoundError(f"ESC/POS printer has no job {printer_job_id}") from None

    async def cancel(self, printer_job_id: str) -> None:
        await self.job_status(printer_job_id)  # finished on submit: nothing to cancel


class EscposBackend(DeviceBackend):
    name: ClassVar[str] = "escpos"
    family: ClassVar[DeviceFamily] = DeviceFamily.PRINTER

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        opts = typed_options(EscposOptions, options)
        self._printers: list[EscposPrinterOptions] = opts.printers
        self._poll_interval = opts.poll_interval
        self.devices: list[EscposPrinter] = []

    async def start(self) -> None:
        for config in self._printers:
            where = config.device or config.address
            connection = "serial" if config.device else "network"
            key = f"{connection}:{where}"
            descriptor = DeviceDescriptor(
                family=self.family, backend=self.name, stable_key=key,
                name=config.name or f"Receipt printer {where}", vendor=config.vendor,
                model="ESC/POS", connection=connection, address=where)
            device = EscposPrinter(descriptor, self._ctx, config, self._poll_interval)
            self.devices.append(device)
            self._ctx.device_found(device)

    async def stop(self) -> None:
        for device in self.devices:
            await device.close()
        self.devices.clear()
