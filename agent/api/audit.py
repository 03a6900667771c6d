"""Audit events: who (client and origin) did what (RPC) on which device, when, with what outcome.

One structured log line per event on the ``centre.audit`` logger; with
``log_format = "json"`` the fields are JSON keys. Audit events carry no personal
data: never a request or response body, only identifiers chosen by the agent or
the portal operator (device ids, origins, client ids) and status names.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from google.protobuf.message import Message

log = logging.getLogger("centre.audit")


def device_of(request: Message) -> str:
    """The device a request targets, from its ``device`` reference or ``device_id`` field ("" if none)."""
    fields = request.DESCRIPTOR.fields_by_name
    if "device" in fields and request.HasField("device"):
        ref: Any = request.device  # type: ignore[attr-defined]
        value = getattr(ref, "device_id", "")
        return value if isinstance(value, str) else ""
    if "device_id" in fields:
        value = request.device_id  # type: ignore[attr-defined]
        return value if isinstance(value, str) else ""
    return ""


def target_of(request: Message | None, targets: list[str]) -> str:
    """The device a call acted on: the one it resolved to, else the one its request named."""
    if targets:
        return targets[-1]
    return device_of(request) if request is not None else ""


_UNSAFE = re.compile(r'[^\x21-\x7e]|"')


def _clean(value: str, limit: int = 200) -> str:
    """One token of a key=value line: printable ASCII without spaces or quotes."""
    return _UNSAFE.sub("_", value[:limit])


def record(*, operation: str, client_id: str, origin: str, transport: str, outcome: str,
           device_id: str = "", peer: str = "", duration: float | None = None) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    fields = {"operation": operation, "client_id": _clean(client_id), "origin": _clean(origin),
              "transport": transport, "device_id": _clean(device_id), "outcome": outcome, "peer": _clean(peer),
              "at": round(time.time(), 3)}
    if duration is not None:
        fields["duration_ms"] = round(duration * 1000, 1)
    text = " ".join(f"{k}={v}" for k, v in fields.items() if v != "")
    log.info("audit %s", text, extra={"audit": fields, "device_id": fields["device_id"] or None,
                                      "operation": operation, "client_id": fields["client_id"],
                                      "outcome": outcome})
