"""Stable device ids and the persisted list of known devices.

An id is derived from ``(family, backend, stable_key)`` so it is the same after a
replug or a reboot; the known-device file lets the agent remember devices that are
gone across restarts. Only non-personal device metadata is stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.domain.device import DeviceDescriptor, DeviceFamily
from agent.state_files import write_state_json

log = logging.getLogger(__name__)


def device_id_for(family: DeviceFamily, backend: str, stable_key: str) -> str:
    """``<family>-<12 hex>``: short, stable, and not revealing the serial number."""
    digest = hashlib.sha256(f"{family}\x00{backend}\x00{stable_key}".encode()).hexdigest()
    return f"{family.value}-{digest[:12]}"


@dataclass(frozen=True, slots=True)
class KnownDevice:
    id: str
    family: str
    backend: str
    name: str
    vendor: str
    model: str
    connection: str


class KnownDeviceStore:
    """A small JSON file under the state directory, rewritten atomically on change."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._devices: dict[str, KnownDevice] = {}
        if path is not None and path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                for item in raw.get("devices", []):
                    known = KnownDevice(**item)
                    self._devices[known.id] = known
            except (OSError, ValueError, TypeError) as exc:
                log.warning("known-device file %s unreadable, starting empty: %s", path, exc)

    def all(self) -> list[KnownDevice]:
        return list(self._devices.values())

    def remember(self, device_id: str, descriptor: DeviceDescriptor) -> None:
        known = KnownDevice(device_id, descriptor.family.value, descriptor.backend, descriptor.name,
                            descriptor.vendor, descriptor.model, descriptor.connection)
        if self._devices.get(device_id) == known:
            return
        self._devices[device_id] = known
        self._save()

    def _save(self) -> None:
        if self._path is None:
            return
        try:
            write_state_json(self._path, {"devices": [asdict(d) for d in self._devices.values()]}, indent=1)
        except OSError as exc:
            log.warning("cannot write known-device file %s: %s", self._path, exc)
