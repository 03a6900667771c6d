"""libfprint 2 sensors, driven directly through PyGObject (not fprintd).

fprintd keeps prints per Linux user and cannot export them; the agent needs the
opposite: templates (``FpPrint.serialize()``) go back to the caller, who supplies
them again to verify or identify. Nothing is kept here.

All libfprint calls start on a private GLib main context run by
:class:`~agent.drivers.fingerprint.glib_thread.GLibThread` (why not the
GLib-asyncio loop policy: see that module). An operation is a libfprint async call
with a ``Gio.Cancellable``; asyncio task cancellation and timeouts cancel it and wait
for libfprint to settle, so the device is idle again when the coroutine returns.

Backend options (``[drivers.libfprint]``):

``virtual_image_socket`` / ``virtual_device_socket``
    set ``FP_VIRTUAL_IMAGE`` / ``FP_VIRTUAL_DEVICE`` before the libfprint context is
    created, exposing libfprint's own virtual drivers (tests and ``--simulate``).
``drivers``
    a list of libfprint driver ids to expose (default: all real sensors; libfprint's
    virtual drivers only when this backend was given their socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import gi

gi.require_version("FPrint", "2.0")

from gi.repository import FPrint, Gio, GLib  # noqa: E402

from agent.domain.device import (  # noqa: E402
    Capabilities,
    DeviceDescriptor,
    DeviceFamily,
    DeviceHealth,
    DeviceState,
)
from agent.domain.events import EventKind  # noqa: E402
from agent.domain.fingerprint import (  # noqa: E402
    EnrollProgress,
    FingerprintCapabilities,
    FingerprintImage,
    FingerprintTemplate,
    IdentifyResult,
    MatchResult,
    TemplateFormat,
)
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext, FingerprintSensor  # noqa: E402
from agent.drivers.fingerprint.glib_thread import GLibThread  # noqa: E402
from agent.drivers.options import LibfprintOptions, typed_options  # noqa: E402
from agent.errors import (  # noqa: E402
    AgentError,
    DataFormatError,
    DeviceBusyError,
    DeviceGoneError,
    DeviceProtocolError,
    DeviceStateError,
    DeviceUnavailableError,
    InvalidRequestError,
    NotSupportedError,
    OperationCancelledError,
    OperationTimeoutError,
    TransientDeviceError,
)

#: A serialized FpPrint is a few KiB; anything far larger is not a template.
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_IDENTIFY_TEMPLATES = 1000
#: How long to wait for libfprint to acknowledge a cancellation before giving up on it.
SETTLE_SECONDS = 5.0

#: FpDeviceRetry -> the retry reasons of :class:`~agent.domain.fingerprint.EnrollProgress`.
RETRY_REASONS: dict[int, str] = {
    int(FPrint.DeviceRetry.GENERAL): "POOR_QUALITY",
    int(FPrint.DeviceRetry.TOO_SHORT): "TOO_SHORT",
    int(FPrint.DeviceRetry.CENTER_FINGER): "CENTER_FINGER",
    int(FPrint.DeviceRetry.REMOVE_FINGER): "REMOVE_AND_RETRY",
}

_RETRY_DOMAIN = GLib.quark_to_string(FPrint.device_retry_quark())
_ERROR_DOMAIN = GLib.quark_to_string(FPrint.device_error_quark())
_IO_DOMAIN = GLib.quark_to_string(Gio.io_error_quark())

Finish = Callable[[Any, BaseException | None], None]


def retry_reason(error: GLib.Error) -> str:
    """The retry reason of an ``FpDeviceRetry`` error, ``""`` for any other error."""
    if error.domain != _RETRY_DOMAIN:
        return ""
    return RETRY_REASONS.get(error.code, "POOR_QUALITY")


def translate_error(error: GLib.Error, operation: str, device_id: str, removed: bool) -> AgentError:
    """Map a libfprint/GIO error to the agent's hierarchy. The message names only the
    operation and the error code: libfprint messages are not ours to forward."""
    where = f"fingerprint {operation} on {device_id}"
    if removed:
        return DeviceGoneError(f"{where}: sensor removed", device_id=device_id)
    if error.domain == _RETRY_DOMAIN:
        reason = retry_reason(error)
        return TransientDeviceError(f"{where}: retry ({reason})", reason=reason, device_id=device_id)
    if error.domain == _ERROR_DOMAIN:
        code = error.code
        if code == FPrint.DeviceError.REMOVED:
            return DeviceGoneError(f"{where}: sensor removed", device_id=device_id)
        if code == FPrint.DeviceError.BUSY:
            return DeviceBusyError(f"{where}: sensor busy", device_id=device_id)
        if code in (FPrint.DeviceError.NOT_OPEN, FPrint.DeviceError.ALREADY_OPEN):
            return DeviceStateError(f"{where}: sensor not in a usable state", reason="NOT_OPEN",
                                    device_id=device_id)
        if code == FPrint.DeviceError.NOT_SUPPORTED:
            return NotSupportedError(f"{where}: not supported by this sensor", device_id=device_id)
        if code == FPrint.DeviceError.DATA_INVALID:
            return DataFormatError(f"{where}: template rejected by the sensor", device_id=device_id)
        if code == FPrint.DeviceError.TOO_HOT:
            return DeviceStateError(f"{where}: sensor too hot", reason="TOO_HOT", device_id=device_id,
                                    retryable=True)
        return DeviceProtocolError(f"{where}: device error {code}", device_id=device_id)
    if error.domain == _IO_DOMAIN:
        if error.code == Gio.IOErrorEnum.CANCELLED:
            return OperationCancelledError(f"{where}: cancelled", device_id=device_id)
        if error.code == Gio.IOErrorEnum.TIMED_OUT:
            return OperationTimeoutError(f"{where}: sensor timed out", device_id=device_id)
    return DeviceProtocolError(f"{where}: failed ({error.domain} {error.code})", device_id=device_id)


def finger_status_name(flags: int) -> str:
    if flags & FPrint.FingerStatusFlags.PRESENT:
        return "present"
    if flags & FPrint.FingerStatusFlags.NEEDED:
        return "needed"
    return "none"


class LibfprintSensor(FingerprintSensor):
    """One libfprint device (``FpDevice``)."""

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, glib: GLibThread,
                 fpdev: Any) -> None:
        super().__init__(descriptor, ctx)
        self._glib = glib
        self._fpdev = fpdev
        self._stages = int(fpdev.get_nr_enroll_stages())
        features = fpdev.get_features()
        self._can_capture = bool(features & FPrint.DeviceFeature.CAPTURE)
        self._can_identify = bool(features & FPrint.DeviceFeature.IDENTIFY)
        self._can_verify = bool(features & FPrint.DeviceFeature.VERIFY)
        self._state = DeviceState.PRESENT
        self._last_error = ""
        self._counters: dict[str, int] = {"captures": 0, "enrollments": 0, "verifications": 0,
                                          "identifications": 0, "retries": 0}
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notify_handler = 0

    # -- Device ----------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        features = {"enroll"}
        if self._can_verify:
            features.add("verify")
        if self._can_identify:
            features.add("identify")
        if self._can_capture:
            features.add("capture_image")
        return Capabilities(features=frozenset(features))

    def fingerprint_capabilities(self) -> FingerprintCapabilities:
        return FingerprintCapabilities(
            template_formats=(TemplateFormat.LIBFPRINT,),
            enroll_stages=self._stages,
            can_capture_image=self._can_capture,
            can_identify=self._can_identify,
            max_identify_templates=MAX_IDENTIFY_TEMPLATES if self._can_identify else 0,
        )

    def health(self) -> DeviceHealth:
        return DeviceHealth(state=self._state, counters=dict(self._counters), last_error=self._last_error)

    async def open(self) -> None:
        if self._state is DeviceState.READY:
            return
        self._loop = asyncio.get_running_loop()
        fpdev = self._fpdev

        def begin(cancellable: Any, finish: Finish) -> None:
            def done(dev: Any, res: Any, *_a: Any) -> None:
                try:
                    finish(dev.open_finish(res), None)
                except GLib.Error as exc:
                    finish(None, exc)
            if fpdev.is_open():
                finish(True, None)
                return
            fpdev.open(cancellable=cancellable, callback=done)

        try:
            await self._operation("open", begin, timeout=30.0, exclusive=False)
        except AgentError as exc:
            self._set_state(DeviceState.ERROR, exc.reason)
            raise DeviceUnavailableError(f"cannot open fingerprint sensor {self.descriptor.stable_key}",
                                         device_id=self.descriptor.stable_key) from None
        self._notify_handler = await self._glib.run(
            lambda: fpdev.connect("notify::finger-status", self._on_finger_status))
        self._set_state(DeviceState.READY, "")

    async def close(self) -> None:
        fpdev = self._fpdev
        if not self._glib.running:
            return
        handler, self._notify_handler = self._notify_handler, 0

        def begin(cancellable: Any, finish: Finish) -> None:
            if handler:
                fpdev.disconnect(handler)
            if not fpdev.is_open():
                finish(None, None)
                return

            def done(dev: Any, res: Any, *_a: Any) -> None:
                try:
                    finish(dev.close_finish(res), None)
                except GLib.Error as exc:
                    finish(None, exc)
            fpdev.close(cancellable=cancellable, callback=done)

        # closing a removed or wedged sensor: nothing left to release
        with contextlib.suppress(AgentError):
            await self._operation("close", begin, timeout=SETTLE_SECONDS, exclusive=False)
        if self._state is not DeviceState.GONE:
            self._set_state(DeviceState.PRESENT, "")

    # -- FingerprintSensor ------------------------------------------------------------------------

    async def capture(self, timeout: float) -> FingerprintImage:
        if not self._can_capture:
            raise NotSupportedError("this sensor cannot capture images", device_id=self.descriptor.stable_key)
        fpdev = self._fpdev

        def begin(cancellable: Any, finish: Finish) -> None:
            def done(dev: Any, res: Any, *_a: Any) -> None:
                try:
                    image = dev.capture_finish(res)
                    ppmm = float(image.get_ppmm())
                    finish((int(image.get_width()), int(image.get_height()), bytes(image.get_data()),
                            round(ppmm * 25.4) if ppmm > 0 else 500), None)
                except GLib.Error as exc:
                    finish(None, exc)
            fpdev.capture(True, cancellable=cancellable, callback=done)

        width, height, pixels, dpi = await self._operation("capture", begin, timeout)
        self._counters["captures"] += 1
        return FingerprintImage(width=width, height=height, pixels=pixels, resolution_dpi=dpi)

    async def enroll(self, on_progress: Callable[[EnrollProgress], None], timeout: float
                     ) -> FingerprintTemplate:
        fpdev, stages, loop = self._fpdev, self._stages, asyncio.get_running_loop()

        def report(progress: EnrollProgress) -> None:
            if progress.retry_reason:
                self._counters["retries"] += 1
            on_progress(progress)

        def begin(cancellable: Any, finish: Finish) -> None:
            def progress(_dev: Any, completed: int, *rest: Any) -> None:
                error = rest[-1] if rest and isinstance(rest[-1], GLib.Error) else None
                reason = retry_reason(error) if error is not None else ""
                loop.call_soon_threadsafe(report, EnrollProgress(int(completed), stages, reason))

            def done(dev: Any, res: Any, *_a: Any) -> None:
                try:
                    enrolled = dev.enroll_finish(res)
                    finish(bytes(enrolled.serialize()), None)
                except GLib.Error as exc:
                    finish(None, exc)
            # keywords: positional user_data would be bound to the progress closure
            fpdev.enroll(FPrint.Print.new(fpdev), cancellable=cancellable, progress_cb=progress,
                         callback=done)

        data = await self._operation("enroll", begin, timeout)
        self._counters["enrollments"] += 1
        return FingerprintTemplate(format=TemplateFormat.LIBFPRINT, data=data)

    async def verify(self, template: FingerprintTemplate, timeout: float) -> MatchResult:
        enrolled = self._parse_template(template)
        if not self._can_verify:
            raise NotSupportedError("this sensor cannot verify", device_id=self.descriptor.stable_key)
        fpdev = self._fpdev

        def begin(cancellable: Any, finish: Finish) -> None:
            def done(dev: Any, res: Any, *_a: Any) -> None:
                try:
                    matched, _scanned = dev.verify_finish(res)
                    finish(bool(matched), None)
                except GLib.Error as exc:
                    finish(None, exc)
            fpdev.verify(enrolled, cancellable=cancellable, callback=done)

        matched = await self._operation("verify", begin, timeout)
        self._counters["verifications"] += 1
        return MatchResult(matched=matched)

    async def identify(self, templates: Sequence[FingerprintTemplate], timeout: float) -> IdentifyResult:
        if not templates:
            raise InvalidRequestError("identify needs at least one template")
        if len(templates) > MAX_IDENTIFY_TEMPLATES:
            raise InvalidRequestError(f"identify takes at most {MAX_IDENTIFY_TEMPLATES} templates")
        gallery = [self._parse_template(t) for t in templates]
        if not self._can_identify:
            raise NotSupportedError("this sensor cannot identify", device_id=self.descriptor.stable_key)
        fpdev = self._fpdev

        def begin(cancellable: Any, finish: Finish) -> None:
            def done(dev: Any, res: Any, *_a: Any) -> None:
                try:
                    match, _scanned = dev.identify_finish(res)
                    index = -1
                    if match is not None:
                        for i, candidate in enumerate(gallery):
                            if candidate is match or candidate.equal(match):
                                index = i
                                break
                    finish(index, None)
                except GLib.Error as exc:
                    finish(None, exc)
            fpdev.identify(gallery, cancellable=cancellable, callback=done)

        index = await self._operation("identify", begin, timeout)
        self._counters["identifications"] += 1
        return IdentifyResult(index=index)

    # -- internals --------------------------------------------------------------------------------

    def _parse_template(self, template: FingerprintTemplate) -> Any:
        """Deserialize a caller's template; garbage fails here, before the sensor is touched."""
        if template.format is not TemplateFormat.LIBFPRINT:
            raise DataFormatError(f"template format {template.format} is not libfprint's")
        if not template.data or len(template.data) > MAX_TEMPLATE_BYTES:
            raise DataFormatError("template is empty or too large to be a libfprint print")
        try:
            parsed = FPrint.Print.deserialize(template.data)
        except GLib.Error:
            raise DataFormatError("template does not parse as a libfprint print") from None
        if not parsed.compatible(self._fpdev):
            raise DataFormatError("template was made by a different sensor type",
                                  device_id=self.descriptor.stable_key)
        return parsed

    async def _operation(self, name: str, begin: Callable[[Any, Finish], None], timeout: float,
                         exclusive: bool = True) -> Any:
        """Start ``begin`` on the GLib thread and await its completion.

        ``begin(cancellable, finish)`` starts one libfprint async call; its callback calls
        ``finish(result, error)``. Timeouts and task cancellation cancel the call and wait
        for libfprint to acknowledge before returning.
        """
        device_id = self.descriptor.stable_key
        if exclusive:
            if self._state is DeviceState.GONE:
                raise DeviceGoneError(f"fingerprint sensor {device_id} is gone", device_id=device_id)
            if self._state is not DeviceState.READY:
                raise DeviceStateError(f"fingerprint sensor {device_id} is not open", reason="NOT_OPEN",
                                       device_id=device_id)
            if self._busy:
                raise DeviceBusyError(f"fingerprint sensor {device_id} is busy", device_id=device_id)
        if timeout <= 0:
            raise InvalidRequestError("timeout must be positive")
        cancellable = Gio.Cancellable()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        settled = asyncio.Event()

        def resolve(result: Any, error: BaseException | None) -> None:  # on the asyncio loop
            settled.set()
            if waiter.done():  # cancelled or timed out: the outcome is dropped
                return
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(result)

        def finish(result: Any, error: BaseException | None) -> None:  # on the GLib thread
            if not loop.is_closed():
                loop.call_soon_threadsafe(resolve, result, error)

        if exclusive:
            self._busy = True
        try:
            self._glib.call_soon(lambda: begin(cancellable, finish))
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            await self._cancel_and_settle(cancellable, settled)
            raise OperationTimeoutError(f"fingerprint {name} on {device_id}: no finger in time",
                                        device_id=device_id) from None
        except asyncio.CancelledError:
            await self._cancel_and_settle(cancellable, settled)
            raise
        except GLib.Error as exc:
            removed = bool(self._fpdev.get_property("removed"))
            error = translate_error(exc, name, device_id, removed)
            if isinstance(error, DeviceGoneError):
                self._set_state(DeviceState.GONE, error.reason)
            elif isinstance(error, TransientDeviceError):
                self._counters["retries"] += 1
            raise error from None
        finally:
            if exclusive:
                self._busy = False

    async def _cancel_and_settle(self, cancellable: Any, settled: asyncio.Event) -> None:
        """Cancel the libfprint call and wait until it has completed, so the device is idle."""
        # cancel() runs libfprint's handlers synchronously: it must run on the GLib thread
        self._glib.call_soon(cancellable.cancel)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settled.wait(), SETTLE_SECONDS)

    def _on_finger_status(self, fpdev: Any, _pspec: Any) -> None:
        # GLib thread: hand the event over to the asyncio loop
        status = finger_status_name(int(fpdev.get_finger_status()))
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.finger_status_changed, status)

    def finger_status_changed(self, status: str) -> None:
        """On the asyncio loop: the sensor now wants a finger (``needed``), has one, or neither."""
        self._ctx.emit(self, EventKind.FINGER_STATUS, {"status": status})

    def _set_state(self, state: DeviceState, last_error: str) -> None:
        if state is self._state and last_error == self._last_error:
            return
        self._state, self._last_error = state, last_error
        self._ctx.health_changed(self)

    def mark_removed(self) -> None:
        """The libfprint context reported the device gone."""
        self._set_state(DeviceState.GONE, "DEVICE_GONE")


def stable_key(fpdev: Any) -> str:
    return f"{fpdev.get_driver()}/{fpdev.get_device_id()}"


class LibfprintBackend(DeviceBackend):
    """Enumerates libfprint devices and follows hotplug through ``FpContext`` signals."""

    name = "libfprint"
    family = DeviceFamily.FINGERPRINT

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        self._glib: GLibThread | None = None
        self._fpctx: Any = None
        self._sensors: dict[str, LibfprintSensor] = {}
        self._removed: list[LibfprintSensor] = []  # closed at stop: libfprint wants open devices closed
        self._handlers: list[int] = []
        self._device_handlers: list[tuple[Any, int]] = []
        self._virtual: set[str] = set()  # FP_VIRTUAL_* variables this backend set
        self._opts = typed_options(LibfprintOptions, options)
        self._drivers: frozenset[str] | None = frozenset(self._opts.drivers) if self._opts.drivers else None

    @property
    def sensors(self) -> list[LibfprintSensor]:
        return list(self._sensors.values())

    async def start(self) -> None:
        if self._fpctx is not None:
            return
        for value, variable in ((self._opts.virtual_image_socket, "FP_VIRTUAL_IMAGE"),
                                (self._opts.virtual_device_socket, "FP_VIRTUAL_DEVICE")):
            if value:
                # libfprint reads these when the context enumerates
                os.environ[variable] = value
                self._virtual.add(variable)
        glib = self._glib = await self._ctx.run_blocking(GLibThread.acquire)
        loop = asyncio.get_running_loop()

        def enumerate_devices() -> list[Any]:
            fpctx = FPrint.Context.new()
            fpctx.enumerate()
            self._fpctx = fpctx
            self._handlers = [
                fpctx.connect("device-added", lambda _c, d: loop.call_soon_threadsafe(self._add, d)),
                fpctx.connect("device-removed", lambda _c, d: loop.call_soon_threadsafe(self._remove, d)),
            ]
            return list(fpctx.get_devices())

        try:
            found = await glib.run(enumerate_devices)
        except GLib.Error:
            self._ctx.logger.warning("libfprint: cannot enumerate fingerprint devices")
            return
        for fpdev in found:
            self._add(fpdev)
        self._ctx.logger.info("libfprint: %d fingerprint device(s)", len(self._sensors))

    def _add(self, fpdev: Any) -> None:
        key, glib = stable_key(fpdev), self._glib
        if glib is None or key in self._sensors:
            return
        driver = str(fpdev.get_driver())
        if self._drivers is not None and driver not in self._drivers:
            return
        if self._drivers is None and driver.startswith("virtual_") and not self._virtual:
            return  # another backend's (the simulator's) virtual device: never a real sensor
        virtual = str(fpdev.get_driver()).startswith("virtual")
        descriptor = DeviceDescriptor(
            family=DeviceFamily.FINGERPRINT, backend=self.name, stable_key=key,
            name=str(fpdev.get_name()), vendor="libfprint", model=str(fpdev.get_driver()),
            connection="simulated" if virtual else "usb", address=key,
        )
        sensor = self.make_sensor(descriptor, glib, fpdev)
        self._sensors[key] = sensor
        # FpContext reports udev unplugs; FpDevice::removed covers every driver (virtual ones too)
        loop = asyncio.get_running_loop()
        self._device_handlers.append(
            (fpdev, fpdev.connect("removed", lambda d: loop.call_soon_threadsafe(self._remove, d))))
        self._ctx.device_found(sensor)

    def make_sensor(self, descriptor: DeviceDescriptor, glib: GLibThread, fpdev: Any) -> LibfprintSensor:
        """The device object for one FpDevice (the simulator substitutes its own)."""
        return LibfprintSensor(descriptor, self._ctx, glib, fpdev)

    def _remove(self, fpdev: Any) -> None:
        key = stable_key(fpdev)
        sensor = self._sensors.pop(key, None)
        if sensor is None:
            return
        sensor.mark_removed()
        self._removed.append(sensor)
        self._ctx.logger.info("libfprint: sensor %s removed", key)
        self._ctx.device_lost(DeviceFamily.FINGERPRINT, self.name, key, "removed")

    async def stop(self) -> None:
        glib = self._glib
        if glib is None:
            return
        for sensor in [*self._sensors.values(), *self._removed]:
            await sensor.close()
        self._sensors.clear()
        self._removed.clear()
        fpctx, handlers = self._fpctx, self._handlers

        device_handlers, self._device_handlers = self._device_handlers, []

        def drop() -> None:
            for handler in handlers:
                fpctx.disconnect(handler)
            for fpdev, handler in device_handlers:
                fpdev.disconnect(handler)

        if fpctx is not None:
            await glib.run(drop)
        self._fpctx, self._handlers, self._glib = None, [], None
        await self._ctx.run_blocking(glib.release)
        for variable in self._virtual:
            os.environ.pop(variable, None)
        self._virtual.clear()
