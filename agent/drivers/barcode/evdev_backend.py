"""HID keyboard-wedge barcode scanners read through evdev.

The device is grabbed (``EVIOCGRAB``) while open, so what the scanner types reaches only
the agent, never the focused window of the clerk's desktop. Key events go through
:class:`~agent.drivers.barcode.keyboard_wedge.KeyboardWedgeDecoder`; a pending scan
without suffix ends when no key arrives for ``gap`` seconds.

Backend options (``[drivers.evdev]``): ``devices`` (event node paths; default: every
input device whose name matches ``name_patterns`` or whose ``vendor:product`` is in
``usb_ids``), ``name_patterns``, ``usb_ids``, ``prefix``, ``suffix`` (default ``"\\n"``),
``gap`` (0.2 s), ``max_length``, ``keymap`` (``us``), ``grab`` (true),
``rescan_interval`` (seconds between looks for new devices, 5; 0 disables).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from typing import Any

import evdev

from agent.domain.device import DeviceDescriptor, DeviceFamily, DeviceState
from agent.drivers.barcode.keyboard_wedge import KeyboardWedgeDecoder, WedgeSettings
from agent.drivers.barcode.scan_delivery import DeliveringScanner
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext
from agent.errors import ConfigError, DeviceBusyError, DeviceUnavailableError

DEFAULT_NAME_PATTERNS = ("barcode", "scanner", "honeywell", "zebra", "symbol", "datalogic", "newland",
                         "zebex", "netum")


def wedge_settings(options: BackendOptions) -> WedgeSettings:
    try:
        return WedgeSettings(prefix=str(options.get("prefix", "")),
                             suffix=str(options.get("suffix", "\n")),
                             gap=float(options.get("gap", 0.2)),
                             max_length=int(options.get("max_length", 4096)),
                             keymap=str(options.get("keymap", "us")))
    except (TypeError, ValueError):
        raise ConfigError("invalid barcode wedge options") from None


class EvdevBarcodeScanner(DeliveringScanner):
    """One input device that types scans."""

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(descriptor, ctx)
        self._init_delivery()
        self._settings = wedge_settings(options)
        self._grab = bool(options.get("grab", True))
        self._device: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self.grabbed = False

    async def open(self) -> None:
        if self._device is not None:
            return
        try:
            device: Any = await self._ctx.run_blocking(evdev.InputDevice[str], self.descriptor.address)
        except OSError:
            self._set_state(DeviceState.ERROR, "DEVICE_UNAVAILABLE")
            raise DeviceUnavailableError(f"cannot open input device of {self.descriptor.name}") from None
        if self._grab:
            try:
                await self._ctx.run_blocking(device.grab)
            except OSError as exc:
                device.close()
                if exc.errno == errno.EBUSY:
                    raise DeviceBusyError(f"{self.descriptor.name} is grabbed by another program") from None
                raise DeviceUnavailableError(f"cannot grab {self.descriptor.name}") from None
            self.grabbed = True
        self._device = device
        decoder = KeyboardWedgeDecoder(self._settings)
        self._reader = asyncio.create_task(self._read(device, decoder),
                                           name=f"evdev-{self.descriptor.address}")
        self._set_state(DeviceState.READY)

    async def _read(self, device: Any, decoder: KeyboardWedgeDecoder) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for event in device.async_read_loop():
                for text in decoder.feed(event):
                    self._deliver(text)
                self._counters["overflows"] = decoder.overflows
                if self._idle is not None:
                    self._idle.cancel()
                    self._idle = None
                if decoder.pending:
                    self._idle = loop.call_later(self._settings.gap, self._flush, decoder)
        except OSError:
            self._set_state(DeviceState.GONE, "DEVICE_GONE")
            self._ctx.device_lost(DeviceFamily.BARCODE, self.descriptor.backend, self.descriptor.stable_key,
                                  "input device went away")

    def _flush(self, decoder: KeyboardWedgeDecoder) -> None:
        self._idle = None
        for text in decoder.flush():
            self._deliver(text)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        device, self._device = self._device, None
        if device is not None:
            if self.grabbed:
                with contextlib.suppress(OSError):
                    device.ungrab()
                self.grabbed = False
            with contextlib.suppress(OSError):
                device.close()
        if self._state is not DeviceState.GONE:
            self._set_state(DeviceState.PRESENT)


class EvdevBarcodeBackend(DeviceBackend):
    """Finds wedge scanners among ``/dev/input/event*`` and watches for new ones."""

    name = "evdev"
    family = DeviceFamily.BARCODE

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        wedge_settings(options)  # fail early on bad options
        self._paths = [str(p) for p in options.get("devices", [])]
        self._patterns = tuple(str(p).lower() for p in options.get("name_patterns", DEFAULT_NAME_PATTERNS))
        self._usb_ids = {str(i).lower() for i in options.get("usb_ids", [])}
        self._interval = float(options.get("rescan_interval", 5.0))
        self._scanners: dict[str, EvdevBarcodeScanner] = {}
        self._watch: asyncio.Task[None] | None = None

    @property
    def scanners(self) -> list[EvdevBarcodeScanner]:
        return list(self._scanners.values())

    def _wanted(self) -> list[tuple[str, str, str, str]]:
        """(path, name, phys, vendor:product) of matching devices; blocking (opens nodes)."""
        found = []
        for path in self._paths or evdev.list_devices():
            try:
                device = evdev.InputDevice(path)
            except OSError:
                continue
            with contextlib.closing(device):
                usb_id = f"{device.info.vendor:04x}:{device.info.product:04x}"
                name = str(device.name)
                if self._paths or usb_id in self._usb_ids or any(p in name.lower() for p in self._patterns):
                    found.append((path, name, str(device.phys or ""), usb_id))
        return found

    async def _scan(self) -> None:
        for path, name, phys, usb_id in await self._ctx.run_blocking(self._wanted):
            key = f"{phys or path}:{usb_id}"
            known = self._scanners.get(key)
            if known is not None and known.health().state is not DeviceState.GONE:
                continue
            vendor, _, product = usb_id.partition(":")
            descriptor = DeviceDescriptor(family=DeviceFamily.BARCODE, backend=self.name, stable_key=key,
                                          name=name, vendor=vendor, model=product, connection="usb",
                                          address=path)
            scanner = EvdevBarcodeScanner(descriptor, self._ctx, self._options)
            self._scanners[key] = scanner
            self._ctx.device_found(scanner)

    async def _rescan(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._scan()

    async def start(self) -> None:
        await self._scan()
        if self._interval > 0 and self._watch is None:
            self._watch = asyncio.create_task(self._rescan(), name="evdev-rescan")

    async def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        for scanner in self._scanners.values():
            await scanner.close()
        self._scanners.clear()
