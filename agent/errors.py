"""The one error hierarchy of the agent.

Every error a driver, the core or the API layer raises on purpose derives from
:class:`AgentError`. Each class carries a stable machine-readable ``reason``
(for clients and audit events) and maps to exactly one gRPC status code; the
mapping lives in :mod:`agent.api.status` and nowhere else.

Messages never contain personal data (card fields, images, templates): they
name the operation, the device and what went wrong.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every deliberate agent error.

    ``reason`` is an UPPER_SNAKE identifier clients can switch on; ``device_id``
    names the device involved, if any; ``retryable`` tells a client whether the
    same request may succeed later without a change on its side.
    """

    reason: str = "INTERNAL"
    retryable: bool = False

    def __init__(self, message: str, *, reason: str | None = None, device_id: str | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.device_id = device_id
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


# -- caller errors -------------------------------------------------------------------------------

class InvalidRequestError(AgentError, ValueError):
    """The request is malformed, oversized, or its options do not fit the device."""

    reason = "INVALID_ARGUMENT"


class NotFoundError(AgentError, LookupError):
    """No device, job or lease with that id."""

    reason = "NOT_FOUND"


class NotSupportedError(AgentError):
    """The device or backend cannot do this (a capability it does not declare)."""

    reason = "NOT_SUPPORTED"


class UnauthenticatedError(AgentError):
    """The caller presented no credentials, or credentials that are not valid."""

    reason = "UNAUTHENTICATED"


class ForbiddenError(AgentError, PermissionError):
    """The caller is known but may not do this (origin not allowed, token revoked, ...)."""

    reason = "FORBIDDEN"


class RateLimitedError(AgentError):
    """The caller sent more requests than its budget allows."""

    reason = "RATE_LIMITED"
    retryable = True


class ConfigError(AgentError):
    """Configuration is missing, malformed, or names an unknown key."""

    reason = "CONFIG"


# -- device and lease state ----------------------------------------------------------------------

class DeviceLeasedError(AgentError):
    """The device is leased by another client; ``holder`` names that client's id."""

    reason = "LEASED_BY_OTHER"

    def __init__(self, message: str, *, holder: str, device_id: str | None = None) -> None:
        super().__init__(message, device_id=device_id, retryable=True)
        self.holder = holder


class DeviceBusyError(AgentError):
    """The device is running another operation right now."""

    reason = "DEVICE_BUSY"
    retryable = True


class DeviceStateError(AgentError):
    """The device is in a state where the operation cannot run (paper jam, cover open, no paper...).

    ``reason`` names the state precisely, e.g. ``PAPER_JAM``, ``FEEDER_EMPTY``,
    ``COVER_OPEN``, ``MEDIA_EMPTY``, ``NO_CARD``; ``SEVERAL_CARDS`` when a read names no
    reader and more than one reader holds a card (the message names them).
    """

    reason = "DEVICE_STATE"


class DeviceUnavailableError(AgentError):
    """The device cannot be reached: unplugged, powered off, service (pcscd, CUPS) down."""

    reason = "DEVICE_UNAVAILABLE"
    retryable = True


class DeviceGoneError(DeviceUnavailableError):
    """The device went away during the operation; partial results were discarded."""

    reason = "DEVICE_GONE"


class CardRemovedError(DeviceUnavailableError):
    """The card was pulled from the reader during the operation."""

    reason = "CARD_REMOVED"


class OperationTimeoutError(AgentError, TimeoutError):
    """The device did not answer (or the user did not act) in time."""

    reason = "TIMEOUT"
    retryable = True


class CardTimeoutError(OperationTimeoutError):
    """The card or reader did not answer in time."""

    reason = "CARD_TIMEOUT"


class OperationCancelledError(AgentError):
    """The operation was cancelled by its client."""

    reason = "CANCELLED"


# -- device data ---------------------------------------------------------------------------------

class AccessDeniedError(AgentError):
    """The device refused access: wrong MRZ or CAN for a chip card, wrong sensor password.

    Not retried automatically: chip cards count failed authentications.
    """

    reason = "ACCESS_DENIED"


class DeviceProtocolError(AgentError):
    """The device answered something the protocol does not allow (bad status word, bad MAC,
    a malformed or truncated response)."""

    reason = "PROTOCOL_ERROR"


class DataFormatError(AgentError, ValueError):
    """Data read from a device or supplied by a client does not parse (TLV, MRZ, template...)."""

    reason = "DATA_FORMAT"


class AttestationRejectedError(DataFormatError):
    """A card-read attestation a portal backend checked does not hold (raised by
    :mod:`agent.attestation_verify`, never by the agent's API). ``reason`` says which check failed:
    MALFORMED, UNTRUSTED_CHAIN, SELF_SIGNED, CERTIFICATE_EXPIRED, WRONG_KEY_USAGE, BAD_SIGNATURE,
    AGENT_MISMATCH, CHALLENGE_MISMATCH, ORIGIN_MISMATCH, STALE, FACE_MISMATCH."""

    reason = "ATTESTATION_REJECTED"


class TransientDeviceError(AgentError):
    """The operation failed for a reason the user can fix by trying again (finger lifted too early,
    poor quality capture). ``reason`` says which."""

    reason = "RETRY"
    retryable = True
