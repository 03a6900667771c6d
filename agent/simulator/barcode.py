"""Simulated keyboard-wedge scanner: injected texts are *typed* as key events and decoded by the
real :class:`~agent.drivers.barcode.keyboard_wedge.KeyboardWedgeDecoder`.

Characters outside the US layout (Vietnamese letters in a CCCD QR) are typed the way
scanners do it, Alt + keypad decimal code point. Options (``[drivers.sim-barcode]``):
``demo_scans`` (texts scanned one after another every ``demo_interval`` seconds; 0, the
default, scans only what :meth:`SimulatedBarcodeScanner.inject` is given).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from agent.domain.device import DeviceDescriptor, DeviceFamily, DeviceState
from agent.drivers.barcode.keyboard_wedge import (
    ALTS,
    EV_KEY,
    KEY_DOWN,
    KEY_UP,
    KEYPAD_DIGITS,
    US_KEYMAP,
    KeyboardWedgeDecoder,
)
from agent.drivers.barcode.scan_delivery import DeliveringScanner
from agent.drivers.base import BackendOptions, Device, DeviceBackend, DriverContext
from agent.drivers.options import SimBarcodeOptions, typed_options

KEY_LEFTSHIFT = 42
#: Enter on the main block; keypad codes are for Alt sequences only.
_TYPED: dict[str, tuple[int, bool]] = {}
for _code, (_plain, _shifted) in sorted(US_KEYMAP.items(), reverse=True):
    if _code in KEYPAD_DIGITS or _code in (96, 55, 74, 78, 83, 98):
        continue
    _TYPED[_plain] = (_code, False)
    _TYPED.setdefault(_shifted, (_code, True))
_KEYPAD = {digit: code for code, digit in KEYPAD_DIGITS.items()}


@dataclass(frozen=True, slots=True)
class TypedKey:
    """An ``evdev.InputEvent`` look-alike (what the decoder reads)."""

    type: int
    code: int
    value: int
    at: float

    def timestamp(self) -> float:
        return self.at


def type_text(text: str, start: float, step: float = 0.002) -> Iterator[TypedKey]:
    """The key events of a US-layout wedge scanner typing ``text``."""
    when = start

    def key(code: int, value: int) -> TypedKey:
        nonlocal when
        when += step
        return TypedKey(EV_KEY, code, value, when)

    alt = min(ALTS)
    for char in text:
        if char in _TYPED:
            code, shift = _TYPED[char]
            if shift:
                yield key(KEY_LEFTSHIFT, KEY_DOWN)
            yield key(code, KEY_DOWN)
            yield key(code, KEY_UP)
            if shift:
                yield key(KEY_LEFTSHIFT, KEY_UP)
        else:
            yield key(alt, KEY_DOWN)
            for digit in str(ord(char)):
                yield key(_KEYPAD[digit], KEY_DOWN)
                yield key(_KEYPAD[digit], KEY_UP)
            yield key(alt, KEY_UP)


class SimulatedBarcodeScanner(DeliveringScanner):
    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext) -> None:
        super().__init__(descriptor, ctx)
        self._init_delivery()
        self._decoder = KeyboardWedgeDecoder()
        self._clock = 0.0

    async def open(self) -> None:
        self._set_state(DeviceState.READY)

    async def close(self) -> None:
        self._set_state(DeviceState.PRESENT)

    def inject(self, text: str) -> None:
        """Scan ``text``: type it (plus the Enter suffix) into the real decoder."""
        self._clock += 10.0  # scans are far apart on the simulated clock
        for event in type_text(text + "\n", self._clock):
            for scanned in self._decoder.feed(event):
                self._deliver(scanned)
        self._counters["overflows"] = self._decoder.overflows


class SimulatedBarcodeBackend(DeviceBackend):
    name = "sim-barcode"
    family = DeviceFamily.BARCODE

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        opts = typed_options(SimBarcodeOptions, options)
        self._demo = list(opts.demo_scans)
        self._interval = opts.demo_interval
        self._task: asyncio.Task[None] | None = None
        self.device: SimulatedBarcodeScanner | None = None

    async def start(self) -> None:
        descriptor = DeviceDescriptor(family=self.family, backend=self.name, stable_key="sim-0",
                                      name="Simulated barcode scanner", vendor="centre-devices",
                                      model="simulator", serial="SIM0001", connection="simulated",
                                      address="in-process")
        self.device = SimulatedBarcodeScanner(descriptor, self._ctx)
        device: Device = self.device
        self._ctx.device_found(device)
        if self._demo and self._interval > 0:
            self._task = asyncio.create_task(self._scan_demo(self.device))

    async def _scan_demo(self, scanner: SimulatedBarcodeScanner) -> None:
        while True:
            for text in self._demo:
                await asyncio.sleep(self._interval)
                scanner.inject(text)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.device is not None:
            await self.device.close()
