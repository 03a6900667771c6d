"""IPP Everywhere printers: found by DNS-SD (``_ipp._tcp``/``_ipps._tcp``) or configured
by URI, driven directly over IPP (no CUPS queue to set up).

Backend options (``[drivers.ipp]``):

``uris``           printer URIs to use besides the ones found by DNS-SD
``browse``         browse DNS-SD (default true)
``poll_interval``  seconds between status polls while idle (default 30)
``verify_tls``     check certificates of ``ipps`` printers (default false: printers
                   ship self-signed certificates)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

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
    PrintJobStatus,
)
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext, Printer
from agent.drivers.options import IppOptions, typed_options
from agent.drivers.printer.ipp import IppClient, PrinterSnapshot
from agent.errors import AgentError, DeviceUnavailableError, InvalidRequestError

SERVICE_TYPES = ("_ipp._tcp.local.", "_ipps._tcp.local.")
DEFAULT_POLL_INTERVAL = IppOptions.poll_interval
#: While a job runs, printer reasons are refreshed at most this often (from job_status).
ACTIVE_STATUS_MAX_AGE = 1.0
_OFFLINE = Condition("offline", Severity.ERROR, "printer unreachable")


def status_key(status: PrinterStatus | None) -> tuple[object, ...]:
    """What counts as a change worth a log line: state and conditions, not supply percentages."""
    if status is None:
        return ("unreachable",)
    return (status.state, tuple((c.code, c.severity) for c in status.conditions))


class IppPrinter(Printer):
    """One IPP printer. Keeps its status current by polling while open."""

    job_poll_interval: ClassVar[float] = 0.1  # one small Get-Job-Attributes per poll

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, uri: str, *,
                 poll_interval: float = DEFAULT_POLL_INTERVAL, verify_tls: bool = False) -> None:
        super().__init__(descriptor, ctx)
        self.uri = uri
        self._poll_interval = poll_interval
        self._verify_tls = verify_tls
        self._client: IppClient | None = None
        self._capabilities = PrinterCapabilities(document_formats=())
        self._status: PrinterStatus | None = None
        self._status_at = 0.0
        self._error = ""
        self._poller: asyncio.Task[None] | None = None
        self._jobs_submitted = 0
        self._seen = False

    # -- Device --------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        caps = self._capabilities
        features = {"job_status", "cancel", "supplies"}
        if caps.color:
            features.add("color")
        if caps.duplex:
            features.add("duplex")
        return Capabilities(frozenset(features))

    def health(self) -> DeviceHealth:
        counters = {"jobs_submitted": self._jobs_submitted}
        status = self._status
        if not self._seen:
            return DeviceHealth(DeviceState.PRESENT, counters=counters)
        if status is None:
            return DeviceHealth(DeviceState.ERROR, (_OFFLINE,), counters=counters, last_error=self._error)
        if status.state == PrinterState.STOPPED or any(c.severity == Severity.ERROR
                                                        for c in status.conditions):
            state = DeviceState.ERROR
        elif status.state == PrinterState.PROCESSING:
            state = DeviceState.BUSY
        else:
            state = DeviceState.READY
        return DeviceHealth(state, status.conditions, status.supplies, counters, self._error)

    async def open(self) -> None:
        if self._client is None:
            self._client = IppClient(self.uri, verify_tls=self._verify_tls)
        try:
            snapshot = await self._client.snapshot()
        except AgentError as exc:
            await self.close()
            raise DeviceUnavailableError(f"printer {self.descriptor.name} cannot be opened: {exc.message}",
                                         device_id=None) from None
        self._capabilities = snapshot.capabilities
        self._set_status(snapshot.status, "")
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name=f"ipp-poll {self.descriptor.name}")

    async def close(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    # -- Printer -------------------------------------------------------------------------------

    def printer_capabilities(self) -> PrinterCapabilities:
        return self._capabilities

    async def printer_status(self) -> PrinterStatus:
        await self._refresh()
        if self._status is None:
            raise DeviceUnavailableError(f"printer {self.descriptor.name} unreachable: {self._error}")
        return self._status

    async def submit(self, document: PrintDocument) -> str:
        caps = self._capabilities
        if document.mime_type not in caps.document_formats:
            offered = ", ".join(caps.document_formats) or "none"
            raise InvalidRequestError(
                f"printer {self.descriptor.name} does not take {document.mime_type} (it takes {offered})",
                reason="UNSUPPORTED_FORMAT")
        if not 1 <= document.copies <= caps.max_copies:
            raise InvalidRequestError(f"copies must be 1..{caps.max_copies}")
        if document.duplex and not caps.duplex:
            raise InvalidRequestError(f"printer {self.descriptor.name} cannot print two-sided")
        if document.media and caps.media and document.media not in caps.media:
            raise InvalidRequestError(f"printer {self.descriptor.name} has no media {document.media!r}")
        client = self._require_client()
        if document.copies != 1 or document.duplex or document.media:
            # options beyond the defaults: let the printer judge them before the data goes out
            await client.validate_job(document)
        job_id = await client.print_job(document)
        self._jobs_submitted += 1
        return job_id

    async def job_status(self, printer_job_id: str) -> PrintJobStatus:
        status = await self._require_client().get_job_attributes(printer_job_id)
        if status.state.terminal:
            # the printer's reasons may have changed with the job (jam, toner): look once
            await self._refresh()
            return status
        if time.monotonic() - self._status_at >= ACTIVE_STATUS_MAX_AGE:
            await self._refresh()
        printer = self._status
        if printer is None:
            return status
        extra = tuple(c.code for c in printer.conditions
                      if c.severity != Severity.INFO and c.code not in status.reasons)
        return PrintJobStatus(status.state, status.printer_job_id, status.reasons + extra,
                              status.pages_printed, status.message)

    async def cancel(self, printer_job_id: str) -> None:
        client = self._require_client()
        current = await client.get_job_attributes(printer_job_id)
        if current.state.terminal:
            return
        try:
            await client.cancel_job(printer_job_id)
        except AgentError:
            # the job may have finished between the two calls: that is not an error
            if not (await client.get_job_attributes(printer_job_id)).state.terminal:
                raise

    # -- status polling --------------------------------------------------------------------------

    def _require_client(self) -> IppClient:
        if self._client is None:
            raise DeviceUnavailableError(f"printer {self.descriptor.name} is not open")
        return self._client

    async def _refresh(self) -> None:
        client = self._require_client()
        try:
            status = await client.printer_status()
        except AgentError as exc:
            self._set_status(None, exc.message)
            return
        self._set_status(status, "")

    def _set_status(self, status: PrinterStatus | None, error: str) -> None:
        self._status_at = time.monotonic()
        self._error = error
        previous, self._status = self._status, status
        first = not self._seen
        self._seen = True
        if first or status_key(previous) != status_key(status):
            # a change of state is logged once, never every poll
            name = self.descriptor.name
            if status is None:
                self._ctx.logger.warning("printer %s unreachable: %s", name, error)
            elif status.conditions or not first:
                described = ", ".join(f"{c.code} ({c.severity.value})" for c in status.conditions)
                self._ctx.logger.info("printer %s %s, conditions: %s", name, status.state.value,
                                      described or "none")
        if first or previous != status:
            self._ctx.health_changed(self)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            if self._client is None:
                return
            await self._refresh()


class IppBackend(DeviceBackend):
    """Finds IPP printers by DNS-SD and configuration and hands them to the core."""

    name: ClassVar[str] = "ipp"
    family: ClassVar[DeviceFamily] = DeviceFamily.PRINTER

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        opts = typed_options(IppOptions, options)
        self._uris: tuple[str, ...] = tuple(opts.uris)
        self._browse = opts.browse
        self._poll_interval = opts.poll_interval
        self._verify_tls = opts.verify_tls
        self._tasks: set[asyncio.Task[None]] = set()
        self._devices: dict[str, IppPrinter] = {}
        self._records: dict[str, str] = {}  # DNS-SD service name -> stable key
        self._browser: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for uri in self._uris:
            self._spawn(self._watch_configured(uri), f"ipp-configured {uri}")
        if self._browse:
            from zeroconf.asyncio import AsyncServiceBrowser

            zc = await self._ctx.zeroconf()
            self._browser = AsyncServiceBrowser(zc.zeroconf, list(SERVICE_TYPES), handlers=[self._on_change])

    async def stop(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            await browser.async_cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        devices = list(self._devices.values())
        self._devices.clear()
        for device in devices:
            await device.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def printer_for(self, uri: str, snapshot: PrinterSnapshot, *, key: str, name: str) -> IppPrinter:
        host = urllib.parse.urlsplit(uri).hostname or ""
        descriptor = DeviceDescriptor(
            family=DeviceFamily.PRINTER, backend=self.name, stable_key=key,
            name=name or snapshot.name or host, vendor=snapshot.make_and_model.split(" ")[0],
            model=snapshot.make_and_model, connection="network", address=uri)
        return IppPrinter(descriptor, self._ctx, uri, poll_interval=self._poll_interval,
                          verify_tls=self._verify_tls)

    async def _probe(self, uri: str) -> PrinterSnapshot:
        client = IppClient(uri, verify_tls=self._verify_tls)
        try:
            return await client.snapshot()
        finally:
            await client.aclose()

    async def _watch_configured(self, uri: str) -> None:
        delay, logged = 1.0, False
        while True:
            try:
                snapshot = await self._probe(uri)
                break
            except AgentError as exc:
                if not logged:
                    self._ctx.logger.warning("configured printer %s not reachable yet: %s", uri, exc.message)
                    logged = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
        key = snapshot.uuid or uri
        self._hand_over(self.printer_for(uri, snapshot, key=key, name=snapshot.name))

    def _hand_over(self, device: IppPrinter) -> None:
        key = device.descriptor.stable_key
        if key in self._devices and self._devices[key].uri == device.uri:
            return
        self._devices[key] = device
        self._ctx.device_found(device)

    # -- DNS-SD ----------------------------------------------------------------------------------

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        from zeroconf import ServiceStateChange

        loop = self._loop
        if loop is None:
            return
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            loop.call_soon_threadsafe(self._spawn, self._resolve(zeroconf, service_type, name),
                                      f"ipp-resolve {name}")
        elif state_change is ServiceStateChange.Removed:
            loop.call_soon_threadsafe(self._removed, name)

    def _removed(self, name: str) -> None:
        key = self._records.pop(name, None)
        if key is None or key in self._records.values():
            return  # the printer is still announced under its other service type
        device = self._devices.get(key)
        if device is not None and device.uri not in self._uris:  # configured printers stay
            del self._devices[key]
            self._ctx.device_lost(DeviceFamily.PRINTER, self.name, key, "DNS-SD record removed")

    async def _resolve(self, zeroconf: Any, service_type: str, name: str) -> None:
        try:
            await self._resolve_record(zeroconf, service_type, name)
        except Exception as exc:  # a malformed announcement must not end discovery
            self._ctx.logger.warning("ignoring DNS-SD record %s: %s", name, type(exc).__name__)

    async def _resolve_record(self, zeroconf: Any, service_type: str, name: str) -> None:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceInfo

        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, 3000):
            return
        addresses = info.parsed_addresses(IPVersion.V4Only) or info.parsed_addresses()
        if not addresses or info.port is None:
            return
        props: Mapping[bytes, bytes | None] = info.properties
        path = (props.get(b"rp") or b"ipp/print").decode("utf-8", "replace").lstrip("/")
        uuid = (props.get(b"UUID") or b"").decode("ascii", "replace")
        scheme = "ipps" if service_type.startswith("_ipps") else "ipp"
        host = addresses[0] if ":" not in addresses[0] else f"[{addresses[0]}]"
        uri = f"{scheme}://{host}:{info.port}/{path}"
        key = f"urn:uuid:{uuid}" if uuid else name
        existing = self._devices.get(key)
        if scheme == "ipps" and existing is not None and existing.uri.startswith("ipp:"):
            self._records[name] = key
            return  # prefer the plain record of the same printer on loopback/LAN: no trust either way
        try:
            snapshot = await self._probe(uri)
        except AgentError as exc:
            self._ctx.logger.info("printer %s announced but not answering: %s", name, exc.message)
            return
        key = snapshot.uuid or key
        self._records[name] = key
        existing = self._devices.get(key)
        if scheme == "ipps" and existing is not None and existing.uri.startswith("ipp:"):
            return  # the plain record won the race while this one was being probed
        instance = name[: -len(service_type) - 1] if name.endswith("." + service_type) else name
        self._hand_over(self.printer_for(uri, snapshot, key=key, name=instance))
