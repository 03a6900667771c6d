"""The ``escl`` backend: network scanners found by DNS-SD (``_uscan._tcp``, ``_uscans._tcp``)
and scanners configured by URL.

Options (``[drivers.escl]``):

* ``urls``: list of eSCL root URLs, e.g. ``["http://192.0.2.7/eSCL"]``;
* ``zeroconf``: browse DNS-SD (default true);
* ``tls``: how ``https`` (``_uscans``) scanners are trusted: ``pin`` (default: trust on
  first use, the certificate pinned in the state directory), ``verify`` (CA chain and
  host name) or ``off`` (see :mod:`agent.drivers.scanner.tls_pins`);
* ``retry_delay``: first delay, seconds, between probes of an unreachable configured scanner;
* ``status_interval``: seconds between status polls of an idle scanner (default 60; 0 = off),
  so health shows an offline scanner or a pending jam without waiting for a job.

Discovery finds endpoints, never trust: a device's name and identity come from what
it answers, and its stable key is its eSCL UUID (from TXT ``uuid`` or the
capabilities), else its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from typing import TYPE_CHECKING, Any, ClassVar

from agent.domain.device import DeviceDescriptor, DeviceFamily
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext
from agent.drivers.options import EsclOptions, typed_options
from agent.drivers.scanner.escl import EsclClient, EsclScanner
from agent.drivers.scanner.tls_pins import PINS_FILE, CertificatePins, TlsPolicy
from agent.errors import AgentError

if TYPE_CHECKING:
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceBrowser

SERVICE_TYPES = ("_uscan._tcp.local.", "_uscans._tcp.local.")


async def probe_escl(
    ctx: DriverContext,
    url: str,
    *,
    backend: str,
    connection: str = "network",
    stable_key: str = "",
    tls: TlsPolicy = TlsPolicy.VERIFY,
    pins: CertificatePins | None = None,
    status_interval: float = 60.0,
) -> EsclScanner:
    """Ask the scanner at ``url`` for its capabilities and build the device object.

    Raises :class:`~agent.errors.DeviceUnavailableError` when it does not answer.
    """
    client = EsclClient(url, tls=tls, pins=pins, pin_key=stable_key or url)
    try:
        caps = await client.capabilities()
    except BaseException:
        await client.aclose()
        raise
    name = caps.make_and_model or "eSCL scanner"
    descriptor = DeviceDescriptor(
        family=DeviceFamily.SCANNER,
        backend=backend,
        stable_key=stable_key or caps.uuid or url,
        name=name,
        vendor=name.split(" ", 1)[0],
        model=name,
        serial=caps.serial,
        connection=connection,
        address=url,
    )
    return EsclScanner(descriptor, ctx, client, caps, status_interval)


def service_url(service_type: str, addresses: list[str], port: int, properties: dict[str, str]) -> str:
    """The eSCL root URL of a DNS-SD service (TXT ``rs`` is the resource path, default ``eSCL``)."""
    if not addresses:
        raise ValueError("service has no address")
    address = ipaddress.ip_address(addresses[0])
    host = f"[{address}]" if address.version == 6 else str(address)
    scheme = "https" if service_type.startswith("_uscans.") else "http"
    path = properties.get("rs", "eSCL").strip("/") or "eSCL"
    return f"{scheme}://{host}:{port}/{path}"


class EsclBackend(DeviceBackend):
    name: ClassVar[str] = "escl"
    family: ClassVar[DeviceFamily] = DeviceFamily.SCANNER

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        opts = typed_options(EsclOptions, options)
        self._urls: list[str] = list(opts.urls)
        self._browse = opts.zeroconf
        self._tls = TlsPolicy.parse(opts.tls)
        self._pins: CertificatePins | None = None  # loaded at start (the state directory)
        self._retry_delay = opts.retry_delay
        self._status_interval = opts.status_interval
        self._tasks: set[asyncio.Task[None]] = set()
        self._browser: AsyncServiceBrowser | None = None
        self._devices: dict[str, EsclScanner] = {}  # stable key -> device
        self._services: dict[str, str] = {}  # DNS-SD service name -> stable key
        self._retired: list[EsclScanner] = []  # replaced or lost devices, closed at stop

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        if self._tls is TlsPolicy.PIN:
            self._pins = await self._ctx.run_blocking(CertificatePins, self._ctx.state_dir / PINS_FILE)
        for url in self._urls:
            self._spawn(self._watch_configured(url))
        if self._browse:
            from zeroconf.asyncio import AsyncServiceBrowser

            zc = await self._ctx.zeroconf()
            self._browser = AsyncServiceBrowser(zc.zeroconf, list(SERVICE_TYPES), handlers=[self._on_change])

    async def stop(self) -> None:
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for device in [*self._devices.values(), *self._retired]:
            await device.close()
        self._devices.clear()
        self._retired.clear()
        self._services.clear()

    async def _watch_configured(self, url: str) -> None:
        """Probe a configured scanner until it answers (log the first failure once)."""
        delay = self._retry_delay
        reported = False
        while True:
            try:
                device = await probe_escl(
                    self._ctx,
                    url,
                    backend=self.name,
                    tls=self._tls,
                    pins=self._pins,
                    status_interval=self._status_interval,
                )
            except AgentError as exc:
                if not reported:
                    self._ctx.logger.warning("eSCL scanner %s not reachable yet (%s); will retry", url, exc.reason)
                    reported = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)
                continue
            self._adopt(device)
            return

    def _adopt(self, device: EsclScanner) -> None:
        key = device.descriptor.stable_key
        old = self._devices.get(key)
        if old is not None and old is not device:
            self._retire(old)
        self._devices[key] = device
        self._ctx.device_found(device)

    def _retire(self, device: EsclScanner) -> None:
        self._retired.append(device)
        self._spawn(device.close())

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        from zeroconf import ServiceStateChange

        if state_change == ServiceStateChange.Removed:
            key = self._services.pop(name, None)
            # a scanner announces itself once per protocol (_uscan and _uscans): it is gone
            # when its last announcement is
            if key is not None and key not in self._services.values():
                device = self._devices.pop(key, None)
                self._ctx.device_lost(DeviceFamily.SCANNER, self.name, key, "DNS-SD service removed")
                if device is not None:
                    self._retire(device)
            return
        self._spawn(self._resolve(zeroconf, service_type, name))

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, 3000):
            self._ctx.logger.info("eSCL service %s did not resolve", name)
            return
        properties = {
            (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): (
                v.decode("utf-8", "replace") if isinstance(v, bytes) else ""
            )
            for k, v in info.properties.items()
        }
        known = properties.get("uuid", "")
        if known and known in self._devices:
            # the same scanner seen again (other protocol, updated TXT): keep the device
            # object, which may be running a job
            self._services[name] = known
            return
        try:
            url = service_url(service_type, info.parsed_scoped_addresses(), info.port or 0, properties)
        except ValueError:
            return
        try:
            device = await probe_escl(
                self._ctx,
                url,
                backend=self.name,
                stable_key=properties.get("uuid", ""),
                tls=self._tls,
                pins=self._pins,
                status_interval=self._status_interval,
            )
        except AgentError as exc:
            self._ctx.logger.info("eSCL service %s at %s did not answer (%s)", name, url, exc.reason)
            return
        key = device.descriptor.stable_key
        self._services[name] = key
        if key in self._devices:
            await device.close()
            return
        self._adopt(device)
