"""Simulated fingerprint sensor: libfprint's ``virtual_image`` driver through the real backend.

The agent's own :class:`~agent.drivers.fingerprint.libfprint_backend.LibfprintBackend`
opens libfprint's virtual image device; whenever the sensor asks for a finger, this
simulator presses a real sample print (NIST images, as shipped with libfprint's
examples) onto its socket, so enrolment, NBIS matching, retries and cancellation
are libfprint's own.

Options (``[drivers.sim-fingerprint]``): ``prints_dir`` (default
``$CENTRE_FINGERPRINT_PRINTS`` or the sample prints in ``agent/simulator/prints``),
``enroll_print`` (``whorl``) and ``match_print`` (``whorl``; ``tented_arch`` shows a
rejection).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.domain.device import DeviceDescriptor
from agent.domain.fingerprint import (
    EnrollProgress,
    FingerprintImage,
    FingerprintTemplate,
    IdentifyResult,
    MatchResult,
)
from agent.drivers.base import BackendOptions, DriverContext
from agent.drivers.fingerprint.glib_thread import GLibThread
from agent.drivers.fingerprint.libfprint_backend import LibfprintBackend, LibfprintSensor
from agent.drivers.options import LibfprintOptions, SimFingerprintOptions, typed_options
from agent.errors import ConfigError, DeviceUnavailableError
from agent.simulator.virtual_image import VirtualImageFinger, print_frame


def default_prints_dir() -> Path:
    """``$CENTRE_FINGERPRINT_PRINTS``, else the sample prints shipped with the package."""
    override = os.environ.get("CENTRE_FINGERPRINT_PRINTS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / "prints"


class SimulatedFingerprintSensor(LibfprintSensor):
    """A libfprint virtual_image sensor with a simulated finger on it."""

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, glib: GLibThread, fpdev: Any,
                 finger: VirtualImageFinger, frames: dict[str, bytes], enroll_print: str,
                 match_print: str) -> None:
        super().__init__(descriptor, ctx, glib, fpdev)
        self._finger = finger
        self._frames = frames
        #: which sample print (file stem in the prints folder) enrolment and matching press
        self.enroll_print = enroll_print
        self.match_print = match_print
        self._next = match_print
        self._presses: set[asyncio.Task[None]] = set()

    def finger_status_changed(self, status: str) -> None:
        super().finger_status_changed(status)
        frame = self._frames.get(self._next)
        if status == "needed" and frame is not None:
            task = asyncio.ensure_future(self._finger.send(frame))
            self._presses.add(task)
            task.add_done_callback(self._pressed)

    def _pressed(self, task: asyncio.Task[None]) -> None:
        self._presses.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._ctx.logger.warning("sim-fingerprint: could not press the sample print")

    async def capture(self, timeout: float) -> FingerprintImage:
        self._next = self.match_print
        return await super().capture(timeout)

    async def enroll(self, on_progress: Callable[[EnrollProgress], None], timeout: float
                     ) -> FingerprintTemplate:
        self._next = self.enroll_print
        return await super().enroll(on_progress, timeout)

    async def verify(self, template: FingerprintTemplate, timeout: float) -> MatchResult:
        self._next = self.match_print
        return await super().verify(template, timeout)

    async def identify(self, templates: Sequence[FingerprintTemplate], timeout: float) -> IdentifyResult:
        self._next = self.match_print
        return await super().identify(templates, timeout)

    async def close(self) -> None:
        await super().close()
        for task in list(self._presses):
            task.cancel()
        await self._finger.close()


class SimulatedFingerprintBackend(LibfprintBackend):
    name = "sim-fingerprint"

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        self._socket_dir = Path(tempfile.mkdtemp(prefix="centre-sim-fp-"))
        opts = typed_options(SimFingerprintOptions, options)
        folder = Path(opts.prints_dir) if opts.prints_dir else default_prints_dir()
        self._enroll_print = opts.enroll_print
        self._match_print = opts.match_print
        try:
            self._frames = {png.stem: print_frame(png) for png in sorted(folder.glob("*.png"))}
        except (OSError, ValueError):
            self._frames = {}
        if not {self._enroll_print, self._match_print} <= self._frames.keys():
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            message = (f"sim-fingerprint: sample prints not found in {folder} "
                       "(set prints_dir or CENTRE_FINGERPRINT_PRINTS)")
            if opts.prints_dir:
                raise ConfigError(message)
            raise DeviceUnavailableError(message)  # this backend fails alone; the agent runs on
        self._socket = str(self._socket_dir / "virtual-image.sock")
        super().__init__(ctx, LibfprintOptions(virtual_image_socket=self._socket, drivers=["virtual_image"]))

    def make_sensor(self, descriptor: DeviceDescriptor, glib: GLibThread, fpdev: Any) -> LibfprintSensor:
        return SimulatedFingerprintSensor(descriptor, self._ctx, glib, fpdev, VirtualImageFinger(self._socket),
                                          self._frames, self._enroll_print, self._match_print)

    async def stop(self) -> None:
        await super().stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self._socket_dir)
