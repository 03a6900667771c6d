"""The ``sane`` backend: USB (and other local) scanners through libsane, via python-sane.

Every SANE call runs in a worker thread (``ctx.run_blocking``); the event loop
never waits on the scanner. libsane is initialised once per process and devices
are enumerated in the background, again every ``rescan_interval`` seconds (USB
hotplug). Options (``[drivers.sane]``):

* ``rescan_interval``: seconds between enumerations (default 30; 0 = once);
* ``devices``: only these SANE device names (default: every device found);
* ``device_options``: ``{device name: {sane option: value}}`` set after the
  standard ones on every job (vendor tuning; the tests use it for fault injection).

A USB scanner's stable key comes from its USB serial number (or physical port), not from
its SANE name, which carries the device number that changes on every plug-in (see
:mod:`agent.drivers.scanner.usb_identity`).

SANE statuses map to agent errors: ``JAMMED`` -> ``PAPER_JAM``, ``NO_DOCS`` ->
``FEEDER_EMPTY`` (only when no page came yet: afterwards it is the normal end of a
feeder job), ``COVER_OPEN``, ``DEVICE_BUSY`` -> :class:`DeviceBusyError`,
``IO_ERROR`` -> :class:`DeviceGoneError` (mid-job) or
:class:`DeviceUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from agent import stop_signals
from agent.domain.device import Capabilities, DeviceDescriptor, DeviceFamily, DeviceHealth, DeviceState
from agent.domain.scanner import (
    ColorMode,
    PageFormat,
    ScannedPage,
    ScannerCapabilities,
    ScanSettings,
    ScanSource,
)
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext, Scanner
from agent.drivers.options import SaneOptions, typed_options
from agent.drivers.scanner.health import ScannerHealth
from agent.drivers.scanner.page_encoding import encode_frame
from agent.drivers.scanner.usb_identity import SYSFS, sane_stable_key
from agent.errors import (
    AgentError,
    ConfigError,
    DeviceBusyError,
    DeviceGoneError,
    DeviceProtocolError,
    DeviceStateError,
    DeviceUnavailableError,
    InvalidRequestError,
    NotSupportedError,
)

_STANDARD_RESOLUTIONS = (75, 100, 150, 200, 300, 400, 600, 1200)
_FLATBED_NAMES = ("flatbed", "platen", "normal")
_ADF_NAMES = ("adf", "feeder", "automatic document feeder")
_UNIT_MM = 3  # SANE_UNIT_MM
_MODE_NAMES = {
    ColorMode.COLOR: ("color", "colour", "rgb"),
    ColorMode.GRAY: ("gray", "grey", "grayscale", "gray8"),
    ColorMode.BW: ("lineart", "binary", "black & white", "halftone"),
}

#: sane_strstatus() texts, as python-sane raises them, to (kind, reason).
_STATUS = {
    "Document feeder jammed": "JAMMED",
    "Document feeder out of documents": "NO_DOCS",
    "Scanner cover is open": "COVER_OPEN",
    "Device busy": "DEVICE_BUSY",
    "Error during device I/O": "IO_ERROR",
    "Operation was cancelled": "CANCELLED",
    "Invalid argument": "INVAL",
    "Out of memory": "NO_MEM",
    "Access to resource has been denied": "ACCESS_DENIED",
}


class SaneLibrary:
    """libsane for this process: one init, serialized enumeration and opening."""

    _lock = threading.Lock()
    _initialised = False

    @classmethod
    def init(cls) -> None:
        import sane

        with cls._lock:
            if not cls._initialised:
                sane.init()
                cls._initialised = True

    @classmethod
    def devices(cls) -> list[tuple[str, str, str, str]]:
        import sane

        cls.init()
        with cls._lock:
            return [tuple(d) for d in sane.get_devices()]

    @classmethod
    def open(cls, name: str) -> Any:
        import sane

        cls.init()
        with cls._lock:
            return sane.open(name)


def sane_status(exc: BaseException) -> str:
    """The SANE status name behind a python-sane error ("" when it is not one)."""
    return _STATUS.get(str(exc), "")


def map_sane_error(exc: BaseException, *, pages: int, in_job: bool) -> AgentError | None:
    """The agent error for a SANE failure; None for ``NO_DOCS`` after at least one page."""
    status = sane_status(exc)
    if status == "NO_DOCS":
        if pages:
            return None
        return DeviceStateError("the document feeder is empty", reason="FEEDER_EMPTY")
    if status == "JAMMED":
        return DeviceStateError("paper jam in the document feeder", reason="PAPER_JAM")
    if status == "COVER_OPEN":
        return DeviceStateError("the scanner cover is open", reason="COVER_OPEN")
    if status == "DEVICE_BUSY":
        return DeviceBusyError("the scanner is busy")
    if status == "IO_ERROR":
        if in_job:
            return DeviceGoneError("the scanner stopped answering during the scan; the partial page was discarded")
        return DeviceUnavailableError("the scanner does not answer")
    if status == "INVAL":
        return InvalidRequestError("the scanner refused these scan settings")
    if status == "ACCESS_DENIED":
        return DeviceUnavailableError("access to the scanner was denied")
    return DeviceProtocolError(f"scanner error: {status or 'unknown SANE status'}")


@dataclass(frozen=True, slots=True)
class SaneOptionMap:
    """Which SANE option values realise our settings on one device."""

    sources: Mapping[ScanSource, str]
    modes: Mapping[ColorMode, tuple[str, int]]  # mode -> (SANE mode, depth)
    has_depth: bool
    has_geometry: bool


def _match(value: str, names: tuple[str, ...]) -> bool:
    lowered = value.lower()
    return any(lowered == name or lowered.startswith(name) for name in names)


def describe_options(options: Mapping[str, Any]) -> tuple[ScannerCapabilities, SaneOptionMap]:
    """Capabilities and the option map from python-sane's ``SaneDev.opt`` (name -> Option)."""
    sources: dict[ScanSource, str] = {}
    source = options.get("source")
    if source is not None and isinstance(source.constraint, list):
        for value in source.constraint:
            text = str(value)
            if "duplex" in text.lower() and _match(text, (*_ADF_NAMES, "adf duplex")):
                sources.setdefault(ScanSource.ADF_DUPLEX, text)
            elif _match(text, _ADF_NAMES):
                sources.setdefault(ScanSource.ADF, text)
            elif _match(text, _FLATBED_NAMES):
                sources.setdefault(ScanSource.FLATBED, text)
    if not sources:
        sources[ScanSource.FLATBED] = ""

    depth = options.get("depth")
    depths = set(depth.constraint) if depth is not None and isinstance(depth.constraint, list) else {8}
    modes: dict[ColorMode, tuple[str, int]] = {}
    mode = options.get("mode")
    mode_values = [str(v) for v in mode.constraint] if mode is not None and isinstance(mode.constraint, list) else []
    for ours, names in _MODE_NAMES.items():
        for value in mode_values:
            if _match(value, names):
                modes.setdefault(ours, (value, 1 if ours == ColorMode.BW else 8))
    if ColorMode.BW not in modes and ColorMode.GRAY in modes and 1 in depths:
        modes[ColorMode.BW] = (modes[ColorMode.GRAY][0], 1)  # lineart as 1-bit grey
    if not modes:
        modes[ColorMode.GRAY] = ("", 8)

    resolutions: tuple[int, ...] = (300,)
    res = options.get("resolution")
    if res is not None:
        if isinstance(res.constraint, tuple):
            low, high = res.constraint[0], res.constraint[1]
            resolutions = tuple(r for r in _STANDARD_RESOLUTIONS if low <= r <= high) or (int(high),)
        elif isinstance(res.constraint, list):
            resolutions = tuple(sorted({int(r) for r in res.constraint}))

    def extent(name: str) -> float:
        option = options.get(name)
        if option is None or option.unit != _UNIT_MM or not isinstance(option.constraint, tuple):
            return 0.0
        return float(option.constraint[1])

    caps = ScannerCapabilities(
        sources=tuple(s for s in ScanSource if s in sources),
        resolutions=resolutions,
        color_modes=tuple(m for m in ColorMode if m in modes),
        # a device without a settable scan area in mm scans its own fixed area: declare A4
        max_width_mm=round(extent("br_x"), 1) or 210.0,
        max_height_mm=round(extent("br_y"), 1) or 297.0,
        formats=(PageFormat.JPEG, PageFormat.PNG, PageFormat.RAW_GRAY8, PageFormat.RAW_RGB8),
    )
    option_map = SaneOptionMap(
        sources=sources,
        modes=modes,
        has_depth=depth is not None,
        has_geometry=extent("br_x") > 0 and extent("br_y") > 0,
    )
    return caps, option_map


@dataclass(frozen=True, slots=True)
class Frame:
    pixels: bytearray
    width: int
    height: int
    mode: str  # PIL mode of ``pixels``: "L" or "RGB"


class SaneScanner(Scanner):
    """One SANE device. The SANE handle is opened on first use and kept until close."""

    def __init__(
        self,
        descriptor: DeviceDescriptor,
        ctx: DriverContext,
        caps: ScannerCapabilities,
        option_map: SaneOptionMap,
        extra_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(descriptor, ctx)
        self._caps = caps
        self._map = option_map
        self._extra = dict(extra_options or {})
        self._handle: Any = None
        self._health = ScannerHealth(descriptor.name, ctx.logger, lambda: ctx.health_changed(self))
        self._job_lock = asyncio.Lock()
        self._cancelled = threading.Event()

    @property
    def scanning(self) -> bool:
        return self._job_lock.locked()

    def capabilities(self) -> Capabilities:
        features = {"sane", "usb"}
        if ScanSource.ADF in self._caps.sources:
            features.add("adf")
        if ScanSource.ADF_DUPLEX in self._caps.sources:
            features.add("adf_duplex")
        return Capabilities(features=frozenset(features))

    def scanner_capabilities(self) -> ScannerCapabilities:
        return self._caps

    def health(self) -> DeviceHealth:
        return self._health.snapshot()

    async def _ensure_handle(self) -> Any:
        if self._handle is None:
            try:
                self._handle = await self._ctx.run_blocking(SaneLibrary.open, self.descriptor.address)
            except Exception as exc:
                error = map_sane_error(exc, pages=0, in_job=False) or DeviceUnavailableError("scanner not ready")
                raise error from exc
        return self._handle

    async def _drop_handle(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(Exception):
                await self._ctx.run_blocking(handle.close)

    async def open(self) -> None:
        await self._ensure_handle()

    async def close(self) -> None:
        async with self._job_lock:
            await self._drop_handle()

    def _configure(self, handle: Any, settings: ScanSettings) -> None:
        """Set the job's options (blocking). Order matters: mode/depth/source before geometry."""
        if self._map.sources.get(settings.source):
            handle.source = self._map.sources[settings.source]
        mode, depth = self._map.modes[settings.color_mode]
        if mode:
            handle.mode = mode
        if self._map.has_depth:
            handle.depth = depth
        handle.resolution = settings.resolution
        if self._map.has_geometry:
            handle.tl_x = 0.0
            handle.tl_y = 0.0
            handle.br_x = float(min(settings.width_mm, self._caps.max_width_mm or settings.width_mm))
            handle.br_y = float(min(settings.height_mm, self._caps.max_height_mm or settings.height_mm))
        for name, value in self._extra.items():
            try:
                setattr(handle, name.replace("-", "_"), value)  # python-sane spells "-" as "_"
            except (AttributeError, TypeError, ValueError) as exc:
                raise ConfigError(f"SANE option {name!r} of {self.descriptor.address} was refused") from exc

    def _read_frame(self, handle: Any) -> Frame | None:
        """Start one frame and read it whole (blocking). None when the read was cancelled."""
        if self._cancelled.is_set():
            return None
        try:
            handle.start()
            stop_signals.reinstall()  # shortens the window in which a SIGTERM would kill the agent
            frame_format, _last, (_ppl, expected_lines), _depth, _bpl = handle.get_parameters()
            data, width, height, samples, _size = handle.dev.snap(True, False, None)
        finally:
            stop_signals.reinstall()  # the backend's reader task may have reset SIGTERM (agent/stop_signals.py)
        if self._cancelled.is_set():
            return None
        # single-pass frames must be whole (three-pass ones are assembled by python-sane, whose
        # line count may differ by one; hand scanners announce -1)
        if frame_format in ("gray", "color") and expected_lines > 0 and height < expected_lines:
            # snap() returns what it got when the device stops early: never hand out a partial page
            raise DeviceGoneError("the scanner stopped mid-page; the partial page was discarded")
        return Frame(data, width, height, "RGB" if samples == 3 else "L")

    def _cancel(self, handle: Any) -> None:
        self._cancelled.set()
        handle.cancel()

    async def scan(self, settings: ScanSettings) -> AsyncIterator[ScannedPage]:
        if settings.source not in self._caps.sources:
            raise InvalidRequestError(f"source {settings.source} is not offered by this scanner")
        if settings.color_mode not in self._caps.color_modes:
            raise NotSupportedError(f"colour mode {settings.color_mode} is not offered by this scanner")
        if self._job_lock.locked():
            raise DeviceBusyError("scanner is running another job")
        async with self._job_lock:
            self._health.job_started()
            pages = 0
            handle: Any = None
            reading: asyncio.Future[Frame | None] | None = None
            try:
                handle = await self._ensure_handle()
                self._cancelled.clear()
                await self._ctx.run_blocking(self._configure, handle, settings)
                reading = asyncio.ensure_future(self._ctx.run_blocking(self._read_frame, handle))
                while reading is not None:  # a flatbed job stops after its one page
                    frame = await asyncio.shield(reading)
                    reading = None
                    if frame is None:
                        break
                    if settings.source != ScanSource.FLATBED:
                        # the feeder pulls the next sheet while this one is encoded: at most two
                        # raw frames are held, whatever the number of pages
                        reading = asyncio.ensure_future(self._ctx.run_blocking(self._read_frame, handle))
                    page = await self._ctx.run_blocking(
                        encode_frame,
                        pages,
                        frame.pixels,
                        frame.width,
                        frame.height,
                        frame.mode,
                        settings.resolution,
                        settings.page_format,
                        settings.color_mode == ColorMode.BW,
                    )
                    del frame
                    pages += 1
                    self._health.page_scanned()
                    yield page
                await self._ctx.run_blocking(handle.cancel)  # ends the batch (SANE requires it)
                self._health.job_finished()
            except AgentError as exc:
                await self._after_failure(exc, handle)
                raise
            except Exception as exc:
                error = map_sane_error(exc, pages=pages, in_job=True)
                if error is None:  # the feeder ran out after the last sheet: a normal end
                    with contextlib.suppress(Exception):
                        await self._ctx.run_blocking(handle.cancel)
                    self._health.job_finished()
                    return
                await self._after_failure(error, handle)
                raise error from exc
            finally:
                # still busy here means cancelled by the client (task cancelled or generator closed)
                cancelled = self._health.snapshot().state == DeviceState.BUSY
                if cancelled or reading is not None:
                    await self._stop_device(handle, reading)
                if cancelled:
                    self._health.job_finished()

    async def _after_failure(self, error: AgentError, handle: Any) -> None:
        self._health.job_failed(error)
        if isinstance(error, DeviceUnavailableError):
            await self._drop_handle()
        elif handle is not None:
            with contextlib.suppress(Exception):
                await self._ctx.run_blocking(handle.cancel)

    async def _stop_device(self, handle: Any, reading: asyncio.Future[Frame | None] | None) -> None:
        if handle is None:
            return
        with contextlib.suppress(Exception):
            await self._ctx.run_blocking(self._cancel, handle)
        if reading is not None:
            with contextlib.suppress(BaseException):
                await reading  # the read returns promptly once cancelled
            with contextlib.suppress(Exception):
                await self._ctx.run_blocking(handle.cancel)  # and end a frame it may have started


class SaneBackend(DeviceBackend):
    name: ClassVar[str] = "sane"
    family: ClassVar[DeviceFamily] = DeviceFamily.SCANNER

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        opts = typed_options(SaneOptions, options)
        self._interval = opts.rescan_interval
        self._only = set(opts.devices)
        self._device_options: dict[str, dict[str, Any]] = opts.device_options
        self._task: asyncio.Task[None] | None = None
        self._devices: dict[str, SaneScanner] = {}
        self._reported_failure = False
        self.enumerated = asyncio.Event()
        #: Where USB devices are looked up for stable keys (a seam for the tests).
        self._sysfs = SYSFS

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for device in self._devices.values():
            await device.close()
        self._devices.clear()

    async def _watch(self) -> None:
        while True:
            await self.enumerate()
            self.enumerated.set()
            if self._interval <= 0:
                return
            await asyncio.sleep(self._interval)

    async def enumerate(self) -> None:
        """One enumeration: report new devices, and lost ones. Skipped while a job runs, so
        probing never competes with a scan on the same bus."""
        if any(device.scanning for device in self._devices.values()):
            return
        try:
            found = await self._ctx.run_blocking(SaneLibrary.devices)
        except Exception as exc:
            if not self._reported_failure:
                self._ctx.logger.warning("SANE enumeration failed (%s); will retry", sane_status(exc) or "error")
                self._reported_failure = True
            return
        self._reported_failure = False
        names = {entry[0] for entry in found if not self._only or entry[0] in self._only}
        for name, vendor, model, kind in found:
            if name in names and name not in self._devices:
                await self._adopt(name, vendor, model, kind)
        for name in [n for n in self._devices if n not in names]:
            device = self._devices.pop(name)
            await device.close()
            self._ctx.device_lost(DeviceFamily.SCANNER, self.name, name, "not enumerated by SANE any more")

    async def _adopt(self, name: str, vendor: str, model: str, kind: str) -> None:
        def read_options() -> tuple[ScannerCapabilities, SaneOptionMap, str]:
            handle = SaneLibrary.open(name)
            try:
                caps, option_map = describe_options(handle.opt)
            finally:
                handle.close()
            return caps, option_map, sane_stable_key(name, self._sysfs)

        try:
            caps, option_map, stable_key = await self._ctx.run_blocking(read_options)
        except Exception as exc:
            self._ctx.logger.info("SANE device %s could not be opened (%s)", name, sane_status(exc) or "error")
            return
        descriptor = DeviceDescriptor(
            family=DeviceFamily.SCANNER,
            backend=self.name,
            stable_key=stable_key,
            name=f"{vendor} {model}".strip(),
            vendor=vendor,
            model=model,
            connection="usb" if "usb" in name.lower() else kind,
            address=name,
        )
        device = SaneScanner(descriptor, self._ctx, caps, option_map, self._device_options.get(name))
        self._devices[name] = device
        self._ctx.device_found(device)
