"""UART fingerprint modules speaking ZFM (R307, R503, AS608) over pyserial.

Every serial exchange is one blocking call through ``ctx.run_blocking``; waiting for a
finger is a loop of GenImg polls, so asyncio cancellation takes effect between polls.
Templates are the module's character files (``TemplateFormat.ZFM``), uploaded with
UpChar after enrolment and downloaded with DownChar to verify; the module's own flash
library is never written (the agent stores no prints).

Backend options (``[drivers.zfm]``): ``ports`` (list of serial device paths, e.g.
``/dev/serial/by-id/...``), ``baudrate`` (57600), ``password`` (0), ``address``
(0xFFFFFFFF), ``poll_interval`` (seconds between GenImg polls, 0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import serial

from agent.domain.device import Capabilities, DeviceDescriptor, DeviceFamily, DeviceHealth, DeviceState
from agent.domain.fingerprint import (
    EnrollProgress,
    FingerprintCapabilities,
    FingerprintImage,
    FingerprintTemplate,
    IdentifyResult,
    MatchResult,
    TemplateFormat,
)
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext, FingerprintSensor
from agent.drivers.fingerprint import zfm_protocol as zfm
from agent.drivers.options import ZfmOptions, typed_options
from agent.errors import (
    AgentError,
    DataFormatError,
    DeviceBusyError,
    DeviceGoneError,
    DeviceStateError,
    DeviceUnavailableError,
    InvalidRequestError,
    OperationTimeoutError,
    TransientDeviceError,
)

ENROLL_STAGES = 2
MIN_TEMPLATE, MAX_TEMPLATE = 256, 2048
MAX_IDENTIFY_TEMPLATES = 200
#: Img2Tz / GenImg failures the user fixes by pressing again.
RETRY_CODES = {
    zfm.IMAGE_FAILED: "POOR_QUALITY",
    zfm.IMAGE_DISORDERLY: "POOR_QUALITY",
    zfm.INVALID_IMAGE: "POOR_QUALITY",
    zfm.TOO_FEW_FEATURES: "CENTER_FINGER",
}


class ZfmSensor(FingerprintSensor):
    """One ZFM module on one serial port."""

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(descriptor, ctx)
        opts = typed_options(ZfmOptions, options)
        self._baudrate = opts.baudrate
        self._password = opts.password
        self._address = opts.address
        self._poll = opts.poll_interval
        self._serial: Any = None
        self._link: zfm.ZfmLink | None = None
        self._lock = asyncio.Lock()
        self._state = DeviceState.PRESENT
        self._last_error = ""
        self._counters: dict[str, int] = {"captures": 0, "enrollments": 0, "verifications": 0,
                                          "identifications": 0, "retries": 0, "protocol_errors": 0}

    def capabilities(self) -> Capabilities:
        return Capabilities(features=frozenset({"enroll", "verify", "identify", "capture_image"}))

    def fingerprint_capabilities(self) -> FingerprintCapabilities:
        return FingerprintCapabilities(
            template_formats=(TemplateFormat.ZFM,), enroll_stages=ENROLL_STAGES, can_capture_image=True,
            can_identify=True, max_identify_templates=MAX_IDENTIFY_TEMPLATES,
            image_width=zfm.IMAGE_WIDTH, image_height=zfm.IMAGE_HEIGHT,
        )

    def health(self) -> DeviceHealth:
        return DeviceHealth(state=self._state, counters=dict(self._counters), last_error=self._last_error)

    def _set_state(self, state: DeviceState, last_error: str = "") -> None:
        if (state, last_error) != (self._state, self._last_error):
            self._state, self._last_error = state, last_error
            self._ctx.health_changed(self)

    async def open(self) -> None:
        if self._link is not None:
            return
        port = self.descriptor.address

        def connect() -> tuple[Any, zfm.ZfmLink]:
            try:
                handle = serial.Serial(port, baudrate=self._baudrate, timeout=1.0, write_timeout=1.0)
            except (serial.SerialException, OSError):
                raise DeviceUnavailableError(f"cannot open serial port of {self.descriptor.name}") from None
            link = zfm.ZfmLink(handle, self._address, self.descriptor.name)
            try:
                handle.reset_input_buffer()
                link.verify_password(self._password)
                link.read_system_parameters()
            except BaseException:
                handle.close()
                raise
            return handle, link

        try:
            self._serial, self._link = await self._ctx.run_blocking(connect)
        except AgentError as exc:
            self._set_state(DeviceState.ERROR, exc.reason)
            raise
        self._set_state(DeviceState.READY)

    async def close(self) -> None:
        handle, self._serial, self._link = self._serial, None, None
        if handle is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                await self._ctx.run_blocking(handle.close)
        if self._state is not DeviceState.GONE:
            self._set_state(DeviceState.PRESENT)

    # -- operations --------------------------------------------------------------------------------

    async def _call(self, fn: Callable[[zfm.ZfmLink], Any]) -> Any:
        link = self._link
        if link is None:
            raise DeviceStateError(f"{self.descriptor.name} is not open", reason="NOT_OPEN")
        transaction = asyncio.ensure_future(self._ctx.run_blocking(fn, link))
        try:
            try:
                result = await asyncio.shield(transaction)
            except asyncio.CancelledError:
                # the command is already on the wire in a worker thread: let it finish, or the next
                # command would run beside it on the same port and read its reply
                await asyncio.wait({transaction})
                if not transaction.cancelled():
                    transaction.exception()  # retrieved: the caller asked to cancel, not for this result
                raise
        except (serial.SerialException, OSError):
            self._set_state(DeviceState.GONE, "DEVICE_GONE")
            self._ctx.device_lost(DeviceFamily.FINGERPRINT, self.descriptor.backend, self.descriptor.stable_key,
                                  "serial port went away")
            raise DeviceGoneError(f"{self.descriptor.name} went away", device_id=self.descriptor.stable_key
                                  ) from None
        except DeviceUnavailableError as exc:
            self._set_state(DeviceState.ERROR, exc.reason)
            raise
        except AgentError as exc:
            if exc.reason == "PROTOCOL_ERROR":
                self._counters["protocol_errors"] += 1
            raise
        if self._state is DeviceState.ERROR:
            self._set_state(DeviceState.READY)  # the module answers again
        return result

    async def _exclusive(self) -> None:
        if self._lock.locked():
            raise DeviceBusyError(f"{self.descriptor.name} is busy", device_id=self.descriptor.stable_key)
        if self._state is DeviceState.GONE:
            raise DeviceGoneError(f"{self.descriptor.name} is gone", device_id=self.descriptor.stable_key)

    async def _take_image(self, deadline: float) -> None:
        """Poll GenImg until a finger is imaged."""
        loop = asyncio.get_running_loop()
        while True:
            code = await self._call(lambda link: link.gen_img())
            if code == zfm.OK:
                return
            if code in RETRY_CODES:
                raise self._retry(code)
            if code != zfm.NO_FINGER:
                raise DeviceStateError(f"{self.descriptor.name}: GenImg failed", reason="SENSOR_FAULT")
            if loop.time() >= deadline:
                raise OperationTimeoutError(f"{self.descriptor.name}: no finger in time",
                                            device_id=self.descriptor.stable_key)
            await asyncio.sleep(self._poll)

    async def _wait_lift(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while await self._call(lambda link: link.gen_img()) != zfm.NO_FINGER:
            if loop.time() >= deadline:
                raise OperationTimeoutError(f"{self.descriptor.name}: finger not lifted in time",
                                            device_id=self.descriptor.stable_key)
            await asyncio.sleep(self._poll)

    def _retry(self, code: int) -> TransientDeviceError:
        reason = RETRY_CODES.get(code, "POOR_QUALITY")
        self._counters["retries"] += 1
        return TransientDeviceError(f"{self.descriptor.name}: capture must be repeated ({reason})",
                                    reason=reason, device_id=self.descriptor.stable_key)

    async def _features(self, buffer: int, deadline: float) -> None:
        await self._take_image(deadline)
        code = await self._call(lambda link: link.img2tz(buffer))
        if code != zfm.OK:
            raise self._retry(code)

    def _deadline(self, timeout: float) -> float:
        if timeout <= 0:
            raise InvalidRequestError("timeout must be positive")
        return asyncio.get_running_loop().time() + timeout

    async def capture(self, timeout: float) -> FingerprintImage:
        deadline = self._deadline(timeout)
        await self._exclusive()
        async with self._lock:
            await self._take_image(deadline)
            pixels = await self._call(lambda link: link.up_image())
        self._counters["captures"] += 1
        return FingerprintImage(width=zfm.IMAGE_WIDTH, height=zfm.IMAGE_HEIGHT, pixels=pixels)

    async def enroll(self, on_progress: Callable[[EnrollProgress], None], timeout: float
                     ) -> FingerprintTemplate:
        deadline = self._deadline(timeout)
        await self._exclusive()
        async with self._lock:
            stage = 0
            while stage < ENROLL_STAGES:
                try:
                    await self._features(stage + 1, deadline)
                except TransientDeviceError as exc:
                    on_progress(EnrollProgress(stage, ENROLL_STAGES, exc.reason))
                    await self._wait_lift(deadline)
                    continue
                stage += 1
                on_progress(EnrollProgress(stage, ENROLL_STAGES))
                if stage < ENROLL_STAGES:
                    await self._wait_lift(deadline)
            if await self._call(lambda link: link.reg_model()) != zfm.OK:
                self._counters["retries"] += 1
                raise TransientDeviceError(f"{self.descriptor.name}: the presses were of different fingers",
                                           reason="FINGERS_DIFFER", device_id=self.descriptor.stable_key)
            data = await self._call(lambda link: link.up_char(1))
        self._counters["enrollments"] += 1
        return FingerprintTemplate(format=TemplateFormat.ZFM, data=data)

    @staticmethod
    def _check_template(template: FingerprintTemplate) -> bytes:
        if template.format is not TemplateFormat.ZFM:
            raise DataFormatError(f"template format {template.format} is not a ZFM character file")
        if not MIN_TEMPLATE <= len(template.data) <= MAX_TEMPLATE or len(template.data) % 32:
            raise DataFormatError("template does not have the size of a ZFM character file")
        return template.data

    async def verify(self, template: FingerprintTemplate, timeout: float) -> MatchResult:
        data = self._check_template(template)
        deadline = self._deadline(timeout)
        await self._exclusive()
        async with self._lock:
            await self._features(1, deadline)
            await self._call(lambda link: link.down_char(2, data))
            matched, score = await self._call(lambda link: link.match())
        self._counters["verifications"] += 1
        return MatchResult(matched=matched, score=score)

    async def identify(self, templates: Sequence[FingerprintTemplate], timeout: float) -> IdentifyResult:
        if not templates or len(templates) > MAX_IDENTIFY_TEMPLATES:
            raise InvalidRequestError(f"identify takes 1 to {MAX_IDENTIFY_TEMPLATES} templates")
        gallery = [self._check_template(t) for t in templates]
        deadline = self._deadline(timeout)
        await self._exclusive()
        best, best_score = -1, 0
        async with self._lock:
            await self._features(1, deadline)
            for index, data in enumerate(gallery):
                await self._call(functools.partial(zfm.ZfmLink.down_char, buffer=2, template=data))
                matched, score = await self._call(lambda link: link.match())
                if matched and score > best_score:
                    best, best_score = index, score
        self._counters["identifications"] += 1
        return IdentifyResult(index=best, score=best_score if best >= 0 else -1)


class ZfmBackend(DeviceBackend):
    """One sensor per configured serial port."""

    name = "zfm"
    family = DeviceFamily.FINGERPRINT

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        self._opts = typed_options(ZfmOptions, options)
        self._ports = list(self._opts.ports)
        self._sensors: list[ZfmSensor] = []

    @property
    def sensors(self) -> list[ZfmSensor]:
        return list(self._sensors)

    async def start(self) -> None:
        if self._sensors:
            return
        for port in self._ports:
            descriptor = DeviceDescriptor(
                family=DeviceFamily.FINGERPRINT, backend=self.name, stable_key=port,
                name=f"ZFM fingerprint module on {port}", model="ZFM", connection="serial", address=port,
            )
            sensor = ZfmSensor(descriptor, self._ctx, self._opts)
            self._sensors.append(sensor)
            self._ctx.device_found(sensor)

    async def stop(self) -> None:
        for sensor in self._sensors:
            await sensor.close()
        self._sensors.clear()
