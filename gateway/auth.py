"""Who may call the gateway. One interface, so mTLS (issue 8) slots in beside the token.

Today agents and admins present ``authorization: Bearer <token>``; with enrolment
the agent identity comes from its client certificate (``auth_context``) and a
certificate authenticator replaces :class:`BearerTokenAuthenticator` for agents.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agent.errors import ForbiddenError, UnauthenticatedError
from gateway.model import AgentRef


@dataclass(frozen=True, slots=True)
class CallerCredentials:
    """What the transport tells us about the caller."""

    metadata: Mapping[str, str]
    #: TLS peer properties (certificate subject, SANs...), computed on demand: only mTLS needs them
    auth_context: Callable[[], Mapping[str, tuple[bytes, ...]]] = field(default=dict)


class AgentAuthenticator(Protocol):
    def authenticate(self, caller: CallerCredentials, claimed: AgentRef) -> AgentRef:
        """Return the identity to record for this call (may override the claim), or raise
        UnauthenticatedError / ForbiddenError."""
        ...


class AdminAuthenticator(Protocol):
    def authorize(self, caller: CallerCredentials) -> None: ...


def _bearer(caller: CallerCredentials) -> str:
    value = caller.metadata.get("authorization", "")
    if not value.startswith("Bearer "):
        raise UnauthenticatedError("missing bearer token")
    return value[len("Bearer "):]


def _known(token: str, tokens: Iterable[str]) -> bool:
    found = False
    for candidate in tokens:  # no early exit: comparison time does not depend on which token matched
        found |= hmac.compare_digest(token.encode(), candidate.encode())
    return found


class BearerTokenAuthenticator:
    """Static tokens from the gateway config: fleet-wide, until enrolment replaces them."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = tuple(tokens)

    def authenticate(self, caller: CallerCredentials, claimed: AgentRef) -> AgentRef:
        if not _known(_bearer(caller), self._tokens):
            raise UnauthenticatedError("unknown token")
        return claimed

    def authorize(self, caller: CallerCredentials) -> None:
        if not _known(_bearer(caller), self._tokens):
            raise ForbiddenError("not an admin token")
