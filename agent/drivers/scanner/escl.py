"""eSCL (AirScan) network scanners: an async HTTP client and the :class:`Scanner` device on it.

Protocol (Mopria eSCL): ``GET ScannerCapabilities``, ``GET ScannerStatus``,
``POST ScanJobs`` -> 201 + ``Location``, ``GET {job}/NextDocument`` until 404,
``DELETE {job}`` to cancel; 503 means "busy, retry later". XML is parsed with the
standard library after refusing any DTD (so no entity expansion can happen).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from xml.etree import ElementTree

import httpx

from agent.domain.device import Capabilities, DeviceDescriptor, DeviceHealth, DeviceState
from agent.domain.scanner import (
    ColorMode,
    PageFormat,
    ScannedPage,
    ScannerCapabilities,
    ScanSettings,
    ScanSource,
)
from agent.drivers.base import DriverContext, Scanner
from agent.drivers.scanner.health import ScannerHealth
from agent.drivers.scanner.page_encoding import transcode_jpeg
from agent.drivers.scanner.tls_pins import CertificatePins, TlsPolicy
from agent.errors import (
    AgentError,
    DataFormatError,
    DeviceBusyError,
    DeviceGoneError,
    DeviceProtocolError,
    DeviceStateError,
    DeviceUnavailableError,
    InvalidRequestError,
)

PWG = "http://www.pwg.org/schemas/2010/12/sm"
SCAN = "http://schemas.hp.com/imaging/escl/2011/05/03"
_NS = {"pwg": PWG, "scan": SCAN}
_MM_PER_300TH = 25.4 / 300
_MODE_TO_ESCL = {ColorMode.COLOR: "RGB24", ColorMode.GRAY: "Grayscale8", ColorMode.BW: "BlackAndWhite1"}
_ESCL_TO_MODE = {v: k for k, v in _MODE_TO_ESCL.items()}
#: Largest XML document or page accepted from a device.
_MAX_XML = 1 << 20
_MAX_PAGE = 256 << 20
#: ScannerStatus AdfState values that are faults, with the reason the client gets.
_ADF_FAULTS = {
    "ScannerAdfJam": ("PAPER_JAM", "paper jam in the document feeder"),
    "ScannerAdfMispick": ("PAPER_JAM", "the document feeder failed to pick a sheet"),
    "ScannerAdfHatchOpen": ("COVER_OPEN", "the document feeder cover is open"),
    "ScannerAdfDoorOpen": ("COVER_OPEN", "the document feeder cover is open"),
    "ScannerAdfEmpty": ("FEEDER_EMPTY", "the document feeder is empty"),
}


def parse_xml(data: bytes) -> ElementTree.Element:
    """Parse a device's XML answer; DTDs (hence entities) are refused outright."""
    if len(data) > _MAX_XML:
        raise DeviceProtocolError("eSCL answer too large")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise DeviceProtocolError("eSCL answer carries a DTD; refused")
    try:
        return ElementTree.fromstring(data)  # noqa: S314 - DTD/entities refused above
    except ElementTree.ParseError as exc:
        raise DeviceProtocolError("eSCL answer is not well-formed XML") from exc


def _text(node: ElementTree.Element, path: str, default: str = "") -> str:
    found = node.find(path, _NS)
    return found.text.strip() if found is not None and found.text else default


@dataclass(frozen=True, slots=True)
class EsclCapabilities:
    make_and_model: str
    serial: str
    uuid: str
    scanner: ScannerCapabilities
    duplex: bool


@dataclass(frozen=True, slots=True)
class JobInfo:
    uri: str
    state: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EsclStatus:
    state: str  # Idle | Processing | Testing | Stopped | Down
    adf_state: str
    jobs: tuple[JobInfo, ...]

    def job(self, job_url: str) -> JobInfo | None:
        path = httpx.URL(job_url).path
        return next((j for j in self.jobs if j.uri and httpx.URL(j.uri).path == path), None)


def parse_capabilities(root: ElementTree.Element) -> EsclCapabilities:
    sources: list[ScanSource] = []
    resolutions: set[int] = set()
    modes: set[ColorMode] = set()
    max_w = max_h = 0
    sections = (
        ("scan:Platen/scan:PlatenInputCaps", ScanSource.FLATBED),
        ("scan:Adf/scan:AdfSimplexInputCaps", ScanSource.ADF),
        ("scan:Adf/scan:AdfDuplexInputCaps", ScanSource.ADF_DUPLEX),
    )
    for path, source in sections:
        caps = root.find(path, _NS)
        if caps is None:
            continue
        sources.append(source)
        max_w = max(max_w, int(_text(caps, "scan:MaxWidth", "0")))
        max_h = max(max_h, int(_text(caps, "scan:MaxHeight", "0")))
        for mode in caps.iterfind(".//scan:ColorModes/scan:ColorMode", _NS):
            if mode.text and mode.text.strip() in _ESCL_TO_MODE:
                modes.add(_ESCL_TO_MODE[mode.text.strip()])
        for res in caps.iterfind(".//scan:DiscreteResolution/scan:XResolution", _NS):
            if res.text and res.text.strip().isdigit():
                resolutions.add(int(res.text))
        for rng in caps.iterfind(".//scan:ResolutionRange", _NS):
            low = int(_text(rng, "scan:XResolutionRange/scan:Min", "0"))
            high = int(_text(rng, "scan:XResolutionRange/scan:Max", "0"))
            resolutions.update(r for r in (75, 100, 150, 200, 300, 600, 1200) if low <= r <= high)
    adf_duplex = ScanSource.ADF_DUPLEX in sources or any(
        o.text == "Duplex" for o in root.iterfind("scan:Adf/scan:AdfOptions/scan:AdfOption", _NS)
    )
    if adf_duplex and ScanSource.ADF in sources and ScanSource.ADF_DUPLEX not in sources:
        sources.append(ScanSource.ADF_DUPLEX)
    if not sources or not resolutions or not modes:
        raise DeviceProtocolError("eSCL capabilities name no usable source, resolution or mode")
    scanner = ScannerCapabilities(
        sources=tuple(sources),
        resolutions=tuple(sorted(resolutions)),
        color_modes=tuple(m for m in ColorMode if m in modes),
        max_width_mm=round(max_w * _MM_PER_300TH, 1),
        max_height_mm=round(max_h * _MM_PER_300TH, 1),
        formats=(PageFormat.JPEG, PageFormat.PNG, PageFormat.RAW_GRAY8, PageFormat.RAW_RGB8),
    )
    return EsclCapabilities(
        make_and_model=_text(root, "pwg:MakeAndModel"),
        serial=_text(root, "pwg:SerialNumber"),
        uuid=_text(root, "scan:UUID"),
        scanner=scanner,
        duplex=adf_duplex,
    )


def parse_status(root: ElementTree.Element) -> EsclStatus:
    jobs = tuple(
        JobInfo(
            uri=_text(info, "pwg:JobUri"),
            state=_text(info, "pwg:JobState"),
            reasons=tuple(r.text.strip() for r in info.iterfind(".//pwg:JobStateReason", _NS) if r.text),
        )
        for info in root.iterfind("scan:Jobs/scan:JobInfo", _NS)
    )
    return EsclStatus(state=_text(root, "pwg:State"), adf_state=_text(root, "scan:AdfState"), jobs=jobs)


def scan_settings_xml(settings: ScanSettings) -> bytes:
    """The ScanSettings request body for ``settings`` (JPEG, one region from the origin)."""
    root = ElementTree.Element(f"{{{SCAN}}}ScanSettings")

    def el(parent: ElementTree.Element, tag: str, text: str | int | None = None) -> ElementTree.Element:
        prefix, _, name = tag.partition(":")
        child = ElementTree.SubElement(parent, f"{{{_NS[prefix]}}}{name}")
        if text is not None:
            child.text = str(text)
        return child

    el(root, "pwg:Version", "2.63")
    el(root, "scan:Intent", "Document")
    region = el(el(root, "pwg:ScanRegions"), "pwg:ScanRegion")
    el(region, "pwg:ContentRegionUnits", "escl:ThreeHundredthsOfInches")
    el(region, "pwg:XOffset", 0)
    el(region, "pwg:YOffset", 0)
    el(region, "pwg:Width", round(settings.width_mm / _MM_PER_300TH))
    el(region, "pwg:Height", round(settings.height_mm / _MM_PER_300TH))
    el(root, "pwg:InputSource", "Platen" if settings.source == ScanSource.FLATBED else "Feeder")
    if settings.source != ScanSource.FLATBED:
        el(root, "scan:Duplex", "true" if settings.source == ScanSource.ADF_DUPLEX else "false")
    el(root, "scan:ColorMode", _MODE_TO_ESCL[settings.color_mode])
    el(root, "scan:XResolution", settings.resolution)
    el(root, "scan:YResolution", settings.resolution)
    el(root, "pwg:DocumentFormat", "image/jpeg")
    el(root, "scan:DocumentFormatExt", "image/jpeg")
    ElementTree.register_namespace("pwg", PWG)
    ElementTree.register_namespace("scan", SCAN)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root)


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a transport error comes from a certificate that failed verification."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class EsclClient:
    """Async eSCL client for one scanner at ``base_url`` (e.g. ``http://host:port/eSCL``).

    Errors: connection failures raise :class:`DeviceUnavailableError` (or
    :class:`DeviceGoneError` inside a job), 503 is retried with exponential backoff up
    to ``busy_retries`` times and then raises :class:`DeviceBusyError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        busy_retries: int = 5,
        retry_delay: float = 0.5,
        max_retry_delay: float = 4.0,
        tls: TlsPolicy = TlsPolicy.VERIFY,
        pins: CertificatePins | None = None,
        pin_key: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._pins = pins if pins is not None else CertificatePins(None)
        self._pin_key = pin_key or self.base_url
        verify: bool | ssl.SSLContext = tls is TlsPolicy.VERIFY
        hooks: dict[str, list[Callable[[httpx.Response], Awaitable[None]]]] = {}
        if tls is TlsPolicy.PIN:
            # no CA check: the certificate itself is compared with the pinned one, on every response
            verify = ssl.create_default_context()
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
            hooks["response"] = [self._check_pin]
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0), follow_redirects=False, verify=verify, event_hooks=hooks
        )
        self._busy_retries = busy_retries
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _check_pin(self, response: httpx.Response) -> None:
        """Before any of a response is used: the scanner's certificate is the pinned one."""
        if response.url.scheme != "https":
            return
        stream = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            await response.aclose()
            raise DeviceUnavailableError(f"scanner at {self.base_url} showed no TLS certificate to check",
                                         reason="TLS_UNTRUSTED")
        if not self._pins.check(self._pin_key, hashlib.sha256(der).hexdigest()):
            await response.aclose()
            raise DeviceUnavailableError(
                f"scanner at {self.base_url} presents another TLS certificate than the one pinned when it was "
                f"first seen (replaced, or someone in between); if it was replaced, delete its entry from "
                f"{self._pins.path or 'the pin file'}", reason="TLS_CERTIFICATE_CHANGED")

    async def _request(
        self, method: str, url: str, *, in_job: bool = False, content: bytes | None = None
    ) -> httpx.Response:
        delay = self._retry_delay
        for attempt in range(self._busy_retries + 1):
            try:
                headers = {"Content-Type": "text/xml"} if content is not None else None
                response = await self._http.request(method, url, content=content, headers=headers)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                if in_job:
                    raise DeviceGoneError(
                        "scanner stopped answering during the scan; the partial page was discarded"
                    ) from exc
                if _certificate_refused(exc):
                    raise DeviceUnavailableError(
                        f"scanner at {self.base_url} presents a TLS certificate no trusted CA vouches for "
                        "(drivers.escl.tls = \"pin\" trusts it on first use)", reason="TLS_UNTRUSTED") from exc
                raise DeviceUnavailableError(f"scanner at {self.base_url} is not reachable") from exc
            if response.status_code != 503:
                return response
            if attempt < self._busy_retries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
        raise DeviceBusyError("scanner is busy (503) and stayed busy")

    async def _xml(self, path: str) -> ElementTree.Element:
        response = await self._request("GET", f"{self.base_url}/{path}")
        if response.status_code != 200:
            raise DeviceProtocolError(f"GET {path} answered HTTP {response.status_code}")
        return parse_xml(response.content)

    async def capabilities(self) -> EsclCapabilities:
        return parse_capabilities(await self._xml("ScannerCapabilities"))

    async def status(self) -> EsclStatus:
        return parse_status(await self._xml("ScannerStatus"))

    async def create_job(self, settings: ScanSettings) -> str:
        """POST ScanJobs; returns the job URL. 409 (not ready) is explained from ScannerStatus."""
        response = await self._request("POST", f"{self.base_url}/ScanJobs", content=scan_settings_xml(settings))
        if response.status_code == 201:
            location = response.headers.get("location", "")
            if not location:
                raise DeviceProtocolError("ScanJobs answered 201 without a Location")
            # Only the path is used: devices often put a host name in Location that this PC cannot
            # resolve (or another address altogether); the job lives where the scanner answered.
            path = httpx.URL(location).path
            if not path.startswith("/"):
                path = httpx.URL(self.base_url + "/").join(location).path
            return str(httpx.URL(self.base_url).copy_with(path=path.rstrip("/"), query=None))
        if response.status_code == 409:
            raise await self.fault_from_status(None, pages=0, source=settings.source) or DeviceStateError(
                "scanner is not ready to scan", reason="NOT_READY"
            )
        if response.status_code == 400:
            raise InvalidRequestError("the scanner refused these scan settings")
        raise DeviceProtocolError(f"ScanJobs answered HTTP {response.status_code}")

    async def next_document(self, job_url: str) -> bytes | None:
        """The next page of the job, or None when the job has no more (404)."""
        try:
            async with self._http.stream("GET", f"{job_url}/NextDocument") as response:
                if response.status_code == 503:
                    await response.aclose()
                    return await self._next_document_after_busy(job_url)
                if response.status_code == 404:
                    return None
                if response.status_code != 200:
                    raise DeviceProtocolError(f"NextDocument answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_PAGE:
                        raise DeviceProtocolError("page larger than the accepted maximum")
                return bytes(body)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise DeviceGoneError("scanner went away during the scan; the partial page was discarded") from exc

    async def _next_document_after_busy(self, job_url: str) -> bytes | None:
        response = await self._request("GET", f"{job_url}/NextDocument", in_job=True)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise DeviceProtocolError(f"NextDocument answered HTTP {response.status_code}")
        return response.content

    async def delete_job(self, job_url: str) -> None:
        with contextlib.suppress(AgentError, httpx.HTTPError):
            await self._http.delete(job_url, timeout=3.0)

    async def fault_from_status(self, job_url: str | None, *, pages: int, source: ScanSource) -> AgentError | None:
        """Why a job ended or could not start, from ScannerStatus; None when it ended normally."""
        try:
            status = await self.status()
        except AgentError as exc:
            if job_url is None:
                return exc
            # the job already ended with a 404: its pages were delivered whole
            return None if pages else DeviceGoneError("scanner went away during the scan")
        job = status.job(job_url) if job_url else None
        fault = _ADF_FAULTS.get(status.adf_state) if source != ScanSource.FLATBED else None
        if fault is not None and fault[0] == "FEEDER_EMPTY" and pages > 0:
            fault = None  # the feeder ran out after the last sheet: a normal end
        if fault is None and job is not None and job.state == "Aborted":
            fault = ("SCAN_FAILED", "the scanner aborted the job")
        if fault is None and job_url is None and status.state in ("Stopped", "Down"):
            fault = ("NOT_READY", "scanner is stopped")
        if fault is None:
            return None
        return DeviceStateError(fault[1], reason=fault[0])


class EsclScanner(Scanner):
    """One eSCL scanner."""

    def __init__(
        self,
        descriptor: DeviceDescriptor,
        ctx: DriverContext,
        client: EsclClient,
        caps: EsclCapabilities,
        status_interval: float = 60.0,
    ) -> None:
        super().__init__(descriptor, ctx)
        self._client = client
        self._caps = caps
        self._health = ScannerHealth(descriptor.name, ctx.logger, lambda: ctx.health_changed(self))
        self._job_lock = asyncio.Lock()
        self._status_interval = status_interval
        self._poller: asyncio.Task[None] | None = None

    @property
    def client(self) -> EsclClient:
        return self._client

    def capabilities(self) -> Capabilities:
        features = {"escl", "network"}
        if ScanSource.ADF in self._caps.scanner.sources:
            features.add("adf")
        if self._caps.duplex:
            features.add("adf_duplex")
        return Capabilities(features=frozenset(features))

    def scanner_capabilities(self) -> ScannerCapabilities:
        return self._caps.scanner

    def health(self) -> DeviceHealth:
        return self._health.snapshot()

    async def open(self) -> None:
        """Check the scanner answers, then watch its status while idle (every ``status_interval``
        seconds; 0 = never), so an offline scanner or a pending jam shows in health without a job."""
        await self._client.status()
        if self._status_interval > 0 and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._watch_status())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        with contextlib.suppress(Exception):
            await self._client.aclose()

    async def poll_status(self) -> None:
        """One idle status poll (skipped while a job runs)."""
        if self._job_lock.locked():
            return
        try:
            status = await self._client.status()
        except AgentError:
            self._health.observed(reachable=False)
            return
        fault = _ADF_FAULTS.get(status.adf_state)
        error = DeviceStateError(fault[1], reason=fault[0]) if fault else None
        self._health.observed(reachable=True, fault=error)

    async def _watch_status(self) -> None:
        while True:
            await asyncio.sleep(self._status_interval)
            await self.poll_status()

    async def scan(self, settings: ScanSettings) -> AsyncIterator[ScannedPage]:
        if settings.source not in self._caps.scanner.sources:
            raise InvalidRequestError(f"source {settings.source} is not offered by this scanner")
        if self._job_lock.locked():
            raise DeviceBusyError("scanner is running another job")
        async with self._job_lock:
            self._health.job_started()
            job_url: str | None = None
            finished = False
            pages = 0
            try:
                job_url = await self._client.create_job(settings)
                while True:
                    data = await self._client.next_document(job_url)
                    if data is None:
                        break
                    page = await self._ctx.run_blocking(
                        transcode_jpeg, pages, data, settings.resolution, settings.page_format
                    )
                    pages += 1
                    self._health.page_scanned()
                    yield page
                fault = await self._client.fault_from_status(job_url, pages=pages, source=settings.source)
                if fault is not None:
                    raise fault
                if not pages:
                    raise DeviceProtocolError("the scanner ended the job without a page")
                finished = True
                self._health.job_finished()
            except DataFormatError as exc:
                error = DeviceProtocolError("scanner sent a page that does not decode")
                self._health.job_failed(error)
                raise error from exc
            except AgentError as exc:
                self._health.job_failed(exc)
                raise
            finally:
                if not finished:
                    if job_url is not None:
                        await self._client.delete_job(job_url)
                    if self._health.snapshot().state == DeviceState.BUSY:
                        self._health.job_finished()  # cancelled by the client
