"""The options of every driver backend: one frozen dataclass per backend, with its defaults.

A ``[drivers.<backend>]`` table of the agent config is ``enabled`` plus the fields of the
backend's class here; :mod:`agent.config` checks every table at load time with the same
machinery as the other tables (:mod:`agent.schema`), so a misspelt option or a wrong type
is a one-line error, exit status 2. Backends take their options through
:func:`typed_options`, which accepts either the checked dataclass (from the config) or a
plain mapping (tests, benchmarks), checked the same way: there is one source of defaults.

Pure Python: no native library is imported here (the config loads without libsane,
pyscard or libfprint).

``enabled`` is ``true``, ``false`` or ``"auto"`` (on when the backend's system service or
library is on this machine, see :mod:`agent.drivers.presence`). A table without
``enabled`` is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from agent.errors import ConfigError
from agent.schema import build_table

#: ``enabled`` of a ``[drivers.<backend>]`` table.
Enabled = bool | Literal["auto"]
AUTO = "auto"


@dataclass(frozen=True)
class DriverOptions:
    """Base of every backend's options."""

    backend: ClassVar[str] = ""
    #: Fields whose values are one of a few strings (checked by :mod:`agent.schema`).
    CHOICES: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def problems(self) -> list[str]:
        """What is wrong beyond keys and types, each ``"<key> <what>"`` (checked at load)."""
        return []


OptionsT = TypeVar("OptionsT", bound=DriverOptions)


# -- chip ID-card readers --------------------------------------------------------------------------

@dataclass(frozen=True)
class PcscOptions(DriverOptions):
    backend: ClassVar[str] = "pcsc"
    CHOICES: ClassVar[Mapping[str, tuple[str, ...]]] = {"extended_length": ("auto", "always", "never")}

    csca_dir: str = ""  # trusted CSCAs for passive authentication; "" = [idcard].csca_dir
    extended_length: str = "auto"  # extended-length APDUs: auto, always or never


# -- document scanners -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SaneOptions(DriverOptions):
    backend: ClassVar[str] = "sane"

    rescan_interval: float = 30.0  # seconds between SANE enumerations (USB hotplug); 0 = once
    devices: list[str] = field(default_factory=list)  # only these SANE names; [] = every device
    # {SANE device name: {SANE option: value}} set after the standard options on every job
    device_options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class EsclOptions(DriverOptions):
    backend: ClassVar[str] = "escl"
    CHOICES: ClassVar[Mapping[str, tuple[str, ...]]] = {"tls": ("pin", "verify", "off")}

    zeroconf: bool = True  # browse DNS-SD (_uscan._tcp, _uscans._tcp) on [discovery].interfaces
    urls: list[str] = field(default_factory=list)  # eSCL root URLs of scanners DNS-SD does not find
    tls: str = "pin"  # https scanners: pin (trust on first use), verify (CA chain) or off
    retry_delay: float = 5.0  # first delay, seconds, between probes of an unreachable configured scanner
    status_interval: float = 60.0  # seconds between status polls of an idle scanner; 0 = off


# -- printers --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IppOptions(DriverOptions):
    backend: ClassVar[str] = "ipp"

    browse: bool = True  # find IPP Everywhere printers by DNS-SD (_ipp._tcp, _ipps._tcp)
    uris: list[str] = field(default_factory=list)  # printer URIs besides the ones DNS-SD finds
    poll_interval: float = 30.0  # seconds between status polls while idle
    verify_tls: bool = False  # check certificates of ipps printers (they ship self-signed ones)

    def problems(self) -> list[str]:
        return _positive(poll_interval=self.poll_interval)


@dataclass(frozen=True)
class CupsOptions(DriverOptions):
    backend: ClassVar[str] = "cups"

    server: str = ""  # "host:port" of the CUPS server; "" = libcups' default (the local cupsd)
    poll_interval: float = 30.0  # seconds between reads of the queue list and queue states

    def problems(self) -> list[str]:
        return _positive(poll_interval=self.poll_interval)


@dataclass(frozen=True)
class EscposPrinterOptions:
    """One ESC/POS printer: exactly one of ``device`` and ``address``."""

    device: str = ""  # serial port, e.g. "/dev/serial/by-id/usb-...-if00-port0"
    address: str = ""  # raw TCP "host:port" (port 9100)
    baudrate: int = 9600  # serial only
    name: str = ""  # "" = "Receipt printer <device or address>"
    vendor: str = ""


@dataclass(frozen=True)
class EscposOptions(DriverOptions):
    backend: ClassVar[str] = "escpos"

    printers: list[EscposPrinterOptions] = field(default_factory=list)
    poll_interval: float = 30.0  # seconds between status queries while idle

    def problems(self) -> list[str]:
        return [*(f"printers[{i}] needs exactly one of device and address"
                  for i, p in enumerate(self.printers) if bool(p.device) == bool(p.address)),
                *_positive(poll_interval=self.poll_interval)]


# -- fingerprint sensors ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LibfprintOptions(DriverOptions):
    backend: ClassVar[str] = "libfprint"

    drivers: list[str] = field(default_factory=list)  # libfprint driver ids to expose; [] = every real sensor
    virtual_image_socket: str = ""  # sets FP_VIRTUAL_IMAGE (libfprint's virtual driver; tests)
    virtual_device_socket: str = ""  # sets FP_VIRTUAL_DEVICE (libfprint's virtual driver; tests)


@dataclass(frozen=True)
class ZfmOptions(DriverOptions):
    backend: ClassVar[str] = "zfm"

    ports: list[str] = field(default_factory=list)  # serial ports of ZFM modules (R307, R503, AS608)
    baudrate: int = 57600
    password: int = 0  # module password
    address: int = 0xFFFFFFFF  # module address
    poll_interval: float = 0.1  # seconds between finger polls (GenImg)


@dataclass(frozen=True)
class VendorSdkOptions(DriverOptions):
    backend: ClassVar[str] = "vendor-sdk"

    library: str = ""  # path of the fpv_* shared library (required)
    config: str = ""  # string handed to fpv_open
    name: str = "Vendor fingerprint sensor"
    enroll_stages: int = 3
    match_threshold: int = 40  # score (0-100) that counts as a match
    poll_interval: float = 0.05  # seconds between polls for a finger


# -- barcode / QR scanners -------------------------------------------------------------------------

DEFAULT_NAME_PATTERNS = ("barcode", "scanner", "honeywell", "zebra", "symbol", "datalogic", "newland",
                         "zebex", "netum")


@dataclass(frozen=True)
class EvdevOptions(DriverOptions):
    backend: ClassVar[str] = "evdev"

    # only input devices the agent's udev rules mark as barcode scanners (CENTRE_AGENT_KIND=barcode
    # in the udev database); false: any device matching devices / name_patterns / usb_ids
    udev_only: bool = False
    devices: list[str] = field(default_factory=list)  # event nodes to use; [] = look at every input device
    name_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_NAME_PATTERNS))
    usb_ids: list[str] = field(default_factory=list)  # "vendor:product" in hex, e.g. "0c2e:0b61"
    prefix: str = ""  # what the scanner types before a scan
    suffix: str = "\n"  # what ends a scan; "" = the pause (gap) only
    gap: float = 0.2  # seconds without a key that end a scan
    max_length: int = 4096  # longest scan, characters
    keymap: str = "us"  # keyboard layout the scanner types in
    grab: bool = True  # take the device exclusively (keystrokes do not reach the desktop)
    rescan_interval: float = 5.0  # seconds between looks for new devices; 0 = once


@dataclass(frozen=True)
class SerialBarcodeOptions(DriverOptions):
    backend: ClassVar[str] = "serial-barcode"

    ports: list[str] = field(default_factory=list)  # serial ports of scanners in USB-COM / RS-232 mode
    baudrate: int = 9600
    encoding: str = "utf-8"
    max_length: int = 4096  # longest line, bytes; longer lines are dropped
    max_scans_per_second: float = 20.0  # faster input is dropped (a stuck trigger)


# -- simulated devices -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SimIdCardOptions(DriverOptions):
    backend: ClassVar[str] = "sim-idcard"
    CHOICES: ClassVar[Mapping[str, tuple[str, ...]]] = {"profile": ("cccd", "passport", "empty")}

    profile: str = "cccd"  # card on the reader at start: cccd, passport or empty
    csca_dir: str = ""  # more trusted CSCAs; "" = [idcard].csca_dir
    trust_card_csca: bool = True  # false: the card's own CSCA is not trusted (an UNKNOWN_ISSUER card)


@dataclass(frozen=True)
class SimFingerprintOptions(DriverOptions):
    backend: ClassVar[str] = "sim-fingerprint"

    prints_dir: str = ""  # folder of sample prints (*.png); "" = the ones shipped with the agent
    enroll_print: str = "whorl"  # print placed on the sensor when enrolling
    match_print: str = "whorl"  # print placed on the sensor when verifying


@dataclass(frozen=True)
class SimScannerOptions(DriverOptions):
    backend: ClassVar[str] = "sim-scanner"

    sheets: int = 10  # sheets in the emulated feeder (refilled when empty)


@dataclass(frozen=True)
class SimPrinterOptions(DriverOptions):
    backend: ClassVar[str] = "sim-printer"

    job_seconds: float = 0.05  # time a job takes
    poll_interval: float = 30.0  # seconds between status polls while idle

    def problems(self) -> list[str]:
        return [f"{key} must not be negative" for key, value in
                (("job_seconds", self.job_seconds), ("poll_interval", self.poll_interval)) if value < 0]


@dataclass(frozen=True)
class SimBarcodeOptions(DriverOptions):
    backend: ClassVar[str] = "sim-barcode"

    demo_scans: list[str] = field(default_factory=list)  # texts "scanned" one after the other
    demo_interval: float = 0.0  # seconds between them; 0 = none


def _positive(**values: float) -> list[str]:
    return [f"{key} must be a positive number" for key, value in values.items() if value <= 0]


#: Backend name -> its options class (the same names as :data:`agent.drivers.registry.BACKENDS`).
OPTIONS: dict[str, type[DriverOptions]] = {cls.backend: cls for cls in (
    PcscOptions, SaneOptions, EsclOptions, IppOptions, CupsOptions, EscposOptions,
    LibfprintOptions, ZfmOptions, VendorSdkOptions, EvdevOptions, SerialBarcodeOptions,
    SimIdCardOptions, SimFingerprintOptions, SimScannerOptions, SimPrinterOptions, SimBarcodeOptions,
)}


@dataclass(frozen=True)
class DriverTable:
    """One checked ``[drivers.<backend>]`` table."""

    enabled: Enabled
    options: DriverOptions


def parse_driver_table(name: str, data: Mapping[str, Any], file: str) -> DriverTable:
    """Check ``[drivers.<name>]``: a known backend, ``enabled`` true/false/"auto", its options."""
    where = f"drivers.{name}"
    cls = OPTIONS.get(name)
    if cls is None:
        known = ", ".join(sorted(OPTIONS))
        raise ConfigError(f"{file}: unknown driver backend {where!r} (known: {known})")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: [{where}] must be a table")
    enabled = data.get("enabled", True)
    if not (isinstance(enabled, bool) or enabled == AUTO):
        raise ConfigError(f"{file}: {where}.enabled must be true, false or \"auto\", not {enabled!r}")
    options = {k: v for k, v in data.items() if k != "enabled"}
    return DriverTable(enabled, _checked(build_table(cls, options, where, file), where, file))


def _checked(options: OptionsT, where: str, file: str) -> OptionsT:
    problems = options.problems()
    if problems:
        raise ConfigError(f"{file}: {where}.{problems[0]}")
    return options


def typed_options(cls: type[OptionsT], options: Mapping[str, Any] | DriverOptions) -> OptionsT:
    """The backend's options as ``cls``: the checked dataclass from the config as it is, or a
    plain mapping checked like a config table (unknown key, wrong type: :class:`ConfigError`)."""
    if isinstance(options, cls):
        return options
    if isinstance(options, DriverOptions):
        raise TypeError(f"{cls.backend} options expected, got {type(options).__name__}")
    where = f"drivers.{cls.backend}"
    built: OptionsT = build_table(cls, options, where, f"[{where}]")
    return _checked(built, where, f"[{where}]")
