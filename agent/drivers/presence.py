"""Is a backend's system service or library on this machine? (``enabled = "auto"``)

Each probe is cheap and has no side effect: it looks for files (a daemon's binary or
socket, a GObject typelib) or loads a shared library without initialising it. A probe
never starts, connects to or waits for anything.

=================  ============================================================
backend            present when
=================  ============================================================
pcsc               pcscd is installed (``/usr/sbin/pcscd``) or its socket exists
sane               libsane can be loaded
escl, ipp          always (pure Python; DNS-SD and HTTP)
cups               cupsd is installed or its socket exists
libfprint          the ``FPrint-2.0`` GObject typelib is installed
evdev              always (limit it with ``udev_only = true``)
serial backends    never: probing unknown serial ports disturbs other equipment,
                   so zfm, serial-barcode and escpos are on only with ``true``
vendor-sdk         never (it needs the path of a library)
sim-*              always (emulated in-process)
=================  ============================================================
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Presence:
    present: bool
    detail: str  # what was found, or what is missing (one short phrase, for the log)


#: Tells whether a backend's service or library is present: backend name -> answer.
PresenceProbe = Callable[[str], Presence]


def _first_existing(paths: Iterable[str | Path]) -> Path | None:
    for path in paths:
        candidate = Path(path)
        if candidate.exists():
            return candidate
    return None


def _files(what: str, paths: Iterable[str | Path]) -> Presence:
    paths = list(paths)
    found = _first_existing(paths)
    if found is not None:
        return Presence(True, f"{what} found at {found}")
    return Presence(False, f"{what} not found ({', '.join(str(p) for p in paths)})")


def pcscd_present() -> Presence:
    socket = os.environ.get("PCSCLITE_CSOCK_NAME", "/run/pcscd/pcscd.comm")
    return _files("pcscd", ("/usr/sbin/pcscd", socket))


def cupsd_present() -> Presence:
    return _files("cupsd", ("/usr/sbin/cupsd", "/run/cups/cups.sock"))


def libsane_present() -> Presence:
    try:
        ctypes.CDLL("libsane.so.1")  # loaded, not initialised (no sane_init)
    except OSError:
        return Presence(False, "libsane.so.1 cannot be loaded (package libsane1)")
    return Presence(True, "libsane.so.1 loads")


def typelib_dirs() -> list[Path]:
    """Where GObject introspection looks for typelibs: $GI_TYPELIB_PATH, then the system's."""
    extra = [Path(p) for p in os.environ.get("GI_TYPELIB_PATH", "").split(":") if p]
    system = [*sorted(Path("/usr/lib").glob("*/girepository-1.0")), Path("/usr/lib/girepository-1.0"),
              *sorted(Path("/usr/local/lib").glob("*/girepository-1.0")), Path("/usr/local/lib/girepository-1.0")]
    return [*extra, *system]


def libfprint_present() -> Presence:
    found = _first_existing(d / "FPrint-2.0.typelib" for d in typelib_dirs())
    if found is not None:
        return Presence(True, f"libfprint found at {found}")
    return Presence(False, "FPrint-2.0.typelib not found (package gir1.2-fprint-2.0)")


def _always(detail: str) -> Callable[[], Presence]:
    return lambda: Presence(True, detail)


def _never(detail: str) -> Callable[[], Presence]:
    return lambda: Presence(False, detail)


_SERIAL = "a serial-port backend is never on by itself (set enabled = true and its ports)"

PROBES: dict[str, Callable[[], Presence]] = {
    "pcsc": pcscd_present,
    "sane": libsane_present,
    "escl": _always("pure Python (DNS-SD, HTTP)"),
    "ipp": _always("pure Python (DNS-SD, IPP)"),
    "cups": cupsd_present,
    "escpos": _never(_SERIAL),
    "libfprint": libfprint_present,
    "zfm": _never(_SERIAL),
    "vendor-sdk": _never("needs the path of a vendor library (set enabled = true and library)"),
    "evdev": _always("input devices (udev_only limits it to the scanners the udev rules mark)"),
    "serial-barcode": _never(_SERIAL),
    "sim-idcard": _always("emulated"),
    "sim-fingerprint": _always("emulated"),
    "sim-scanner": _always("emulated"),
    "sim-printer": _always("emulated"),
    "sim-barcode": _always("emulated"),
}


def probe(backend: str) -> Presence:
    """Whether ``backend``'s system service or library is on this machine."""
    check = PROBES.get(backend)
    if check is None:
        return Presence(False, "no presence probe for this backend")
    return check()
