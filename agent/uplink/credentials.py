"""How the uplink authenticates to the gateway: one interface, two kinds of credentials.

Today: a static bearer token from the agent config (optionally over TLS with a
pinned CA). After enrolment (issue 8): an mTLS client certificate, implemented as
another :class:`UplinkCredentials` whose ``channel_credentials`` carries the key
pair and whose ``certificate_not_after`` reports the expiry the reporter sends.
"""

from __future__ import annotations

from typing import Protocol

import grpc

from agent.errors import ConfigError


class UplinkCredentials(Protocol):
    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials for the channel, or None for plaintext (loopback and tests only)."""
        ...

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata added to every call (e.g. a bearer token)."""
        ...

    def certificate_not_after(self) -> int:
        """Client certificate notAfter as Unix seconds, 0 when there is none."""
        ...


class StaticTokenCredentials:
    """A fleet token from config. The token never appears in repr, logs or errors."""

    def __init__(self, token: str, *, root_certificates: bytes | None = None, tls: bool = False) -> None:
        if not token or any(ch.isspace() for ch in token):
            raise ConfigError("uplink token: empty or contains whitespace")
        self._token = token
        self._roots = root_certificates
        self._tls = tls or root_certificates is not None

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        if not self._tls:
            return None
        return grpc.ssl_channel_credentials(root_certificates=self._roots)

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self._token}"),)

    def certificate_not_after(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"StaticTokenCredentials(tls={self._tls}, token=<redacted>)"
