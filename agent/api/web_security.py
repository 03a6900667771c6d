"""The browser listener's guard: an ASGI layer in front of the Connect application.

Every request passes, in order:

1. ``Host`` must name a loopback host (``localhost``, ``127.x.y.z``, ``[::1]``):
   a page on ``evil.example`` that re-resolves its name to 127.0.0.1 (DNS
   rebinding) still sends ``Host: evil.example`` and is refused.
2. ``Origin`` must be present and on the allowlist (``[web] allowed_origins``).
   CORS preflights are answered only for listed origins, including Chromium's
   Private/Local Network Access request headers; an unlisted origin gets a bare
   403 without any CORS header, so the browser hides even the error from it.
3. ``Authorization: Bearer <token>`` must be the pairing token of that origin
   (:mod:`agent.api.pairing`, re-read on change, constant-time comparison).
4. Per-client token-bucket rate limit, a cap on concurrent streams, and a cap on
   the request body size.

Refusals are written in the caller's protocol (Connect unary JSON, Connect
end-of-stream, or gRPC-Web trailers), carry ``centre-error-reason`` and are audited.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import mimetypes
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.api import audit
from agent.api.pairing import PairingStore
from agent.config import normalize_origin
from agent.errors import AgentError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: request headers a portal may send (answered in preflights)
ALLOWED_REQUEST_HEADERS = ("authorization", "content-type", "connect-protocol-version", "connect-timeout-ms",
                           "connect-content-encoding", "connect-accept-encoding", "grpc-timeout", "x-grpc-web",
                           "x-user-agent", "centre-client-id")
EXPOSED_HEADERS = "grpc-status, grpc-message, grpc-status-details-bin, centre-error-reason, retry-after"
PROBE_PATH = "/centre/probe"
DEMO_PREFIX = "/demo/"

# Connect code name -> (HTTP status for Connect unary, gRPC status number)
CODES: dict[str, tuple[int, int]] = {
    "permission_denied": (403, 7), "unauthenticated": (401, 16), "resource_exhausted": (429, 8),
    "invalid_argument": (400, 3), "unimplemented": (404, 12), "unavailable": (503, 14),
}


@functools.lru_cache(maxsize=256)
def is_loopback_host(host_header: str) -> bool:
    """True for ``localhost``, ``127.x.y.z`` and ``[::1]``, with or without a port."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or (host[end + 1:] and not host[end + 1:].startswith(":")):
            return False
        name = host[1:end]
    else:
        name, _, port = host.partition(":")
        if port and not port.isdigit():
            return False
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class TokenBuckets:
    """One token bucket per client key; least recently used keys are forgotten beyond ``max_keys``."""

    def __init__(self, rate: float, burst: int, max_keys: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._max = rate, float(burst), max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait


@dataclass
class WebPolicy:
    allowed_origins: frozenset[str]
    pairings: PairingStore
    buckets: TokenBuckets
    max_request_bytes: int
    max_streams_per_client: int
    demo_dir: Path | None = None
    streaming_paths: frozenset[str] = frozenset()  # server-streaming RPCs ("/pkg.Service/Method")


_origin = functools.lru_cache(maxsize=256)(normalize_origin)


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_key, raw_value in scope.get("headers", ()):
        key = raw_key.decode("latin-1").lower()
        if key not in out:  # the first value counts; later duplicates are ignored
            out[key] = raw_value.decode("latin-1")
    return out


def _cors(origin: str) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin"),
            (b"access-control-expose-headers", EXPOSED_HEADERS.encode())]


async def refuse(send: Send, content_type: str, code: str, reason: str, message: str,
                 cors_origin: str = "", extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """An error response in the caller's protocol."""
    http_status, grpc_number = CODES[code]
    headers = [(b"centre-error-reason", reason.encode()), (b"x-content-type-options", b"nosniff"),
               *(extra or [])]
    if cors_origin:
        headers += _cors(cors_origin)
    text = f"{reason}: {message}"
    if content_type.startswith("application/grpc-web"):
        headers += [(b"content-type", content_type.split(";")[0].encode()),
                    (b"grpc-status", str(grpc_number).encode()), (b"grpc-message", text.replace(" ", "%20").encode())]
        status, body = 200, b""
    elif content_type.startswith("application/connect+"):
        end = json.dumps({"error": {"code": code, "message": text}}).encode()
        headers.append((b"content-type", content_type.split(";")[0].encode()))
        status, body = 200, struct.pack(">BI", 2, len(end)) + end
    else:
        headers.append((b"content-type", b"application/json"))
        status, body = http_status, json.dumps({"code": code, "message": text}).encode()
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"x-content-type-options", b"nosniff"),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": text.encode()})


class GuardedApp:
    """ASGI app: the checks above, then the Connect application (or the demo's static files)."""

    def __init__(self, inner: ASGIApp, policy: WebPolicy) -> None:
        self.inner = inner
        self.policy = policy
        self._streams: dict[str, int] = {}
        self._refusal_log = TokenBuckets(rate=1.0, burst=20)  # audit lines per (outcome, origin)
        self.refusals_unlogged = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return  # websockets are not served: closing without accept refuses them
        headers = _headers(scope)
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        peer = "{}:{}".format(*scope["client"]) if scope.get("client") else ""
        raw_origin = headers.get("origin", "")

        def deny(outcome: str, origin: str = raw_origin) -> None:
            # any web page can make the browser send refused requests: bound their audit lines
            if self._refusal_log.take(f"{outcome} {origin[:200]}") == 0:
                audit.record(operation=path[:120], client_id="", origin=origin, transport="connect",
                             outcome=outcome, peer=peer)
            else:
                self.refusals_unlogged += 1

        if not is_loopback_host(headers.get("host", "")):
            deny("HOST_REFUSED")
            await _plain(send, 403, "host not allowed: the agent answers only to loopback names\n")
            return
        if path == PROBE_PATH and method in ("GET", "HEAD"):
            # reachability probe for the SDK (fetched in no-cors mode: the page learns only "it answered")
            await send({"type": "http.response.start", "status": 204, "headers": [(b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if self.policy.demo_dir is not None and method == "GET" and (path == "/demo" or path.startswith(DEMO_PREFIX)):
            await self._static(path, send)
            return
        origin = _origin(raw_origin)
        content_type = headers.get("content-type", "")
        if not raw_origin or origin not in self.policy.allowed_origins:
            deny("ORIGIN_REFUSED")
            await _plain(send, 403, "origin not allowed\n")
            return
        if method == "OPTIONS":
            await self._preflight(headers, origin, send)
            return
        if method not in ("POST", "GET"):
            await _plain(send, 405, "method not allowed\n", _cors(origin))
            return
        # before the token check, so a page cannot guess tokens at full speed either
        wait = self.policy.buckets.take(origin)
        if wait > 0:
            deny("RESOURCE_EXHAUSTED", origin)
            await refuse(send, content_type, "resource_exhausted", "RATE_LIMITED", "too many requests",
                         origin, [(b"retry-after", str(max(1, round(wait))).encode())])
            return
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            deny("UNAUTHENTICATED", origin)
            await refuse(send, content_type, "unauthenticated", "PAIRING_REQUIRED",
                         "this portal is not paired with the agent (pairing token missing)", origin)
            return
        try:
            paired = self.policy.pairings.verify(origin, token.strip())
        except AgentError as exc:  # an unreadable pairing file: refuse everyone, say why in the log
            log.error("cannot check pairing tokens: %s", exc.message)
            deny("UNAVAILABLE", origin)
            await refuse(send, content_type, "unavailable", "PAIRING_STORE_UNREADABLE",
                         "the agent cannot read its pairing tokens (see the agent log)", origin)
            return
        if not paired:
            deny("UNAUTHENTICATED", origin)
            await refuse(send, content_type, "unauthenticated", "PAIRING_INVALID",
                         "pairing token not valid for this origin (wrong or revoked)", origin)
            return
        length = headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > self.policy.max_request_bytes):
            deny("RESOURCE_EXHAUSTED", origin)
            await refuse(send, content_type, "resource_exhausted", "REQUEST_TOO_LARGE",
                         f"request body larger than {self.policy.max_request_bytes} bytes", origin)
            return
        stream = path in self.policy.streaming_paths
        if stream and self._streams.get(origin, 0) >= self.policy.max_streams_per_client:
            deny("RESOURCE_EXHAUSTED", origin)
            await refuse(send, content_type, "resource_exhausted", "TOO_MANY_STREAMS",
                         f"at most {self.policy.max_streams_per_client} open streams per portal", origin)
            return
        await self._forward(scope, receive, send, origin, stream)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, origin: str, stream: bool) -> None:
        cors = [*_cors(origin), (b"x-content-type-options", b"nosniff")]
        received = 0
        limit = self.policy.max_request_bytes

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # chunked body without Content-Length: stop reading it
                    return {"type": "http.disconnect"}
            return message

        async def cors_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        if stream:
            self._streams[origin] = self._streams.get(origin, 0) + 1
        try:
            await self.inner(scope, counted_receive, cors_send)
        finally:
            if stream:
                left = self._streams[origin] - 1
                if left:
                    self._streams[origin] = left
                else:
                    del self._streams[origin]

    async def _preflight(self, headers: dict[str, str], origin: str, send: Send) -> None:
        wanted_method = headers.get("access-control-request-method", "")
        if wanted_method not in ("POST", "GET"):
            await _plain(send, 403, "preflight: method not allowed\n")
            return
        requested = [h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")
                     if h.strip()]
        if any(h not in ALLOWED_REQUEST_HEADERS for h in requested):
            await _plain(send, 403, "preflight: header not allowed\n")
            return
        out = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin"),
               (b"access-control-allow-methods", b"POST, GET"),
               (b"access-control-allow-headers", ", ".join(ALLOWED_REQUEST_HEADERS).encode()),
               (b"access-control-max-age", b"600")]
        # Chromium's Private Network Access (and its successor, Local Network Access) preflight
        if headers.get("access-control-request-private-network", "").lower() == "true":
            out.append((b"access-control-allow-private-network", b"true"))
        if headers.get("access-control-request-local-network", "").lower() == "true":
            out.append((b"access-control-allow-local-network", b"true"))
        await send({"type": "http.response.start", "status": 204, "headers": out})
        await send({"type": "http.response.body", "body": b""})

    async def _static(self, path: str, send: Send) -> None:
        root = self.policy.demo_dir
        assert root is not None
        if path == "/demo":
            await send({"type": "http.response.start", "status": 308, "headers": [(b"location", b"/demo/")]})
            await send({"type": "http.response.body", "body": b""})
            return
        rel = path[len(DEMO_PREFIX):] if path.startswith(DEMO_PREFIX) else ""
        target = (root / (rel or "index.html")).resolve()
        if not target.is_relative_to(root.resolve()) or not target.is_file():
            await _plain(send, 404, "not found\n")
            return
        body = await asyncio.to_thread(target.read_bytes)
        mime = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if mime.startswith("text/") or mime in ("application/javascript", "text/javascript"):
            mime += "; charset=utf-8"
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", mime.encode()), (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy",
             b"default-src 'self'; img-src 'self' data: blob:; frame-src 'self' blob:; object-src 'none'")]})
        await send({"type": "http.response.body", "body": body})
