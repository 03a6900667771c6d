"""An eSCL (AirScan) scanner emulator: a tiny ASGI app on uvicorn, loopback only.

Used by ``--simulate`` (so the real eSCL driver code runs) and by the tests, and
kept honest by scanning from it with sane-airscan. Run it on its own with::

    python -m agent.simulator.escl_scanner --port 0 [--sheets 10] [--no-zeroconf]

It prints ``READY <port>`` once it listens.

What it does: a platen and an automatic document feeder (``sheets`` sheets, duplex
capable), synthetic A4 pages drawn with Pillow and sent as JPEG at the requested
resolution and colour mode. Faults are injected through ``POST /emulator/faults``
(form-encoded): ``jam_after=N`` (the feeder jams after N pages), ``cover_open=1``,
``busy=N`` (the next N requests answer 503), ``busy_pages=N`` (the next N NextDocument
requests answer 503, as a scanner still warming up does), ``vanish_after=N`` (after N pages the
next page is cut off mid-body and the emulator stops answering), ``sheets=N``
reloads the feeder, ``page_delay=S`` slows each page down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import signal
import socket
import sys
import uuid as uuid_module
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

import uvicorn
from PIL import Image, ImageDraw

from agent.errors import InvalidRequestError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PWG = "http://www.pwg.org/schemas/2010/12/sm"
SCAN = "http://schemas.hp.com/imaging/escl/2011/05/03"
RESOLUTIONS = (75, 150, 200, 300, 600)
#: A4 in 1/300 inch, the eSCL unit; the platen/feeder take up to US legal length.
A4_WIDTH_300, A4_HEIGHT_300 = 2480, 3508
MAX_WIDTH_300, MAX_HEIGHT_300 = 2550, 4200
_MODES = {"RGB24": "RGB", "Grayscale8": "L", "BlackAndWhite1": "1"}


@dataclass
class EmulatedJob:
    uuid: str
    source: str  # Platen | Feeder
    duplex: bool
    mode: str  # PIL mode
    resolution: int
    width_px: int
    height_px: int
    state: str = "Processing"  # Processing | Completed | Canceled | Aborted
    reason: str = "JobScanning"
    pages_done: int = 0


@dataclass
class EmulatorState:
    """The emulated device; tests change it through ``/emulator/faults``."""

    name: str = "Centre eSCL Emulator"
    uuid: str = field(default_factory=lambda: str(uuid_module.uuid4()))
    sheets: int = 10
    reload_sheets: int = 0  # > 0: the feeder refills to this after each feeder job (simulator demos)
    jam_after: int | None = None
    cover_open: bool = False
    busy: int = 0
    busy_pages: int = 0
    vanish_after: int | None = None
    vanished: bool = False
    page_delay: float = 0.0
    empty_platen: bool = False  # a platen job ends without a page (a broken lamp, say)
    location_host: str = ""  # host to put in Location instead of the request's (real devices do)
    page_comment: str = ""  # embedded in every page's JPEG (privacy canary tests)
    jammed: bool = False
    jobs: dict[str, EmulatedJob] = field(default_factory=dict)
    pages_served: int = 0

    def adf_state(self) -> str:
        if self.cover_open:
            return "ScannerAdfHatchOpen"
        if self.jammed:
            return "ScannerAdfJam"
        return "ScannerAdfLoaded" if self.sheets > 0 else "ScannerAdfEmpty"


def _el(parent: ElementTree.Element, tag: str, text: str | int | None = None) -> ElementTree.Element:
    prefix, _, name = tag.partition(":")
    child = ElementTree.SubElement(parent, f"{{{PWG if prefix == 'pwg' else SCAN}}}{name}")
    if text is not None:
        child.text = str(text)
    return child


def _xml(root: ElementTree.Element) -> bytes:
    ElementTree.register_namespace("pwg", PWG)
    ElementTree.register_namespace("scan", SCAN)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root)


def _input_caps(parent: ElementTree.Element, tag: str) -> None:
    caps = _el(parent, tag)
    _el(caps, "scan:MinWidth", 16)
    _el(caps, "scan:MaxWidth", MAX_WIDTH_300)
    _el(caps, "scan:MinHeight", 16)
    _el(caps, "scan:MaxHeight", MAX_HEIGHT_300)
    _el(caps, "scan:MaxScanRegions", 1)
    profile = _el(_el(caps, "scan:SettingProfiles"), "scan:SettingProfile")
    modes = _el(profile, "scan:ColorModes")
    for mode in _MODES:
        _el(modes, "scan:ColorMode", mode)
    formats = _el(profile, "scan:DocumentFormats")
    _el(formats, "pwg:DocumentFormat", "image/jpeg")
    _el(formats, "scan:DocumentFormatExt", "image/jpeg")
    discrete = _el(_el(profile, "scan:SupportedResolutions"), "scan:DiscreteResolutions")
    for res in RESOLUTIONS:
        entry = _el(discrete, "scan:DiscreteResolution")
        _el(entry, "scan:XResolution", res)
        _el(entry, "scan:YResolution", res)
    intents = _el(caps, "scan:SupportedIntents")
    for intent in ("Document", "TextAndGraphic", "Photo", "Preview"):
        _el(intents, "scan:Intent", intent)


def capabilities_xml(state: EmulatorState) -> bytes:
    root = ElementTree.Element(f"{{{SCAN}}}ScannerCapabilities")
    _el(root, "pwg:Version", "2.63")
    _el(root, "pwg:MakeAndModel", state.name)
    _el(root, "pwg:SerialNumber", state.uuid[-12:])
    _el(root, "scan:UUID", state.uuid)
    _input_caps(_el(root, "scan:Platen"), "scan:PlatenInputCaps")
    adf = _el(root, "scan:Adf")
    _input_caps(adf, "scan:AdfSimplexInputCaps")
    _input_caps(adf, "scan:AdfDuplexInputCaps")
    options = _el(adf, "scan:AdfOptions")
    _el(options, "scan:AdfOption", "DetectPaperLoaded")
    _el(options, "scan:AdfOption", "Duplex")
    return _xml(root)


def status_xml(state: EmulatorState) -> bytes:
    root = ElementTree.Element(f"{{{SCAN}}}ScannerStatus")
    _el(root, "pwg:Version", "2.63")
    processing = any(job.state == "Processing" for job in state.jobs.values())
    _el(root, "pwg:State", "Processing" if processing else ("Stopped" if state.jammed else "Idle"))
    _el(root, "scan:AdfState", state.adf_state())
    jobs = _el(root, "scan:Jobs")
    for job in state.jobs.values():
        info = _el(jobs, "scan:JobInfo")
        _el(info, "pwg:JobUri", f"/eSCL/ScanJobs/{job.uuid}")
        _el(info, "pwg:JobUuid", job.uuid)
        _el(info, "scan:Age", 1)
        _el(info, "pwg:ImagesCompleted", job.pages_done)
        _el(info, "pwg:ImagesToTransfer", 0 if job.state != "Processing" else 1)
        _el(info, "pwg:JobState", job.state)
        _el(_el(info, "pwg:JobStateReasons"), "pwg:JobStateReason", job.reason)
    return _xml(root)


def _text(root: ElementTree.Element, path: str, default: str) -> str:
    found = root.find(path, {"pwg": PWG, "scan": SCAN})
    return found.text.strip() if found is not None and found.text else default


def parse_scan_settings(body: bytes) -> EmulatedJob:
    """Read a ScanSettings request (the emulator's own parser; no DTDs or entities allowed)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise InvalidRequestError("DTDs are not accepted")
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - DTD/entities rejected above
    except ElementTree.ParseError as exc:
        raise InvalidRequestError("ScanSettings is not well-formed XML") from exc
    source = _text(root, "pwg:InputSource", "Platen")
    if source not in ("Platen", "Feeder"):
        raise InvalidRequestError("unknown InputSource")
    mode = _MODES.get(_text(root, "scan:ColorMode", "RGB24"))
    if mode is None:
        raise InvalidRequestError("unknown ColorMode")
    resolution = int(_text(root, "scan:XResolution", "300"))
    if resolution not in RESOLUTIONS:
        raise InvalidRequestError("unsupported resolution")
    width = int(_text(root, "pwg:ScanRegions/pwg:ScanRegion/pwg:Width", str(A4_WIDTH_300)))
    height = int(_text(root, "pwg:ScanRegions/pwg:ScanRegion/pwg:Height", str(A4_HEIGHT_300)))
    if not (16 <= width <= MAX_WIDTH_300 and 16 <= height <= MAX_HEIGHT_300):
        raise InvalidRequestError("scan region out of range")
    fmt = _text(root, "scan:DocumentFormatExt", _text(root, "pwg:DocumentFormat", "image/jpeg"))
    if fmt != "image/jpeg":
        raise InvalidRequestError("only image/jpeg is offered")
    return EmulatedJob(
        uuid=str(uuid_module.uuid4()),
        source=source,
        duplex=_text(root, "scan:Duplex", "false").lower() == "true",
        mode=mode,
        resolution=resolution,
        width_px=max(1, width * resolution // 300),
        height_px=max(1, height * resolution // 300),
    )


def render_page(job: EmulatedJob, number: int, comment: str = "") -> bytes:
    """A synthetic page: white paper, a black frame 1/2 inch in, a grey title bar, a red
    block whose width says the page number, so clients can check what they got."""
    width, height, dpi = job.width_px, job.height_px, job.resolution
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    margin = dpi // 2
    draw.rectangle((margin, margin, width - margin, height - margin), outline=(0, 0, 0), width=max(1, dpi // 50))
    draw.rectangle((margin, margin, width - margin, margin + dpi // 2), fill=(96, 96, 96))
    unit = max(1, dpi // 10)
    draw.rectangle((margin, margin + dpi, margin + unit * (number + 1), margin + 2 * dpi), fill=(220, 0, 0))
    draw.text((margin + unit, margin + dpi // 8), f"centre-devices emulated page {number}", fill=(255, 255, 255))
    out: Image.Image = img if job.mode == "RGB" else img.convert("L")
    if job.mode == "1":
        out = out.point(lambda v: 255 if v > 128 else 0)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=85, dpi=(dpi, dpi), comment=comment.encode())
    return buf.getvalue()


class EsclEmulatorApp:
    """The ASGI application."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.vanished = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.state.vanished:
            raise ConnectionAbortedError("emulated scanner has vanished")
        method, path = scope["method"], scope["path"]
        if path == "/emulator/faults" and method == "POST":
            self._set_faults(body)
            await _respond(send, 204)
        elif path == "/eSCL/ScannerCapabilities" and method == "GET":
            await _respond(send, 200, capabilities_xml(self.state), "text/xml")
        elif path == "/eSCL/ScannerStatus" and method == "GET":
            await _respond(send, 200, status_xml(self.state), "text/xml")
        elif self._take_busy():
            await _respond(send, 503, b"busy", "text/plain", retry_after=True)
        elif path == "/eSCL/ScanJobs" and method == "POST":
            await self._create_job(scope, body, send)
        elif path.startswith("/eSCL/ScanJobs/"):
            await self._job_request(method, path.removeprefix("/eSCL/ScanJobs/"), send)
        else:
            await _respond(send, 404)

    def _take_busy(self) -> bool:
        if self.state.busy > 0:
            self.state.busy -= 1
            return True
        return False

    def _set_faults(self, body: bytes) -> None:
        form = {k: v[-1] for k, v in parse_qs(body.decode("ascii", "replace"), keep_blank_values=True).items()}
        state = self.state
        if "sheets" in form:
            state.sheets = int(form["sheets"])
            state.jammed = False
        if "jam_after" in form:
            state.jam_after = int(form["jam_after"]) if form["jam_after"] else None
            state.jammed = False
        if "cover_open" in form:
            state.cover_open = form["cover_open"] == "1"
        if "busy" in form:
            state.busy = int(form["busy"])
        if "busy_pages" in form:
            state.busy_pages = int(form["busy_pages"])
        if "vanish_after" in form:
            state.vanish_after = int(form["vanish_after"]) if form["vanish_after"] else None
        if "page_delay" in form:
            state.page_delay = float(form["page_delay"])
        if "empty_platen" in form:
            state.empty_platen = form["empty_platen"] == "1"
        if "location_host" in form:
            state.location_host = form["location_host"]
        if "page_comment" in form:
            state.page_comment = form["page_comment"]

    async def _create_job(self, scope: Scope, body: bytes, send: Send) -> None:
        try:
            job = parse_scan_settings(body)
        except (InvalidRequestError, ValueError):
            await _respond(send, 400, b"bad ScanSettings", "text/plain")
            return
        if self.state.cover_open or (job.source == "Feeder" and (self.state.sheets <= 0 or self.state.jammed)):
            await _respond(send, 409, b"not ready", "text/plain")
            return
        if any(j.state == "Processing" for j in self.state.jobs.values()):
            await _respond(send, 503, b"busy", "text/plain", retry_after=True)
            return
        self.state.jobs[job.uuid] = job
        for old in list(self.state.jobs)[:-16]:  # keep a short history, as devices do
            del self.state.jobs[old]
        host = self.state.location_host or next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "127.0.0.1"
        )
        await _respond(send, 201, location=f"http://{host}/eSCL/ScanJobs/{job.uuid}")

    async def _job_request(self, method: str, rest: str, send: Send) -> None:
        job_id, _, tail = rest.partition("/")
        job = self.state.jobs.get(job_id)
        if job is None:
            await _respond(send, 404)
        elif method == "DELETE" and not tail:
            if job.state == "Processing":
                job.state, job.reason = "Canceled", "JobCanceledByUser"
            await _respond(send, 200)
        elif method == "GET" and tail == "NextDocument":
            await self._next_document(job, send)
        else:
            await _respond(send, 405)

    async def _next_document(self, job: EmulatedJob, send: Send) -> None:
        state = self.state
        if state.busy_pages > 0:
            state.busy_pages -= 1
            await _respond(send, 503, b"busy", "text/plain", retry_after=True)
            return
        if job.state != "Processing":
            await _respond(send, 404)
            return
        if job.source == "Platen":
            if job.pages_done >= 1 or state.empty_platen:
                job.state, job.reason = "Completed", "JobCompletedSuccessfully"
                await _respond(send, 404)
                return
        else:
            sides = 2 if job.duplex else 1
            if state.cover_open:
                job.state, job.reason = "Aborted", "ResourcesAreNotReady"
                await _respond(send, 404)
                return
            if state.jam_after is not None and job.pages_done >= state.jam_after:
                state.jammed = True
                job.state, job.reason = "Aborted", "JobScanningError"
                await _respond(send, 404)
                return
            if job.pages_done % sides == 0:
                if state.sheets <= 0:
                    job.state, job.reason = "Completed", "JobCompletedSuccessfully"
                    if state.reload_sheets > 0:
                        state.sheets = state.reload_sheets
                    await _respond(send, 404)
                    return
                state.sheets -= 1
        if state.page_delay:
            await asyncio.sleep(state.page_delay)
        page = await asyncio.to_thread(render_page, job, job.pages_done, state.page_comment)
        if state.vanish_after is not None and state.pages_served >= state.vanish_after:
            state.vanished = True
            self.vanished.set()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"image/jpeg"),
                        (b"content-length", str(len(page)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": page[: len(page) // 2], "more_body": True})
            raise ConnectionAbortedError("emulated scanner vanished mid-page")
        job.pages_done += 1
        state.pages_served += 1
        await _respond(send, 200, page, "image/jpeg")


async def _respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: str = "",
    location: str = "",
    retry_after: bool = False,
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    if location:
        headers.append((b"location", location.encode()))
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def txt_record(state: EmulatorState) -> dict[str, str]:
    """DNS-SD TXT keys of an eSCL scanner (Mopria eSCL, section on mDNS)."""
    return {
        "txtvers": "1",
        "ty": state.name,
        "rs": "eSCL",
        "vers": "2.63",
        "pdl": "image/jpeg",
        "cs": "color,grayscale,binary",
        "is": "platen,adf",
        "duplex": "T",
        "uuid": state.uuid,
        "representation": "",
        "note": "",
    }


class _VanishFilter(logging.Filter):
    """The emulated disappearance aborts a response on purpose: not an error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionAbortedError))


logging.getLogger("uvicorn.error").addFilter(_VanishFilter())


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the emulator lives inside other programs."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class EsclEmulator:
    """Runs the emulator on 127.0.0.1 inside the current event loop."""

    def __init__(self, state: EmulatorState | None = None, port: int = 0, announce: bool = False, *,
                 tls_cert: str | None = None, tls_key: str | None = None) -> None:
        self.state = state or EmulatorState()
        self.app = EsclEmulatorApp(self.state)
        self._port = port
        self._announce = announce
        #: With a certificate (PEM) and its key the emulator speaks HTTPS and announces _uscans.
        self._tls = (tls_cert, tls_key) if tls_cert and tls_key else None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._zeroconf: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}/eSCL"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self.port = sock.getsockname()[1]
        tls: dict[str, Any] = {"ssl_certfile": self._tls[0], "ssl_keyfile": self._tls[1]} if self._tls else {}
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off", **tls)
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        if self._announce:
            await self._register()

    async def _register(self) -> None:
        from zeroconf import IPVersion, ServiceInfo
        from zeroconf.asyncio import AsyncZeroconf

        self._zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        service = "_uscans._tcp.local." if self._tls else "_uscan._tcp.local."
        info = ServiceInfo(
            service,
            f"{self.state.name} {self.port}.{service}",
            addresses=[socket.inet_aton("127.0.0.1")],
            port=self.port,
            properties=txt_record(self.state),
            server=f"escl-emu-{self.port}.local.",
        )
        await self._zeroconf.async_register_service(info)

    async def stop(self) -> None:
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_all_services()
            await self._zeroconf.async_close()
            self._zeroconf = None
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = None
            self._task = None


async def _main(args: argparse.Namespace) -> None:
    state = EmulatorState(name=args.name, sheets=args.sheets)
    emulator = EsclEmulator(state, port=args.port, announce=not args.no_zeroconf, tls_cert=args.tls_cert,
                            tls_key=args.tls_key)
    await emulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {emulator.port}", flush=True)
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(emulator.app.vanished.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if emulator.app.vanished.is_set():
            await asyncio.sleep(0.2)  # let the cut-off response go out, then stop answering at all
    finally:
        for waiter in waiters:
            waiter.cancel()
        await emulator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="eSCL scanner emulator (loopback only)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sheets", type=int, default=10)
    parser.add_argument("--name", default="Centre eSCL Emulator")
    parser.add_argument("--no-zeroconf", action="store_true")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (announced as _uscans)")
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
