"""Who is calling: the transport-independent view services see."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.errors import InvalidRequestError

CLIENT_ID_KEY = "centre-client-id"


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The caller of one RPC.

    ``client_id`` is what leases and jobs are held by: the ``centre-client-id``
    metadata when given, else one derived from the transport. ``origin`` is the
    browser origin for Connect calls, "" for native clients.
    """

    client_id: str
    transport: str  # "unix", "tcp", "connect"
    peer: str = ""
    origin: str = ""
    #: devices the call resolved to (an empty DeviceRef means "the only one"): for audit lines
    targets: list[str] = field(default_factory=list, compare=False)


def client_id_from(metadata_value: str | None, fallback: str) -> str:
    if metadata_value is None or metadata_value == "":
        return fallback
    if len(metadata_value) > 64 or not metadata_value.isprintable():
        raise InvalidRequestError(f"{CLIENT_ID_KEY} must be 1-64 printable characters")
    return metadata_value
