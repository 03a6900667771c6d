"""Turning API messages into the CLI's JSON and text, and API errors into one line."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from agent.client import default_target
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import devices_pb2 as dpb


def enum_name(enum_type: Any, value: int, prefix: str) -> str:
    name: str = enum_type.Name(value)
    return name.removeprefix(prefix).lower()


def family_name(value: int) -> str:
    return enum_name(cpb.DeviceFamily, value, "DEVICE_FAMILY_")


def device_json(d: cpb.Device) -> dict[str, Any]:
    """One device; ``card_present`` only for ID-card readers (it means nothing elsewhere)."""
    row: dict[str, Any] = {
        "id": d.id, "family": family_name(d.family), "state": enum_name(cpb.DeviceState, d.state, "DEVICE_STATE_"),
        "name": d.name, "backend": d.backend, "vendor": d.vendor, "model": d.model, "serial": d.serial,
        "connection": d.connection, "lease_holder": d.lease_holder, "features": list(d.features),
        "simulated": d.simulated,
        "health": {
            "conditions": [{"code": c.code, "severity": enum_name(cpb.Severity, c.severity, "SEVERITY_"),
                            "message": c.message} for c in d.health.conditions],
            "supplies": [{"name": s.name, "kind": s.kind, "level_percent": s.level_percent}
                         for s in d.health.supplies],
            "counters": dict(d.health.counters), "last_error": d.health.last_error,
        },
    }
    if d.family == cpb.DEVICE_FAMILY_IDCARD:
        row["card_present"] = d.card_present
    return row


def event_json(e: dpb.Event) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seq": e.seq, "kind": enum_name(dpb.EventKind, e.kind, "EVENT_KIND_"), "device_id": e.device_id,
        "time": e.time.ToDatetime(dt.UTC).isoformat(), "attributes": dict(e.attributes),
    }
    if e.HasField("device"):
        out["device"] = device_json(e.device)
    if e.HasField("barcode"):
        out["barcode"] = {"text": e.barcode.text, "symbology": e.barcode.symbology, "cccd_qr": e.barcode.cccd_qr}
    return out


def emit_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


def run_client(fn: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a client coroutine; an RPC error becomes one line on stderr and exit status 1."""
    import asyncio

    try:
        return asyncio.run(fn())
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE and "connect" in (exc.details() or "").lower():
            print(f"centre-agent: cannot reach the agent at {default_target()}: is it running? "
                  f"(set --socket or $CENTRE_AGENT_SOCKET)", file=sys.stderr)
        else:
            print(f"centre-agent: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
