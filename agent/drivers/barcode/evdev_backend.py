"""HID keyboard-wedge barcode scanners read through evdev.

The device is grabbed (``EVIOCGRAB``) while open, so what the scanner types reaches only
the agent, never the focused window of the clerk's desktop. Key events go through
:class:`~agent.drivers.barcode.keyboard_wedge.KeyboardWedgeDecoder`; a pending scan
without suffix ends when no key arrives for ``gap`` seconds.

Which devices: ``devices`` (event node paths; default: every input device whose name
matches ``name_patterns`` or whose ``vendor:product`` is in ``usb_ids``). With
``udev_only = true`` (the packaged config) only input devices the agent's udev rules
(``packaging/udev/60-centre-agent.rules``) mark as barcode scanners are taken, whatever
their name: the mark is the property ``CENTRE_AGENT_KIND=barcode`` in the udev database
(``/run/udev/data/c<major>:<minor>``), read before the device is opened, so no other
keyboard is ever opened. Every option and its default: :class:`agent.drivers.options.EvdevOptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from pathlib import Path
from typing import Any

import evdev

from agent.domain.device import DeviceDescriptor, DeviceFamily, DeviceState
from agent.drivers.barcode.keyboard_wedge import KEYMAPS, KeyboardWedgeDecoder, WedgeSettings
from agent.drivers.barcode.scan_delivery import DeliveringScanner
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext
from agent.drivers.options import EvdevOptions, typed_options
from agent.errors import ConfigError, DeviceBusyError, DeviceUnavailableError

#: The udev database (systemd-udevd writes one file per device with its properties).
UDEV_DATA = Path("/run/udev/data")
#: The property the agent's udev rules give a barcode scanner.
UDEV_MARK = "E:CENTRE_AGENT_KIND=barcode"


def wedge_settings(options: EvdevOptions) -> WedgeSettings:
    if options.keymap not in KEYMAPS:
        raise ConfigError(f"drivers.evdev.keymap must be one of {', '.join(sorted(KEYMAPS))}, "
                          f"not {options.keymap!r}")
    return WedgeSettings(prefix=options.prefix, suffix=options.suffix, gap=options.gap,
                         max_length=options.max_length, keymap=options.keymap)


def udev_marked(path: str, udev_data: Path = UDEV_DATA) -> bool:
    """Whether the udev rules marked the input device at ``path`` as a barcode scanner."""
    try:
        rdev = os.stat(path).st_rdev
        record = (udev_data / f"c{os.major(rdev)}:{os.minor(rdev)}").read_text(errors="replace")
    except OSError:
        return False
    return UDEV_MARK in record.splitlines()


class EvdevBarcodeScanner(DeliveringScanner):
    """One input device that types scans."""

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(descriptor, ctx)
        self._init_delivery()
        opts = typed_options(EvdevOptions, options)
        self._settings = wedge_settings(opts)
        self._grab = opts.grab
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
        self._opts = typed_options(EvdevOptions, options)
        wedge_settings(self._opts)  # fail early on bad options
        self._paths = list(self._opts.devices)
        self._patterns = tuple(p.lower() for p in self._opts.name_patterns)
        self._usb_ids = {i.lower() for i in self._opts.usb_ids}
        self._interval = self._opts.rescan_interval
        #: Where the udev database is read for ``udev_only`` (a seam for the tests).
        self.udev_data = UDEV_DATA
        self._scanners: dict[str, EvdevBarcodeScanner] = {}
        self._watch: asyncio.Task[None] | None = None

    @property
    def scanners(self) -> list[EvdevBarcodeScanner]:
        return list(self._scanners.values())

    def _wanted(self) -> list[tuple[str, str, str, str]]:
        """(path, name, phys, vendor:product) of matching devices; blocking (opens nodes)."""
        found = []
        for path in self._paths or evdev.list_devices():
            if self._opts.udev_only and not udev_marked(path, self.udev_data):
                continue  # not handed to the agent by its udev rules: not even opened
            try:
                device = evdev.InputDevice(path)
            except OSError:
                continue
            with contextlib.closing(device):
                usb_id = f"{device.info.vendor:04x}:{device.info.product:04x}"
                name = str(device.name)
                if self._opts.udev_only or self._paths or usb_id in self._usb_ids \
                        or any(p in name.lower() for p in self._patterns):
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
            scanner = EvdevBarcodeScanner(descriptor, self._ctx, self._opts)
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
