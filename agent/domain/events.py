"""Events on the agent's one multiplexed stream."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.domain.device import DeviceInfo


class EventKind(enum.StrEnum):
    DEVICE_ADDED = "device_added"
    DEVICE_REMOVED = "device_removed"
    DEVICE_STATE_CHANGED = "device_state_changed"
    CARD_INSERTED = "card_inserted"
    CARD_REMOVED = "card_removed"
    BARCODE_SCANNED = "barcode_scanned"
    JOB_UPDATED = "job_updated"
    LEASE_CHANGED = "lease_changed"
    FINGER_STATUS = "finger_status"
    HEARTBEAT = "heartbeat"


@dataclass(frozen=True, slots=True)
class Event:
    """One event. ``seq`` is assigned by the event bus, increasing without gaps per agent run.

    ``attributes`` carry small, non-personal details (reader name, job id, new state).
    A barcode scan's payload travels in ``payload`` and only to local clients: the
    bus never logs or forwards it.
    """

    kind: EventKind
    device_id: str
    timestamp: float
    seq: int = 0
    device: DeviceInfo | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    payload: bytes = b""
