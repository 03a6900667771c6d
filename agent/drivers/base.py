"""The driver contract. Docstrings here are the spec every backend implements.

Shape
-----
A *backend* (:class:`DeviceBackend`) discovers devices of one family over one
protocol (``pcsc``, ``sane``, ``escl``, ``ipp``, ``libfprint``...) and hands each
one to the core as a :class:`Device` through :class:`DriverContext`. A device
object implements its family's interface (:class:`IdCardReader`,
:class:`FingerprintSensor`, :class:`Scanner`, :class:`Printer`,
:class:`BarcodeScanner`).

Rules for every driver
----------------------
* Drivers know nothing of gRPC or protobuf; they take and return the frozen
  dataclasses of :mod:`agent.domain` and raise :mod:`agent.errors` types.
* Blocking library calls (pyscard, python-sane, pycups, pyserial) run through
  :meth:`DriverContext.run_blocking`, never on the event loop.
* Cancellation is asyncio task cancellation: when the core cancels the task
  running an operation (client went away, job cancelled), the driver stops the
  device operation as soon as the protocol allows and re-raises
  :class:`asyncio.CancelledError`.
* Personal data (card fields, faces, fingerprints, scanned pages, barcode
  payloads) is returned to the caller and never logged, stored, or put in
  health, counters, error messages or event attributes.
* Health is reported, not polled by the core: a device keeps its
  :class:`DeviceHealth` current and calls :meth:`DriverContext.health_changed`
  when it changes. Log a change of state once, never every failed poll.
* A device that disappears is reported with :meth:`DriverContext.device_lost`;
  the core applies the debounce window, so a device that blinks out for a
  second is not reported gone.

Adding a backend: one module in ``agent/drivers/<family>/``, one row in
:data:`agent.drivers.registry.BACKENDS`, its options class in
:mod:`agent.drivers.options` (read with :func:`~agent.drivers.options.typed_options`
in the backend's ``__init__``), a presence probe in :mod:`agent.drivers.presence`, and
its table in ``config/agent.example.toml``.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from agent.domain.device import Capabilities, DeviceDescriptor, DeviceFamily, DeviceHealth
from agent.domain.events import EventKind
from agent.domain.fingerprint import (
    EnrollProgress,
    FingerprintCapabilities,
    FingerprintImage,
    FingerprintTemplate,
    IdentifyResult,
    MatchResult,
)
from agent.domain.idcard import AccessKey, CardRead, ReadOptions
from agent.domain.printer import PrintDocument, PrinterCapabilities, PrinterStatus, PrintJobStatus
from agent.domain.scanner import ScannedPage, ScannerCapabilities, ScanSettings
from agent.drivers.options import DriverOptions

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncZeroconf

    from agent.drivers.idcard.trust_bundle import DistributedTrust

T = TypeVar("T")

#: Backend options: the checked ``[drivers.<backend>]`` table of the agent config, or a plain
#: mapping (tests, benchmarks); a backend reads them through :func:`agent.drivers.options.typed_options`.
BackendOptions = Mapping[str, Any] | DriverOptions


class DriverContext(abc.ABC):
    """Services the core offers to drivers: the one injected object, no globals."""

    @property
    @abc.abstractmethod
    def state_dir(self) -> Path:
        """The agent's state directory (for non-personal driver state only)."""

    @property
    @abc.abstractmethod
    def simulate(self) -> bool:
        """True when the agent runs with ``--simulate``."""

    @property
    @abc.abstractmethod
    def logger(self) -> logging.Logger:
        """A logger whose records pass the agent's redaction filter."""

    @abc.abstractmethod
    def device_found(self, device: Device) -> None:
        """A backend found ``device`` (or found it again after it was lost).

        The core assigns or restores the stable id, opens the device and publishes
        ``device_added``. Calling it twice for the same stable key replaces the object.
        """

    @abc.abstractmethod
    def device_lost(self, family: DeviceFamily, backend: str, stable_key: str, reason: str = "") -> None:
        """The device with this key is no longer reachable. Subject to debounce."""

    @abc.abstractmethod
    def health_changed(self, device: Device) -> None:
        """``device.health()`` changed; the core re-reads it and publishes a state event."""

    @abc.abstractmethod
    def emit(self, device: Device, kind: EventKind, attributes: Mapping[str, str] | None = None,
             payload: bytes = b"") -> None:
        """Publish a device-originated event (card inserted/removed, barcode scanned, finger on)."""

    @abc.abstractmethod
    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in the agent's worker threads and await its result."""

    @abc.abstractmethod
    async def zeroconf(self) -> AsyncZeroconf:
        """The agent's shared mDNS/DNS-SD instance, bound to the configured interfaces."""

    def distributed_trust(self) -> DistributedTrust | None:
        """The trust bundle fetched from the gateway (ID-card backends add it to their
        ``csca_dir``), or None where there is none (tests, tools)."""
        return None


class Device(abc.ABC):
    """One device of one family, as handed to the core by its backend."""

    family: ClassVar[DeviceFamily]

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext) -> None:
        self._descriptor = descriptor
        self._ctx = ctx

    @property
    def descriptor(self) -> DeviceDescriptor:
        """Identity and naming, fixed for the object's life."""
        return self._descriptor

    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """Declared features; must not do I/O."""

    @abc.abstractmethod
    def health(self) -> DeviceHealth:
        """Current health from the driver's own state; must not do I/O."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Make the device usable (connect, claim, start watching). Raise
        :class:`~agent.errors.DeviceUnavailableError` if it cannot be reached."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the device and every resource it holds. Idempotent; never raises."""


class IdCardReader(Device):
    """A chip ID-card reader (contact or contactless).

    Emits ``card_inserted`` / ``card_removed`` events through the context, then calls
    :meth:`DriverContext.health_changed`: card presence is part of the listed state, and
    the core routes a read that names no reader to the one reader holding a card. It is
    also called for a card already on the reader when it is found (no event then). A slot
    that holds a secure access module declares the feature ``sam_slot``: reads naming no
    reader never go there.
    """

    family = DeviceFamily.IDCARD

    @abc.abstractmethod
    def card_present(self) -> bool:
        """Whether a card is on the reader now, as last reported by the reader."""

    @abc.abstractmethod
    async def read_card(self, key: AccessKey, options: ReadOptions) -> CardRead:
        """Open a secure channel with ``key`` (BAC or PACE), read the data groups and verify.

        Raises :class:`~agent.errors.AccessDeniedError` on a wrong key (never retried: cards
        count failures), :class:`~agent.errors.CardRemovedError` if the card leaves,
        :class:`~agent.errors.DeviceStateError` (reason ``NO_CARD``) with no card present,
        :class:`~agent.errors.DeviceProtocolError` / :class:`~agent.errors.DataFormatError`
        for malformed answers. Verification problems are verdicts, not errors.
        """


class FingerprintSensor(Device):
    """A fingerprint sensor. Templates and images go back to the caller; nothing is kept."""

    family = DeviceFamily.FINGERPRINT

    @abc.abstractmethod
    def fingerprint_capabilities(self) -> FingerprintCapabilities:
        """Template formats, enrol stages, whether images and identify are supported."""

    @abc.abstractmethod
    async def capture(self, timeout: float) -> FingerprintImage:
        """Wait up to ``timeout`` s for a finger and return its image.

        Raises :class:`~agent.errors.TransientDeviceError` (reason says why: ``TOO_SHORT``,
        ``POOR_QUALITY``...) when the capture must be repeated.
        """

    @abc.abstractmethod
    async def enroll(self, on_progress: Callable[[EnrollProgress], None], timeout: float
                     ) -> FingerprintTemplate:
        """Take ``enroll_stages`` presses, reporting each through ``on_progress``; return the template."""

    @abc.abstractmethod
    async def verify(self, template: FingerprintTemplate, timeout: float) -> MatchResult:
        """Capture a live finger and match it against ``template``.

        A template that does not parse raises :class:`~agent.errors.DataFormatError`
        before the sensor is touched.
        """

    @abc.abstractmethod
    async def identify(self, templates: Sequence[FingerprintTemplate], timeout: float) -> IdentifyResult:
        """Capture a live finger and find it among ``templates`` (caller-supplied)."""


class Scanner(Device):
    """A document scanner."""

    family = DeviceFamily.SCANNER

    @abc.abstractmethod
    def scanner_capabilities(self) -> ScannerCapabilities:
        """Sources, resolutions, colour modes, maximum size."""

    @abc.abstractmethod
    def scan(self, settings: ScanSettings) -> AsyncIterator[ScannedPage]:
        """Scan and yield pages as the device produces them (an async generator).

        ``settings`` were validated by the core against :meth:`scanner_capabilities`.
        Faults raise :class:`~agent.errors.DeviceStateError` with reason ``PAPER_JAM``,
        ``FEEDER_EMPTY``, ``COVER_OPEN``; :class:`~agent.errors.DeviceBusyError`;
        :class:`~agent.errors.DeviceGoneError` when the device vanishes mid-page (the
        partial page is discarded). Closing the generator cancels the scan on the device.
        """


class Printer(Device):
    """A printer. The core keeps one queue per printer and submits one job at a time."""

    family = DeviceFamily.PRINTER

    #: How often the core polls :meth:`job_status` of an active job, seconds.
    job_poll_interval: ClassVar[float] = 0.5

    @abc.abstractmethod
    def printer_capabilities(self) -> PrinterCapabilities:
        """Document formats, colour, duplex, media."""

    @abc.abstractmethod
    async def printer_status(self) -> PrinterStatus:
        """Query the printer now: state, reasons with severity, supplies."""

    @abc.abstractmethod
    async def submit(self, document: PrintDocument) -> str:
        """Send one job; return the printer's job id.

        Raises :class:`~agent.errors.DeviceBusyError` when the printer is busy (the queue
        retries), :class:`~agent.errors.InvalidRequestError` for a format it does not take.
        """

    @abc.abstractmethod
    async def job_status(self, printer_job_id: str) -> PrintJobStatus:
        """Current state of a job this backend submitted."""

    @abc.abstractmethod
    async def cancel(self, printer_job_id: str) -> None:
        """Cancel a job at the printer. Cancelling a finished job is not an error."""


class BarcodeScanner(Device):
    """A barcode / QR scanner. While open it emits ``barcode_scanned`` events whose payload is
    the scanned text (UTF-8); payloads go to local clients only."""

    family = DeviceFamily.BARCODE

    @abc.abstractmethod
    def scans_seen(self) -> int:
        """Number of scans delivered since open (a health counter)."""


class DeviceBackend(abc.ABC):
    """Discovers devices of one family over one protocol.

    ``start`` begins discovery (udev, SCardGetStatusChange, zeroconf browsing,
    configured addresses) and returns promptly; found devices are handed over with
    :meth:`DriverContext.device_found`, lost ones with :meth:`DriverContext.device_lost`.
    A backend whose service is missing (pcscd down, no SANE) keeps trying in the
    background and reports it through its logger once, never crashing the agent.
    """

    name: ClassVar[str]
    family: ClassVar[DeviceFamily]

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        self._ctx = ctx
        self._options = options

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin discovery. Must return promptly; watching continues in tasks it owns."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop discovery, close every device it handed out, end its tasks. Idempotent."""

    def service_problem(self) -> str:
        """One line when the system service this backend needs is known to be unreachable (pcscd
        down), else "". Reported by ``AgentService.GetHealth`` with the backends that failed."""
        return ""
