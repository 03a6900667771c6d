"""The seam for vendor fingerprint SDKs, loaded with ctypes.

A vendor SDK is wrapped by a small shared library (written by the integrator, in C)
that exports this ABI; the agent loads it with ``ctypes.CDLL`` and drives it through
``ctx.run_blocking``. Templates cross the seam as ISO/IEC 19794-2 finger minutiae
records (``FMR\\0`` magic, version, big-endian total length at offset 8), so prints
taken by one vendor's sensor stay usable by another.

C ABI, version 1::

    #define FPV_CAP_CAPTURE  1u   /* fpv_capture returns an image */
    #define FPV_CAP_VERIFY   2u   /* fpv_match is available */
    #define FPV_CAP_IDENTIFY 4u   /* fpv_match is fast enough to loop over a gallery */

    uint32_t fpv_abi_version(void);            /* must return 1 */
    uint32_t fpv_capabilities(void);           /* FPV_CAP_* flags */
    int  fpv_open(const char *config, void **handle);
    void fpv_close(void *handle);
    /* One capture attempt: wait at most timeout_ms for a finger. */
    int  fpv_capture(void *handle, int timeout_ms, uint8_t *pixels, size_t capacity,
                     int *width, int *height, int *quality);      /* 8-bit grey, quality 0-100 or -1 */
    /* Minutiae of an image as an ISO 19794-2 record. */
    int  fpv_extract(void *handle, const uint8_t *pixels, int width, int height,
                     uint8_t *record, size_t capacity, size_t *length);
    int  fpv_match(void *handle, const uint8_t *a, size_t a_len,
                   const uint8_t *b, size_t b_len, int *score);   /* score 0-100 */

Return codes: 0 ok; 1 no finger within the timeout; 2 finger too short/fast,
3 finger off centre, 4 poor quality (all three: press again); -1 device gone;
-2 record rejected; any other negative value a device error.

Backend options (``[drivers.vendor-sdk]``): ``library`` (path of the shared library),
``config`` (string handed to ``fpv_open``), ``name``, ``enroll_stages`` (3),
``match_threshold`` (score that counts as a match, 40), ``poll_interval`` (0.05 s).
"""

from __future__ import annotations

import asyncio
import ctypes
import struct
from collections.abc import Callable, Sequence
from typing import Any

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
from agent.drivers.options import VendorSdkOptions, typed_options
from agent.errors import (
    ConfigError,
    DataFormatError,
    DeviceBusyError,
    DeviceGoneError,
    DeviceProtocolError,
    DeviceStateError,
    DeviceUnavailableError,
    InvalidRequestError,
    NotSupportedError,
    OperationTimeoutError,
    TransientDeviceError,
)

ABI_VERSION = 1
CAP_CAPTURE, CAP_VERIFY, CAP_IDENTIFY = 1, 2, 4
OK, NO_FINGER = 0, 1
RETRY_REASONS = {2: "TOO_SHORT", 3: "CENTER_FINGER", 4: "POOR_QUALITY"}
GONE, REJECTED = -1, -2
MAX_IMAGE = 1024 * 1024
MAX_RECORD = 64 * 1024
MAX_IDENTIFY_TEMPLATES = 500


def check_iso_record(data: bytes) -> bytes:
    """Validate the ISO 19794-2 header (magic, version, declared length) of a record."""
    if len(data) < 24 or data[:4] != b"FMR\0" or data[7:8] != b"\0":
        raise DataFormatError("template is not an ISO 19794-2 finger minutiae record")
    (length,) = struct.unpack(">I", data[8:12])
    if length != len(data) or length > MAX_RECORD:
        raise DataFormatError("ISO 19794-2 record length does not match its header")
    return data


class VendorLibrary:
    """The loaded shared library with typed entry points. Calls block: use run_blocking."""

    def __init__(self, path: str) -> None:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            raise ConfigError("vendor fingerprint library cannot be loaded") from None
        u8p, size_p, int_p = ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_size_t), \
            ctypes.POINTER(ctypes.c_int)
        try:
            lib.fpv_abi_version.restype = ctypes.c_uint32
            lib.fpv_capabilities.restype = ctypes.c_uint32
            lib.fpv_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
            lib.fpv_close.argtypes = [ctypes.c_void_p]
            lib.fpv_close.restype = None
            lib.fpv_capture.argtypes = [ctypes.c_void_p, ctypes.c_int, u8p, ctypes.c_size_t,
                                        int_p, int_p, int_p]
            lib.fpv_extract.argtypes = [ctypes.c_void_p, u8p, ctypes.c_int, ctypes.c_int, u8p,
                                        ctypes.c_size_t, size_p]
            lib.fpv_match.argtypes = [ctypes.c_void_p, u8p, ctypes.c_size_t, u8p, ctypes.c_size_t, int_p]
        except AttributeError:
            raise ConfigError("vendor fingerprint library lacks the fpv_* ABI") from None
        if lib.fpv_abi_version() != ABI_VERSION:
            raise ConfigError("vendor fingerprint library speaks another ABI version")
        self._lib = lib
        self.capabilities = int(lib.fpv_capabilities())
        self._handle = ctypes.c_void_p()

    def open(self, config: str) -> None:
        if self._lib.fpv_open(config.encode(), ctypes.byref(self._handle)) != OK:
            raise DeviceUnavailableError("vendor fingerprint device did not open")

    def close(self) -> None:
        if self._handle.value:
            self._lib.fpv_close(self._handle)
            self._handle = ctypes.c_void_p()

    def capture(self, timeout_ms: int) -> tuple[int, FingerprintImage | None]:
        pixels = (ctypes.c_uint8 * MAX_IMAGE)()
        width, height, quality = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(-1)
        code = int(self._lib.fpv_capture(self._handle, timeout_ms, pixels, MAX_IMAGE, ctypes.byref(width),
                                         ctypes.byref(height), ctypes.byref(quality)))
        if code != OK:
            return code, None
        size = width.value * height.value
        if not 0 < size <= MAX_IMAGE:
            raise DeviceProtocolError("vendor library returned an impossible image size")
        return OK, FingerprintImage(width=width.value, height=height.value, pixels=bytes(pixels[:size]),
                                    quality=max(-1, min(100, quality.value)))

    def extract(self, image: FingerprintImage) -> bytes:
        record = (ctypes.c_uint8 * MAX_RECORD)()
        length = ctypes.c_size_t()
        source = (ctypes.c_uint8 * len(image.pixels)).from_buffer_copy(image.pixels)
        code = int(self._lib.fpv_extract(self._handle, source, image.width, image.height, record, MAX_RECORD,
                                         ctypes.byref(length)))
        if code in RETRY_REASONS:
            raise TransientDeviceError("capture must be repeated", reason=RETRY_REASONS[code])
        if code != OK or not 0 < length.value <= MAX_RECORD:
            raise DeviceProtocolError("vendor library could not extract minutiae")
        return check_iso_record(bytes(record[:length.value]))

    def match(self, a: bytes, b: bytes) -> int:
        score = ctypes.c_int()
        buf_a = (ctypes.c_uint8 * len(a)).from_buffer_copy(a)
        buf_b = (ctypes.c_uint8 * len(b)).from_buffer_copy(b)
        code = int(self._lib.fpv_match(self._handle, buf_a, len(a), buf_b, len(b), ctypes.byref(score)))
        if code == REJECTED:
            raise DataFormatError("vendor library rejected the template")
        if code != OK:
            raise DeviceProtocolError("vendor library match failed")
        return int(score.value)


class VendorSdkSensor(FingerprintSensor):
    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(descriptor, ctx)
        opts = typed_options(VendorSdkOptions, options)
        self._library_path = opts.library
        self._config = opts.config
        self._stages = opts.enroll_stages
        self._threshold = opts.match_threshold
        self._poll = opts.poll_interval
        self._lib: VendorLibrary | None = None
        self._busy = False
        self._state = DeviceState.PRESENT
        self._counters = {"captures": 0, "enrollments": 0, "verifications": 0, "identifications": 0,
                          "retries": 0}

    def _caps(self) -> int:
        return self._lib.capabilities if self._lib is not None else 0

    def capabilities(self) -> Capabilities:
        caps = self._caps()
        features = {"enroll"} | ({"capture_image"} if caps & CAP_CAPTURE else set())
        features |= {"verify"} if caps & CAP_VERIFY else set()
        features |= {"identify"} if caps & CAP_IDENTIFY else set()
        return Capabilities(features=frozenset(features))

    def fingerprint_capabilities(self) -> FingerprintCapabilities:
        caps = self._caps()
        return FingerprintCapabilities(
            template_formats=(TemplateFormat.ISO19794_2,), enroll_stages=self._stages,
            can_capture_image=bool(caps & CAP_CAPTURE), can_identify=bool(caps & CAP_IDENTIFY),
            max_identify_templates=MAX_IDENTIFY_TEMPLATES if caps & CAP_IDENTIFY else 0)

    def health(self) -> DeviceHealth:
        return DeviceHealth(state=self._state, counters=dict(self._counters))

    async def open(self) -> None:
        if self._lib is not None:
            return

        def load() -> VendorLibrary:
            lib = VendorLibrary(self._library_path)
            lib.open(self._config)
            return lib

        self._lib = await self._ctx.run_blocking(load)
        self._state = DeviceState.READY
        self._ctx.health_changed(self)

    async def close(self) -> None:
        lib, self._lib = self._lib, None
        if lib is not None:
            await self._ctx.run_blocking(lib.close)
        if self._state is not DeviceState.GONE:
            self._state = DeviceState.PRESENT

    async def _capture(self, deadline: float) -> FingerprintImage:
        lib = self._lib
        if lib is None:
            raise DeviceStateError("vendor fingerprint device is not open", reason="NOT_OPEN")
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise OperationTimeoutError("no finger in time", device_id=self.descriptor.stable_key)
            code, image = await self._ctx.run_blocking(lib.capture, int(min(remaining, self._poll) * 1000))
            if code == OK and image is not None:
                return image
            if code in RETRY_REASONS:
                self._counters["retries"] += 1
                raise TransientDeviceError("capture must be repeated", reason=RETRY_REASONS[code],
                                           device_id=self.descriptor.stable_key)
            if code == GONE:
                self._state = DeviceState.GONE
                self._ctx.health_changed(self)
                raise DeviceGoneError("vendor fingerprint device went away",
                                      device_id=self.descriptor.stable_key)
            if code != NO_FINGER:
                raise DeviceProtocolError("vendor capture failed", device_id=self.descriptor.stable_key)

    async def _run(self, operation: Callable[[VendorLibrary, float], Any], timeout: float) -> Any:
        if timeout <= 0:
            raise InvalidRequestError("timeout must be positive")
        if self._busy:
            raise DeviceBusyError("vendor fingerprint device is busy", device_id=self.descriptor.stable_key)
        if self._lib is None:
            raise DeviceStateError("vendor fingerprint device is not open", reason="NOT_OPEN")
        self._busy = True
        try:
            return await operation(self._lib, asyncio.get_running_loop().time() + timeout)
        finally:
            self._busy = False

    async def capture(self, timeout: float) -> FingerprintImage:
        if not self._caps() & CAP_CAPTURE:
            raise NotSupportedError("this vendor sensor does not return images")

        async def run(_lib: VendorLibrary, deadline: float) -> FingerprintImage:
            return await self._capture(deadline)

        image: FingerprintImage = await self._run(run, timeout)
        self._counters["captures"] += 1
        return image

    async def _live_record(self, lib: VendorLibrary, deadline: float) -> bytes:
        image = await self._capture(deadline)
        record: bytes = await self._ctx.run_blocking(lib.extract, image)
        return record

    async def enroll(self, on_progress: Callable[[EnrollProgress], None], timeout: float
                     ) -> FingerprintTemplate:
        async def run(lib: VendorLibrary, deadline: float) -> bytes:
            records: list[bytes] = []
            while len(records) < self._stages:
                try:
                    record = await self._live_record(lib, deadline)
                    same = not records or (
                        await self._ctx.run_blocking(lib.match, records[0], record) >= self._threshold)
                    if not same:
                        raise TransientDeviceError("press differs from the first", reason="POOR_QUALITY")
                except TransientDeviceError as exc:
                    on_progress(EnrollProgress(len(records), self._stages, exc.reason))
                    continue
                records.append(record)
                on_progress(EnrollProgress(len(records), self._stages))
            return records[0]

        data: bytes = await self._run(run, timeout)
        self._counters["enrollments"] += 1
        return FingerprintTemplate(format=TemplateFormat.ISO19794_2, data=data)

    @staticmethod
    def _template(template: FingerprintTemplate) -> bytes:
        if template.format is not TemplateFormat.ISO19794_2:
            raise DataFormatError(f"template format {template.format} is not ISO 19794-2")
        return check_iso_record(template.data)

    async def verify(self, template: FingerprintTemplate, timeout: float) -> MatchResult:
        enrolled = self._template(template)

        async def run(lib: VendorLibrary, deadline: float) -> int:
            live = await self._live_record(lib, deadline)
            score: int = await self._ctx.run_blocking(lib.match, enrolled, live)
            return score

        score = await self._run(run, timeout)
        self._counters["verifications"] += 1
        return MatchResult(matched=score >= self._threshold, score=score)

    async def identify(self, templates: Sequence[FingerprintTemplate], timeout: float) -> IdentifyResult:
        if not templates or len(templates) > MAX_IDENTIFY_TEMPLATES:
            raise InvalidRequestError(f"identify takes 1 to {MAX_IDENTIFY_TEMPLATES} templates")
        gallery = [self._template(t) for t in templates]
        if not self._caps() & CAP_IDENTIFY:
            raise NotSupportedError("this vendor sensor does not identify")

        async def run(lib: VendorLibrary, deadline: float) -> tuple[int, int]:
            live = await self._live_record(lib, deadline)
            best, best_score = -1, -1
            for index, enrolled in enumerate(gallery):
                score = await self._ctx.run_blocking(lib.match, enrolled, live)
                if score >= self._threshold and score > best_score:
                    best, best_score = index, score
            return best, best_score

        index, score = await self._run(run, timeout)
        self._counters["identifications"] += 1
        return IdentifyResult(index=index, score=score)


class VendorSdkBackend(DeviceBackend):
    """One device per configured library (vendor SDKs enumerate behind their own wrapper)."""

    name = "vendor-sdk"
    family = DeviceFamily.FINGERPRINT

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        self._opts = typed_options(VendorSdkOptions, options)
        if not self._opts.library:
            raise ConfigError("[drivers.vendor-sdk] needs 'library', the path of the fpv_* shared library")
        self._sensor: VendorSdkSensor | None = None

    @property
    def sensor(self) -> VendorSdkSensor | None:
        return self._sensor

    async def start(self) -> None:
        if self._sensor is not None:
            return
        library = self._opts.library
        descriptor = DeviceDescriptor(
            family=DeviceFamily.FINGERPRINT, backend=self.name, stable_key=f"{library}:{self._opts.config}",
            name=self._opts.name, connection="usb", address=library)
        self._sensor = VendorSdkSensor(descriptor, self._ctx, self._opts)
        self._ctx.device_found(self._sensor)

    async def stop(self) -> None:
        if self._sensor is not None:
            await self._sensor.close()
            self._sensor = None
