"""A stable key for a SANE device on USB, whose SANE name carries the bus and device numbers.

Many SANE backends name a USB scanner ``<backend>:libusb:<bus>:<device>``; the device number
changes every time the scanner is plugged in, so the name cannot be the device's stable key.
The USB device with that bus and device number is looked up in sysfs:

* with a serial number: ``<backend>:usb:<idVendor>:<idProduct>:<serial>`` (survives a move to
  another port);
* without one: ``<backend>:usb:<idVendor>:<idProduct>@<port path>`` (the physical port, e.g.
  ``1-2.3``: survives unplugging and plugging back into the same port).

Any other name (network, ``test:0``, backends that put the serial in the name themselves) is
already stable and is kept; so is a libusb name whose device sysfs does not show.
"""

from __future__ import annotations

import re
from pathlib import Path

SYSFS = Path("/sys")
_LIBUSB_NAME = re.compile(r"^(?P<backend>[^:]+):libusb:(?P<bus>\d{1,3}):(?P<device>\d{1,3})$")
_SAFE = re.compile(r"[^0-9A-Za-z._-]")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def sane_stable_key(name: str, sysfs: Path = SYSFS) -> str:
    """The stable key for SANE device ``name`` (see the module docstring). Never raises."""
    match = _LIBUSB_NAME.match(name)
    if match is None:
        return name
    bus, device = int(match["bus"]), int(match["device"])
    try:
        entries = sorted((sysfs / "bus" / "usb" / "devices").iterdir())
    except OSError:
        return name
    for entry in entries:
        busnum, devnum = _read(entry / "busnum"), _read(entry / "devnum")
        if busnum is None or devnum is None or not (busnum.isdigit() and devnum.isdigit()):
            continue
        if (int(busnum), int(devnum)) != (bus, device):
            continue
        vendor, product = _read(entry / "idVendor"), _read(entry / "idProduct")
        if not vendor or not product:
            return name
        serial = _read(entry / "serial")
        prefix = f"{match['backend']}:usb:{_SAFE.sub('_', vendor)}:{_SAFE.sub('_', product)}"
        if serial:
            return f"{prefix}:{_SAFE.sub('_', serial)}"
        return f"{prefix}@{_SAFE.sub('_', entry.name)}"
    return name
