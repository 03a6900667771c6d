"""The one place where agent errors become RPC status codes."""

from __future__ import annotations

import grpc

from agent import errors

#: Most specific class first is not needed: the lookup walks each error's MRO.
STATUS_BY_ERROR: dict[type[errors.AgentError], grpc.StatusCode] = {
    errors.InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.DataFormatError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.NotSupportedError: grpc.StatusCode.UNIMPLEMENTED,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.ForbiddenError: grpc.StatusCode.PERMISSION_DENIED,
    errors.AccessDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.RateLimitedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ConfigError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DeviceLeasedError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DeviceStateError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DeviceBusyError: grpc.StatusCode.UNAVAILABLE,
    errors.DeviceUnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.OperationTimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.OperationCancelledError: grpc.StatusCode.CANCELLED,
    errors.DeviceProtocolError: grpc.StatusCode.DATA_LOSS,
    errors.TransientDeviceError: grpc.StatusCode.ABORTED,
    errors.AgentError: grpc.StatusCode.INTERNAL,
}

#: Trailing-metadata key carrying the error's machine-readable reason.
REASON_KEY = "centre-error-reason"
HOLDER_KEY = "centre-lease-holder"


def status_for(exc: errors.AgentError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        code = STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def describe(exc: errors.AgentError) -> str:
    """``REASON: message`` - what a client shows."""
    return f"{exc.reason}: {exc.message}"


def trailers(exc: errors.AgentError) -> tuple[tuple[str, str], ...]:
    items = [(REASON_KEY, exc.reason)]
    if isinstance(exc, errors.DeviceLeasedError):
        items.append((HOLDER_KEY, exc.holder))
    return tuple(items)
