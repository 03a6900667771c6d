"""Devices as the core sees them: identity, state, capabilities, health."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class DeviceFamily(enum.StrEnum):
    """The five device families the agent serves."""

    IDCARD = "idcard"
    FINGERPRINT = "fingerprint"
    SCANNER = "scanner"
    PRINTER = "printer"
    BARCODE = "barcode"


class DeviceState(enum.StrEnum):
    """Lifecycle of a device in the registry.

    ``present``: found, not yet opened; ``ready``: usable; ``busy``: running an
    operation; ``error``: reachable but needs attention (jam, no paper, pcscd down);
    ``gone``: not seen any more (kept so a replug keeps its id and history).
    """

    PRESENT = "present"
    READY = "ready"
    BUSY = "busy"
    ERROR = "error"
    GONE = "gone"


class Severity(enum.StrEnum):
    """How bad a health condition is (printer reasons carry -report/-warning/-error)."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DeviceDescriptor:
    """What a backend knows about a device it found, before the registry assigns an id.

    ``stable_key`` must survive replugging and reboots: a serial number where the
    device has one, else a physical path (USB port path, PC/SC reader name, network
    URL/UUID). The registry derives the public device id from ``(family, backend,
    stable_key)`` and persists it.
    """

    family: DeviceFamily
    backend: str
    stable_key: str
    name: str
    vendor: str = ""
    model: str = ""
    serial: str = ""
    connection: str = ""  # how it is reached: "usb", "pcsc", "network", "serial", "simulated"
    address: str = ""  # reader name, device node, URL or port; never shown to the gateway


@dataclass(frozen=True, slots=True)
class Condition:
    """One health condition on a device, e.g. ``media-empty`` at ``error`` severity."""

    code: str
    severity: Severity
    message: str = ""


@dataclass(frozen=True, slots=True)
class SupplyLevel:
    """A consumable (toner, ink, paper tray): percent 0-100, or -1 when unknown."""

    name: str
    kind: str  # "toner", "ink", "paper", "ribbon", ...
    level_percent: int
    color: str = ""


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """What a driver reports about its device's health; the uplink only reads this."""

    state: DeviceState
    conditions: tuple[Condition, ...] = ()
    supplies: tuple[SupplyLevel, ...] = ()
    counters: Mapping[str, int] = field(default_factory=dict)  # "reads", "pages_scanned", ...
    last_error: str = ""

    @property
    def worst_severity(self) -> Severity | None:
        order = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}
        worst: Severity | None = None
        for condition in self.conditions:
            if worst is None or order[condition.severity] > order[worst]:
                worst = condition.severity
        return worst


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Declared abilities of a device. Clients query these instead of guessing.

    ``features`` are short identifiers (``"pace"``, ``"extended_length"``,
    ``"adf_duplex"``, ``"identify"``); family-specific details live in the family's
    own capability type (``ScannerCapabilities``, ``PrinterCapabilities``...).
    """

    features: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The registry's public view of one device."""

    id: str
    family: DeviceFamily
    backend: str
    name: str
    vendor: str
    model: str
    serial: str
    connection: str
    state: DeviceState
    health: DeviceHealth
    capabilities: Capabilities
    lease_holder: str = ""  # client id of the current lease holder, "" if free
    simulated: bool = False
    card_present: bool = False  # ID-card readers: a card is on the reader (False for other families)
