"""Serial (RS-232 / USB-CDC) barcode scanners: one scan per CR- or LF-terminated line.

Reading is one blocking pyserial call at a time through ``ctx.run_blocking`` (wait for
a byte, then take what is waiting); ``cancel_read`` ends it on close. Input is bounded:
a line longer than ``max_length`` bytes is dropped up to its terminator (condition
``input-overflow``), and scans arriving faster than ``max_scans_per_second`` are dropped
(condition ``input-flood``) -- a stuck trigger or a misconfigured device cannot grow
memory or flood the clients. Conditions clear once input is normal again.

Backend options (``[drivers.serial-barcode]``): ``ports``, ``baudrate`` (9600),
``encoding`` (utf-8), ``max_length`` (4096), ``max_scans_per_second`` (20).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import serial

from agent.domain.device import DeviceDescriptor, DeviceFamily, DeviceState
from agent.drivers.barcode.scan_delivery import DeliveringScanner
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext
from agent.drivers.options import SerialBarcodeOptions, typed_options
from agent.errors import DeviceUnavailableError

OVERFLOW, FLOOD = "input-overflow", "input-flood"


class LineAssembler:
    """Bytes in, complete lines out; never holds more than ``max_length`` bytes."""

    def __init__(self, max_length: int) -> None:
        self._max = max_length
        self._buffer = bytearray()
        self._discarding = False
        self.overflows = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        for index, byte in enumerate(data):
            if byte in (0x0A, 0x0D):
                self._take(data[start:index])
                if not self._discarding and self._buffer:
                    lines.append(bytes(self._buffer))
                self._buffer.clear()
                self._discarding = False
                start = index + 1
        self._take(data[start:])
        return lines

    def _take(self, chunk: bytes) -> None:
        if self._discarding:
            return
        if len(self._buffer) + len(chunk) > self._max:
            self._buffer.clear()
            self._discarding = True
            self.overflows += 1
            return
        self._buffer += chunk

    @property
    def discarding(self) -> bool:
        return self._discarding


class SerialBarcodeScanner(DeliveringScanner):
    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(descriptor, ctx)
        self._init_delivery()
        opts = typed_options(SerialBarcodeOptions, options)
        self._baudrate = opts.baudrate
        self._encoding = opts.encoding
        self._max_length = opts.max_length
        self._rate = opts.max_scans_per_second
        self._port: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._window_start = 0.0
        self._window_count = 0

    async def open(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = await self._ctx.run_blocking(
                lambda: serial.Serial(self.descriptor.address, self._baudrate, timeout=None))
        except (serial.SerialException, OSError):
            self._set_state(DeviceState.ERROR, "DEVICE_UNAVAILABLE")
            raise DeviceUnavailableError(f"cannot open serial port of {self.descriptor.name}") from None
        self._reader = asyncio.create_task(self._read(self._port),
                                           name=f"serial-barcode-{self.descriptor.address}")
        self._set_state(DeviceState.READY)

    @staticmethod
    def _read_chunk(port: Any) -> bytes:
        first = bytes(port.read(1))
        waiting = int(port.in_waiting)
        return first + (bytes(port.read(waiting)) if waiting else b"")

    async def _read(self, port: Any) -> None:
        lines = LineAssembler(self._max_length)
        try:
            while True:
                chunk = await self._ctx.run_blocking(self._read_chunk, port)
                if not chunk:
                    if self._reader is None:  # cancel_read on close
                        return
                    continue
                for line in lines.feed(chunk):
                    self._accept(line)
                self._counters["overflows"] = lines.overflows
                self._set_condition(OVERFLOW, lines.discarding)
        except (serial.SerialException, OSError):
            self._set_state(DeviceState.GONE, "DEVICE_GONE")
            self._ctx.device_lost(DeviceFamily.BARCODE, self.descriptor.backend, self.descriptor.stable_key,
                                  "serial port went away")

    def _accept(self, line: bytes) -> None:
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
            self._set_condition(FLOOD, False)
        self._window_count += 1
        if self._window_count > self._rate:
            self._counters["dropped_scans"] += 1
            self._set_condition(FLOOD, True)
            return
        text = line.decode(self._encoding, errors="replace").strip()
        if text:
            self._deliver(text)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.cancel_read()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                await self._ctx.run_blocking(port.close)
        if self._state is not DeviceState.GONE:
            self._set_state(DeviceState.PRESENT)


class SerialBarcodeBackend(DeviceBackend):
    name = "serial-barcode"
    family = DeviceFamily.BARCODE

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        self._opts = typed_options(SerialBarcodeOptions, options)
        self._ports = list(self._opts.ports)
        self._scanners: list[SerialBarcodeScanner] = []

    @property
    def scanners(self) -> list[SerialBarcodeScanner]:
        return list(self._scanners)

    async def start(self) -> None:
        if self._scanners:
            return
        for port in self._ports:
            descriptor = DeviceDescriptor(family=DeviceFamily.BARCODE, backend=self.name, stable_key=port,
                                          name=f"Serial barcode scanner on {port}", connection="serial",
                                          address=port)
            scanner = SerialBarcodeScanner(descriptor, self._ctx, self._opts)
            self._scanners.append(scanner)
            self._ctx.device_found(scanner)

    async def stop(self) -> None:
        for scanner in self._scanners:
            await scanner.close()
        self._scanners.clear()
