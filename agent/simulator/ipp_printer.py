"""An emulated IPP Everywhere printer on 127.0.0.1, speaking real IPP over HTTP/1.1.

It is what ``--simulate`` prints to (through the real IPP backend) and a peer for
tests: enough of the RFC 8011 model for the agent (Get-Printer-Attributes,
Validate-Job, Print-Job, Get-Job-Attributes, Cancel-Job), one job at a time
(a second one gets server-error-busy), supplies as ``marker-*`` attributes, and
fault injection from Python or over HTTP::

    GET /faults?toner=5              toner level, percent (<=10 low, 0 empty)
    GET /faults?paper=0              sheets in the tray (0: media-empty, jobs wait)
    GET /faults?reasons=+media-jam,cover-open   add or (with -) remove state reasons
    GET /faults?busy=1               answer every Print-Job with server-error-busy

Document data is counted and dropped, never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import time
import urllib.parse
from dataclasses import dataclass, field

from agent.drivers.printer.ipp_codec import (
    Attribute,
    AttributeGroup,
    Collection,
    GroupTag,
    IntRange,
    IppMessage,
    Resolution,
    ValueTag,
    decode,
    encode,
)
from agent.errors import DataFormatError

_OPERATIONS = {0x0002: "print_job", 0x0004: "validate_job", 0x0008: "cancel_job",
               0x0009: "get_job_attributes", 0x000B: "get_printer_attributes"}
_MAX_BODY = 64 * 1024 * 1024
_BLOCKING_REASONS = frozenset({"media-jam", "cover-open", "door-open", "media-empty"})


@dataclass
class _Job:
    job_id: int
    name: str
    state: int = 3  # pending
    reasons: tuple[str, ...] = ("none",)
    impressions: int = 0
    created: float = field(default_factory=time.time)
    task: asyncio.Task[None] | None = None


class EmulatedIppPrinter:
    """One emulated printer. ``await start()``, then point an IPP client at :attr:`uri`."""

    def __init__(self, name: str = "Simulated IPP printer", *, job_seconds: float = 0.05,
                 formats: tuple[str, ...] = ("application/pdf", "image/jpeg", "image/pwg-raster"),
                 uuid: str = "urn:uuid:5a1e0000-cafe-4e00-8000-000000000001") -> None:
        self.name = name
        self.job_seconds = job_seconds
        self.formats = formats
        self.uuid = uuid
        self.toner = 80
        self.paper = 250
        self.busy = False
        self.extra_reasons: set[str] = set()
        self.jobs: dict[int, _Job] = {}
        self.documents_received = 0
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._port = 0
        self._started = time.monotonic()
        self._wake = asyncio.Event()
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self._port}/ipp/print"

    @property
    def port(self) -> int:
        return self._port

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # end open keep-alive connections the way a powered-off printer would: abruptly
        for writer in self._connections.values():
            writer.transport.abort()
        if self._connections:
            await asyncio.wait(list(self._connections))
        if server is not None:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for job in self.jobs.values():
            if job.task is not None:
                job.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job.task

    # -- fault injection -------------------------------------------------------------------------

    def set_reasons(self, spec: str) -> None:
        """``+media-jam,cover-open`` adds, ``-media-jam`` removes, a bare list replaces."""
        mode, names = (spec[0], spec[1:]) if spec[:1] in "+-" else ("=", spec)
        keywords = {k.strip() for k in names.split(",") if k.strip()}
        if mode == "+":
            self.extra_reasons |= keywords
        elif mode == "-":
            self.extra_reasons -= keywords
        else:
            self.extra_reasons = keywords
        self._wake.set()

    def set_paper(self, sheets: int) -> None:
        self.paper = sheets
        self._wake.set()

    def apply_faults(self, query: str) -> None:
        params = urllib.parse.parse_qs(query)
        try:
            if "toner" in params:
                self.toner = max(0, min(100, int(params["toner"][0])))
            if "paper" in params:
                self.set_paper(max(0, int(params["paper"][0])))
        except ValueError:
            raise DataFormatError("fault levels are integers") from None
        if "reasons" in params:
            self.set_reasons(params["reasons"][0])
        if "busy" in params:
            self.busy = params["busy"][0] not in ("0", "")

    # -- model -----------------------------------------------------------------------------------

    def _active(self) -> _Job | None:
        return next((j for j in self.jobs.values() if j.state in (3, 4, 5, 6)), None)

    def state_reasons(self) -> list[str]:
        reasons = [f"{r}-error" for r in sorted(self.extra_reasons)]
        if self.paper == 0:
            reasons.append("media-empty-error")
            if self._active() is not None:
                reasons.append("media-needed-error")
        if self.toner == 0:
            reasons.append("toner-empty-error")
        elif self.toner <= 10:
            reasons.append("toner-low-warning")
        return reasons or ["none"]

    def _blocked(self) -> bool:
        return self.paper == 0 or bool(self.extra_reasons & _BLOCKING_REASONS)

    def printer_state(self) -> int:
        if self._active() is not None:
            return 5 if self._blocked() else 4
        return 3

    def _printer_attributes(self) -> list[Attribute]:
        a, t = Attribute.of, ValueTag
        return [
            a("printer-uri-supported", t.URI, self.uri),
            a("uri-authentication-supported", t.KEYWORD, "none"),
            a("uri-security-supported", t.KEYWORD, "none"),
            a("printer-name", t.NAME, self.name),
            a("printer-info", t.TEXT, self.name),
            a("printer-location", t.TEXT, "counter"),
            a("printer-more-info", t.URI, f"http://127.0.0.1:{self._port}/"),
            a("printer-make-and-model", t.TEXT, "centre-devices Emulated IPP Everywhere"),
            a("printer-uuid", t.URI, self.uuid),
            a("printer-state", t.ENUM, self.printer_state()),
            a("printer-state-reasons", t.KEYWORD, *self.state_reasons()),
            a("printer-state-message", t.TEXT, "Idle." if self.printer_state() == 3 else "Printing."),
            a("printer-is-accepting-jobs", t.BOOLEAN, True),
            a("printer-up-time", t.INTEGER, int(time.monotonic() - self._started) + 1),
            a("printer-current-time", t.DATE_TIME, dt.datetime.now(dt.UTC).replace(microsecond=0)),
            a("queued-job-count", t.INTEGER, 1 if self._active() else 0),
            a("ipp-versions-supported", t.KEYWORD, "1.1", "2.0"),
            a("ipp-features-supported", t.KEYWORD, "ipp-everywhere"),
            a("operations-supported", t.ENUM, *sorted(_OPERATIONS)),
            a("charset-configured", t.CHARSET, "utf-8"),
            a("charset-supported", t.CHARSET, "utf-8"),
            a("natural-language-configured", t.NATURAL_LANGUAGE, "en"),
            a("generated-natural-language-supported", t.NATURAL_LANGUAGE, "en"),
            a("compression-supported", t.KEYWORD, "none"),
            a("document-format-default", t.MIME_MEDIA_TYPE, self.formats[0]),
            a("document-format-supported", t.MIME_MEDIA_TYPE, *self.formats),
            a("color-supported", t.BOOLEAN, False),
            a("sides-supported", t.KEYWORD, "one-sided", "two-sided-long-edge", "two-sided-short-edge"),
            a("sides-default", t.KEYWORD, "one-sided"),
            a("copies-supported", t.RANGE_OF_INTEGER, IntRange(1, 99)),
            a("copies-default", t.INTEGER, 1),
            a("media-supported", t.KEYWORD, "iso_a4_210x297mm", "iso_a5_148x210mm"),
            a("media-default", t.KEYWORD, "iso_a4_210x297mm"),
            a("media-ready", t.KEYWORD, "iso_a4_210x297mm"),
            a("media-col-default", t.BEG_COLLECTION, _media_col()),
            a("printer-resolution-supported", t.RESOLUTION, Resolution(600, 600)),
            a("pages-per-minute", t.INTEGER, 30),
            a("marker-names", t.NAME, "Black Toner"),
            a("marker-types", t.KEYWORD, "toner-cartridge"),
            a("marker-colors", t.NAME, "#000000"),
            a("marker-levels", t.INTEGER, self.toner),
            a("marker-low-levels", t.INTEGER, 10),
            a("marker-high-levels", t.INTEGER, 100),
        ]

    def _job_attributes(self, job: _Job) -> list[Attribute]:
        a, t = Attribute.of, ValueTag
        return [
            a("job-id", t.INTEGER, job.job_id),
            a("job-uri", t.URI, f"{self.uri}/{job.job_id}"),
            a("job-printer-uri", t.URI, self.uri),
            a("job-name", t.NAME, job.name),
            a("job-state", t.ENUM, job.state),
            a("job-state-reasons", t.KEYWORD, *job.reasons),
            a("job-impressions-completed", t.INTEGER, job.impressions),
            a("time-at-creation", t.INTEGER, int(job.created)),
        ]

    async def _process(self, job: _Job) -> None:
        await asyncio.sleep(0)
        job.state, job.reasons = 5, ("job-printing",)
        deadline = time.monotonic() + self.job_seconds
        while True:
            if self._blocked():
                job.state, job.reasons = 6, ("printer-stopped",)
                self._wake.clear()
                await self._wake.wait()
                job.state, job.reasons = 5, ("job-printing",)
                deadline = time.monotonic() + self.job_seconds
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)
        job.impressions = 1
        job.state, job.reasons = 9, ("job-completed-successfully",)

    # -- IPP operations --------------------------------------------------------------------------

    def handle(self, request: IppMessage) -> IppMessage:
        """Answer one IPP request."""
        operation = request.groups[0] if request.groups and request.groups[0].tag == GroupTag.OPERATION \
            else None
        if request.version[0] not in (1, 2):
            return self._reply(request, 0x0503)
        names = [attr.name for attr in operation.attributes[:2]] if operation else []
        if names != ["attributes-charset", "attributes-natural-language"]:
            return self._reply(request, 0x0400, "charset and natural language must come first")
        assert operation is not None
        method = _OPERATIONS.get(request.code)
        if method is None:
            return self._reply(request, 0x0501)
        if method == "get_printer_attributes":
            requested = operation.get("requested-attributes")
            wanted = set(requested.strings()) if requested else {"all"}
            attrs = [x for x in self._printer_attributes()
                     if wanted & {"all", "printer-description", x.name}]
            return self._reply(request, 0, groups=(AttributeGroup(GroupTag.PRINTER, tuple(attrs)),))
        if method in ("print_job", "validate_job"):
            return self._print(request, operation, dry_run=method == "validate_job")
        job_id_attr = operation.get("job-id")
        job = self.jobs.get(job_id_attr.ints()[0]) if job_id_attr and job_id_attr.ints() else None
        if job is None:
            return self._reply(request, 0x0406, "no such job")
        if method == "cancel_job":
            if job.state >= 7:
                return self._reply(request, 0x0404, "job already finished")
            if job.task is not None:
                job.task.cancel()
            job.state, job.reasons = 7, ("job-canceled-by-user",)
            return self._reply(request, 0)
        return self._reply(request, 0, groups=(AttributeGroup(GroupTag.JOB, tuple(self._job_attributes(job))),))

    def _print(self, request: IppMessage, operation: AttributeGroup, *, dry_run: bool) -> IppMessage:
        fmt_attr = operation.get("document-format")
        fmt = fmt_attr.strings()[0] if fmt_attr and fmt_attr.strings() else self.formats[0]
        if fmt not in self.formats:
            return self._reply(request, 0x040A, f"{fmt} not supported")
        if dry_run:
            return self._reply(request, 0)
        if self.busy or self._active() is not None:
            return self._reply(request, 0x0507, "printer busy")
        name_attr = operation.get("job-name")
        job = _Job(next(self._ids), name_attr.strings()[0] if name_attr and name_attr.strings() else "job")
        self.jobs[job.job_id] = job
        self.documents_received += 1
        job.task = asyncio.get_running_loop().create_task(self._process(job))
        attrs = [x for x in self._job_attributes(job) if x.name in ("job-id", "job-uri", "job-state",
                                                                     "job-state-reasons")]
        return self._reply(request, 0, groups=(AttributeGroup(GroupTag.JOB, tuple(attrs)),))

    @staticmethod
    def _reply(request: IppMessage, status: int, message: str = "",
               groups: tuple[AttributeGroup, ...] = ()) -> IppMessage:
        op = [Attribute.of("attributes-charset", ValueTag.CHARSET, "utf-8"),
              Attribute.of("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, "en")]
        if message:
            op.append(Attribute.of("status-message", ValueTag.TEXT, message))
        return IppMessage(code=status, request_id=request.request_id,
                          groups=(AttributeGroup(GroupTag.OPERATION, tuple(op)), *groups),
                          version=request.version)

    # -- HTTP/1.1 --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
            task.add_done_callback(lambda done: self._connections.pop(done, None))
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await self._read_body(reader, headers)
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        path, _, query = target.partition("?")
        if method == "POST" and headers.get("content-type", "").startswith("application/ipp"):
            try:
                reply = encode(self.handle(decode(body)))
                status = "200 OK"
            except DataFormatError:
                reply, status = b"", "400 Bad Request"
            await self._respond(writer, status, "application/ipp", reply, keep_alive)
        elif method == "GET" and path == "/faults":
            try:
                self.apply_faults(query)
                await self._respond(writer, "200 OK", "text/plain", b"ok\n", keep_alive)
            except DataFormatError as exc:
                await self._respond(writer, "400 Bad Request", "text/plain", exc.message.encode(), keep_alive)
        elif method == "GET":
            text = f"{self.name}: state {self.printer_state()}, {' '.join(self.state_reasons())}\n"
            await self._respond(writer, "200 OK", "text/plain", text.encode(), keep_alive)
        else:
            await self._respond(writer, "405 Method Not Allowed", "text/plain", b"", keep_alive)
        return keep_alive

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return bytes(chunks)
                if len(chunks) + size > _MAX_BODY:
                    raise ValueError("request body too large")
                chunks += await reader.readexactly(size)
                await reader.readexactly(2)
        length = int(headers.get("content-length", "0"))
        if not 0 <= length <= _MAX_BODY:
            raise ValueError("request body too large")
        return await reader.readexactly(length)

    @staticmethod
    async def _respond(writer: asyncio.StreamWriter, status: str, content_type: str, body: bytes,
                       keep_alive: bool) -> None:
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n".encode() + body)
        await writer.drain()


def _media_col() -> Collection:
    size = Collection((Attribute.of("x-dimension", ValueTag.INTEGER, 21000),
                       Attribute.of("y-dimension", ValueTag.INTEGER, 29700)))
    return Collection((Attribute.of("media-size", ValueTag.BEG_COLLECTION, size),
                       Attribute.of("media-size-name", ValueTag.KEYWORD, "iso_a4_210x297mm"),
                       Attribute.of("media-source", ValueTag.KEYWORD, "main"),
                       Attribute.of("media-type", ValueTag.KEYWORD, "stationery")))


def main() -> None:
    """Run the emulated printer on its own: ``python -m agent.simulator.ipp_printer [--port N]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--job-seconds", type=float, default=0.5)
    args = parser.parse_args()

    async def serve() -> None:
        printer = EmulatedIppPrinter(job_seconds=args.job_seconds)
        await printer.start(args.port)
        print(printer.uri, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await printer.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
