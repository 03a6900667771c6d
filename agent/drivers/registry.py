"""The table of backends. Adding a backend is one module and one row here.

Rows map a backend name (the ``[drivers.<name>]`` config table) to
``"module:Class"``; modules are imported lazily, so a backend whose system
library is missing fails alone, with a clear message, at start-up.
"""

from __future__ import annotations

import importlib

from agent.domain.device import DeviceFamily
from agent.drivers.base import DeviceBackend
from agent.errors import ConfigError

BACKENDS: dict[str, str] = {
    # chip ID-card readers
    "pcsc": "agent.drivers.idcard.reader:PcscBackend",
    # document scanners
    "sane": "agent.drivers.scanner.sane_backend:SaneBackend",
    "escl": "agent.drivers.scanner.escl_discovery:EsclBackend",
    # printers
    "ipp": "agent.drivers.printer.ipp_backend:IppBackend",
    "cups": "agent.drivers.printer.cups_backend:CupsBackend",
    "escpos": "agent.drivers.printer.escpos_backend:EscposBackend",
    # fingerprint sensors
    "libfprint": "agent.drivers.fingerprint.libfprint_backend:LibfprintBackend",
    "zfm": "agent.drivers.fingerprint.zfm_backend:ZfmBackend",
    "vendor-sdk": "agent.drivers.fingerprint.vendor_sdk:VendorSdkBackend",
    # barcode / QR scanners
    "evdev": "agent.drivers.barcode.evdev_backend:EvdevBarcodeBackend",
    "serial-barcode": "agent.drivers.barcode.serial_backend:SerialBarcodeBackend",
    # simulated devices (``centre-agent run --simulate``)
    "sim-idcard": "agent.simulator.idcard:SimulatedIdCardBackend",
    "sim-fingerprint": "agent.simulator.fingerprint:SimulatedFingerprintBackend",
    "sim-scanner": "agent.simulator.scanner:SimulatedScannerBackend",
    "sim-printer": "agent.simulator.printer:SimulatedPrinterBackend",
    "sim-barcode": "agent.simulator.barcode:SimulatedBarcodeBackend",
}

#: The device family each backend serves (``centre-agent doctor`` expects the families of the
#: backends that are on).
BACKEND_FAMILY: dict[str, DeviceFamily] = {
    "pcsc": DeviceFamily.IDCARD, "sim-idcard": DeviceFamily.IDCARD,
    "sane": DeviceFamily.SCANNER, "escl": DeviceFamily.SCANNER, "sim-scanner": DeviceFamily.SCANNER,
    "ipp": DeviceFamily.PRINTER, "cups": DeviceFamily.PRINTER, "escpos": DeviceFamily.PRINTER,
    "sim-printer": DeviceFamily.PRINTER,
    "libfprint": DeviceFamily.FINGERPRINT, "zfm": DeviceFamily.FINGERPRINT, "vendor-sdk": DeviceFamily.FINGERPRINT,
    "sim-fingerprint": DeviceFamily.FINGERPRINT,
    "evdev": DeviceFamily.BARCODE, "serial-barcode": DeviceFamily.BARCODE, "sim-barcode": DeviceFamily.BARCODE,
}

#: Backends ``--simulate`` starts, one per family.
SIMULATED_BACKENDS: tuple[str, ...] = (
    "sim-idcard", "sim-fingerprint", "sim-scanner", "sim-printer", "sim-barcode",
)


def load_backend_class(name: str) -> type[DeviceBackend]:
    """Import the backend registered under ``name``."""
    try:
        target = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown driver backend {name!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, DeviceBackend)):
        raise ConfigError(f"backend {name!r} ({target}) is not a DeviceBackend")
    return cls
