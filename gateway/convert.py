"""Protobuf <-> gateway records, with the validation every report passes first.

A report that breaks any rule is rejected whole (INVALID_ARGUMENT, no state
change). Messages name the field, never echo its value: a misbehaving agent must
not be able to push arbitrary text into the gateway's logs.
"""

from __future__ import annotations

import re

from agent.errors import InvalidRequestError
from centre.gateway.v1 import fleet_pb2, reporting_pb2
from gateway.model import (
    AgentHealthInfo,
    AgentRef,
    AgentReport,
    ConditionInfo,
    DeviceReport,
    ProblemSeverity,
    SupplyInfo,
    Update,
)

MAX_REPORT_BYTES = 1024 * 1024
MAX_UPDATES = 500
MAX_DEVICES_PER_SNAPSHOT = 256
MAX_CONDITIONS = 32
MAX_SUPPLIES = 32
MAX_COUNTERS = 32

_AGENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_TOKEN = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")
_REASON = re.compile(r"^[A-Za-z0-9._-]{0,64}$")
_KINDS = frozenset({"idcard", "fingerprint", "scanner", "printer", "barcode"})
_STATES = {
    reporting_pb2.DEVICE_STATE_PRESENT: "present",
    reporting_pb2.DEVICE_STATE_READY: "ready",
    reporting_pb2.DEVICE_STATE_BUSY: "busy",
    reporting_pb2.DEVICE_STATE_ERROR: "error",
    reporting_pb2.DEVICE_STATE_GONE: "gone",
}
STATE_TO_PB = {v: k for k, v in _STATES.items()}
_SEVERITIES = {
    reporting_pb2.SEVERITY_INFO: ProblemSeverity.INFO,
    reporting_pb2.SEVERITY_WARNING: ProblemSeverity.WARNING,
    reporting_pb2.SEVERITY_ERROR: ProblemSeverity.ERROR,
}
SEVERITY_TO_PB = {v: k for k, v in _SEVERITIES.items()}


def _bad(field: str, rule: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {rule}")


def _text(value: str, field: str, limit: int = 128) -> str:
    if len(value) > limit:
        raise _bad(field, f"longer than {limit} characters")
    if not value.isprintable():
        raise _bad(field, "control or unprintable characters")
    return value


def agent_ref(msg: reporting_pb2.AgentIdentity) -> AgentRef:
    if not _AGENT_ID.match(msg.agent_id):
        raise _bad("agent.agent_id", "1-128 characters of [A-Za-z0-9._:-]")
    if not _CODE.match(msg.province):
        raise _bad("agent.province", "1-32 characters of [A-Za-z0-9_-]")
    if not _CODE.match(msg.centre):
        raise _bad("agent.centre", "1-32 characters of [A-Za-z0-9_-]")
    return AgentRef(msg.agent_id, msg.province, msg.centre)


def agent_health(msg: reporting_pb2.AgentHealth) -> AgentHealthInfo:
    return AgentHealthInfo(
        version=_text(msg.version, "health.version", 64),
        uptime_seconds=msg.uptime_seconds,
        host=_text(msg.host, "health.host", 128),
        config_hash=_text(msg.config_hash, "health.config_hash", 128),
        certificate_not_after=msg.certificate_not_after,
        trust_bundle_version=_text(msg.trust_bundle_version, "health.trust_bundle_version", 64),
        trust_bundle_age_seconds=min(msg.trust_bundle_age_seconds, 2**62),
    )


def device_report(msg: reporting_pb2.DeviceStatus, where: str) -> DeviceReport:
    if not _TOKEN.match(msg.device_id):
        raise _bad(f"{where}.device_id", "1-128 characters of [A-Za-z0-9._:/-]")
    if msg.kind not in _KINDS:
        raise _bad(f"{where}.kind", "not a device family")
    if msg.state not in _STATES:
        raise _bad(f"{where}.state", "unset or unknown")
    if not _REASON.match(msg.last_error):
        raise _bad(f"{where}.last_error", "a reason code of [A-Za-z0-9._-], at most 64")
    if len(msg.conditions) > MAX_CONDITIONS or len(msg.supplies) > MAX_SUPPLIES \
            or len(msg.counters) > MAX_COUNTERS:
        raise _bad(where, "too many conditions, supplies or counters")
    conditions = []
    for c in msg.conditions:
        if not _REASON.match(c.code) or not c.code:
            raise _bad(f"{where}.conditions.code", "a code of [A-Za-z0-9._-], 1-64")
        if c.severity not in _SEVERITIES:
            raise _bad(f"{where}.conditions.severity", "unset or unknown")
        conditions.append(ConditionInfo(c.code, _SEVERITIES[c.severity]))
    supplies = []
    for s in msg.supplies:
        if not -1 <= s.level_percent <= 100:
            raise _bad(f"{where}.supplies.level_percent", "outside -1..100")
        supplies.append(SupplyInfo(_text(s.name, f"{where}.supplies.name", 64),
                                   _text(s.kind, f"{where}.supplies.kind", 32), s.level_percent,
                                   _text(s.color, f"{where}.supplies.color", 32)))
    counters = {}
    for key, value in msg.counters.items():
        if not _REASON.match(key) or not key:
            raise _bad(f"{where}.counters", "keys of [A-Za-z0-9._-], 1-64")
        counters[key] = int(value)
    return DeviceReport(
        device_id=msg.device_id, kind=msg.kind, backend=_text(msg.backend, f"{where}.backend", 32),
        name=_text(msg.name, f"{where}.name", 128), vendor=_text(msg.vendor, f"{where}.vendor", 64),
        model=_text(msg.model, f"{where}.model", 64), state=_STATES[msg.state], last_error=msg.last_error,
        conditions=tuple(conditions), supplies=tuple(supplies), counters=counters)


def agent_report(msg: reporting_pb2.ReportDevicesRequest, received_ms: int) -> AgentReport:
    """Validate a whole ReportDevices request; raises InvalidRequestError on the first fault."""
    if msg.ByteSize() > MAX_REPORT_BYTES:
        raise _bad("request", f"larger than {MAX_REPORT_BYTES} bytes")
    if not msg.HasField("agent"):
        raise _bad("agent", "missing")
    agent = agent_ref(msg.agent)
    if msg.epoch == 0:
        raise _bad("epoch", "must be non-zero")
    if not msg.updates:
        raise _bad("updates", "empty")
    if len(msg.updates) > MAX_UPDATES:
        raise _bad("updates", f"more than {MAX_UPDATES} entries")
    updates: list[Update] = []
    previous = 0
    for index, u in enumerate(msg.updates):
        where = f"updates[{index}]"
        if u.seq <= previous:
            raise _bad(f"{where}.seq", "not strictly increasing")
        previous = u.seq
        which = u.WhichOneof("change")
        if which == "status":
            updates.append(Update(u.seq, u.observed_at_ms, status=device_report(u.status, f"{where}.status")))
        elif which == "removed_device_id":
            if not _TOKEN.match(u.removed_device_id):
                raise _bad(f"{where}.removed_device_id", "not a device id")
            updates.append(Update(u.seq, u.observed_at_ms, removed_id=u.removed_device_id))
        elif which == "snapshot":
            if len(u.snapshot.devices) > MAX_DEVICES_PER_SNAPSHOT:
                raise _bad(f"{where}.snapshot", f"more than {MAX_DEVICES_PER_SNAPSHOT} devices")
            devices = tuple(device_report(d, f"{where}.snapshot.devices[{i}]")
                            for i, d in enumerate(u.snapshot.devices))
            if len({d.device_id for d in devices}) != len(devices):
                raise _bad(f"{where}.snapshot", "duplicate device ids")
            updates.append(Update(u.seq, u.observed_at_ms, snapshot=devices))
        else:
            raise _bad(f"{where}.change", "missing")
    health = agent_health(msg.health) if msg.HasField("health") else None
    return AgentReport(agent, msg.epoch, tuple(updates), received_ms, health)


# -- outbound (fleet queries) -----------------------------------------------------------------

def identity_pb(agent: AgentRef) -> reporting_pb2.AgentIdentity:
    return reporting_pb2.AgentIdentity(agent_id=agent.agent_id, province=agent.province, centre=agent.centre)


def health_pb(health: AgentHealthInfo) -> reporting_pb2.AgentHealth:
    return reporting_pb2.AgentHealth(version=health.version, uptime_seconds=health.uptime_seconds,
                                     host=health.host, config_hash=health.config_hash,
                                     certificate_not_after=health.certificate_not_after,
                                     trust_bundle_version=health.trust_bundle_version,
                                     trust_bundle_age_seconds=health.trust_bundle_age_seconds)


def device_pb(report: DeviceReport) -> reporting_pb2.DeviceStatus:
    return reporting_pb2.DeviceStatus(
        device_id=report.device_id, kind=report.kind, backend=report.backend, name=report.name,
        vendor=report.vendor, model=report.model, state=STATE_TO_PB[report.state],
        last_error=report.last_error,
        conditions=[reporting_pb2.Condition(code=c.code, severity=SEVERITY_TO_PB[c.severity])
                    for c in report.conditions],
        supplies=[reporting_pb2.Supply(name=s.name, kind=s.kind, level_percent=s.level_percent, color=s.color)
                  for s in report.supplies],
        counters=dict(report.counters))


AGENT_STATUS_PB = {"online": fleet_pb2.AGENT_STATUS_ONLINE, "offline": fleet_pb2.AGENT_STATUS_OFFLINE,
                   "missing": fleet_pb2.AGENT_STATUS_MISSING}


