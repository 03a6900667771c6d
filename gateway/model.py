"""The gateway's view of the fleet: frozen records, liveness and problem rules.

Protobuf stays at the service edge (``gateway.service``); storage, fleet views,
metrics and the dashboard work on these types.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

#: An agent is online while seen within its heartbeat interval plus this grace.
ONLINE_GRACE_MS = 60_000
#: An agent silent this long is "missing" (retired PC, disk wiped...), not just offline.
MISSING_AFTER_MS = 30 * 24 * 3600 * 1000
#: A certificate expiring within this window is a problem.
CERT_WARNING_MS = 14 * 24 * 3600 * 1000
#: Supply level (percent) at or below which a supply is "low".
SUPPLY_LOW_PERCENT = 10

DEVICE_STATES = ("present", "ready", "busy", "error", "gone")


class AgentStatus(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    MISSING = "missing"


class ProblemSeverity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def agent_status(last_seen_ms: int, interval_s: int, now_ms: int) -> AgentStatus:
    """Online if seen within ``interval + 60 s``; missing after 30 days; offline between."""
    silent = now_ms - last_seen_ms
    if silent <= interval_s * 1000 + ONLINE_GRACE_MS:
        return AgentStatus.ONLINE
    if silent >= MISSING_AFTER_MS:
        return AgentStatus.MISSING
    return AgentStatus.OFFLINE


@dataclass(frozen=True, slots=True)
class AgentRef:
    agent_id: str
    province: str
    centre: str


@dataclass(frozen=True, slots=True)
class AgentHealthInfo:
    version: str = ""
    uptime_seconds: int = 0
    host: str = ""
    config_hash: str = ""
    certificate_not_after: int = 0  # Unix seconds, 0 = none
    trust_bundle_version: str = ""  # the ID-card trust bundle the agent holds, "" = none
    trust_bundle_age_seconds: int = 0  # since the gateway confirmed it, as of the agent's last report


@dataclass(frozen=True, slots=True)
class ConditionInfo:
    code: str
    severity: ProblemSeverity


@dataclass(frozen=True, slots=True)
class SupplyInfo:
    name: str
    kind: str
    level_percent: int
    color: str = ""


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """One device as its agent last reported it."""

    device_id: str
    kind: str
    backend: str = ""
    name: str = ""
    vendor: str = ""
    model: str = ""
    state: str = "ready"
    last_error: str = ""
    conditions: tuple[ConditionInfo, ...] = ()
    supplies: tuple[SupplyInfo, ...] = ()
    counters: Mapping[str, int] = field(default_factory=dict)

    def problems(self) -> list[tuple[str, ProblemSeverity, str]]:
        """(code, severity, detail) of every current problem of this device."""
        found: list[tuple[str, ProblemSeverity, str]] = []
        if self.state == "error":
            found.append(("device-error", ProblemSeverity.ERROR, self.last_error or "error"))
        elif self.state == "gone":
            found.append(("device-gone", ProblemSeverity.ERROR, "not seen by its agent"))
        for condition in self.conditions:
            if condition.severity >= ProblemSeverity.WARNING:
                found.append((condition.code, condition.severity, condition.code))
        for supply in self.supplies:
            if 0 <= supply.level_percent <= SUPPLY_LOW_PERCENT:
                severity = ProblemSeverity.ERROR if supply.level_percent == 0 else ProblemSeverity.WARNING
                found.append(("supply-low", severity, f"{supply.name} {supply.level_percent}%"))
        return found

    @property
    def supply_low(self) -> bool:
        return any(0 <= s.level_percent <= SUPPLY_LOW_PERCENT for s in self.supplies)


@dataclass(frozen=True, slots=True)
class Update:
    """One outbox entry of an agent: a device status, a removal, or a full snapshot."""

    seq: int
    observed_ms: int
    status: DeviceReport | None = None
    removed_id: str = ""
    snapshot: tuple[DeviceReport, ...] | None = None


@dataclass(frozen=True, slots=True)
class AgentReport:
    agent: AgentRef
    epoch: int
    updates: tuple[Update, ...]
    received_ms: int
    health: AgentHealthInfo | None = None


@dataclass(frozen=True, slots=True)
class ReportResult:
    acked_seq: int
    applied: int
    replayed: int


@dataclass(frozen=True, slots=True)
class Beat:
    """A heartbeat held in memory until the next last-seen flush."""

    agent: AgentRef
    health: AgentHealthInfo
    interval_s: int
    seen_ms: int


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent: AgentRef
    health: AgentHealthInfo
    interval_s: int
    epoch: int
    acked_seq: int
    last_seen_ms: int
    first_seen_ms: int


@dataclass(frozen=True, slots=True)
class DeviceRow:
    agent_id: str
    report: DeviceReport
    state_since_ms: int
    problem_since_ms: int  # 0 while the device has no problem
    updated_ms: int


@dataclass(frozen=True, slots=True)
class Transition:
    agent_id: str
    device_id: str
    seq: int
    state: str  # a device state, or "removed"
    observed_ms: int
