"""The browser listener: Connect (JSON and binary) and gRPC-Web on a loopback port.

The same service-core objects the grpcio server uses are bound here, generically
from their proto descriptors, to a ``connectrpc`` ASGI application (which speaks
Connect unary, Connect streaming and gRPC-Web); :mod:`agent.api.web_security`
guards it and uvicorn serves it on the agent's event loop. Browsers use unary and
server-streaming RPCs only, so client- and bidi-streaming methods are not bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from connectrpc._server_shared import EndpointServerStream, EndpointUnary
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

from agent.api import audit, status
from agent.api.call import CLIENT_ID_KEY, CallInfo, client_id_from
from agent.api.grpc_server import ServiceCore, request_limit
from agent.api.pairing import PairingStore
from agent.api.web_security import GuardedApp, TokenBuckets, WebPolicy
from agent.config import WebSection, check_loopback_address
from agent.errors import AgentError, ConfigError, InvalidRequestError
from agent.metrics import AgentMetrics

log = logging.getLogger(__name__)

AnyEndpoint = EndpointUnary[Any, Any] | EndpointServerStream[Any, Any]

CODE_BY_STATUS: dict[grpc.StatusCode, Code] = {
    s: (Code.CANCELED if s is grpc.StatusCode.CANCELLED else Code[s.name])
    for s in grpc.StatusCode if s is not grpc.StatusCode.OK}


class ProtoBinaryCodec:
    """Binary protobuf for ``google.protobuf`` messages (connectrpc's own codecs expect another runtime)."""

    def name(self) -> str:
        return "proto"

    def encode(self, message: Message) -> bytes:
        return message.SerializeToString()

    def decode(self, data: bytes | bytearray, message_class: type[Message]) -> Message:
        return message_class.FromString(bytes(data))


class ProtoJsonCodec:
    """The proto3 JSON mapping (camelCase names, defaults omitted) for ``google.protobuf`` messages."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Message]) -> Message:
        return json_format.Parse(bytes(data) or b"{}", message_class(), ignore_unknown_fields=True)


def connect_error(exc: AgentError, ctx: RequestContext[Any, Any], stream: bool) -> ConnectError:
    (ctx.response_trailers if stream else ctx.response_headers)[status.REASON_KEY] = exc.reason
    return ConnectError(CODE_BY_STATUS[status.status_for(exc)], status.describe(exc))


def call_info(ctx: RequestContext[Any, Any]) -> CallInfo:
    """The caller of a browser call. The guard has already checked the origin and its token, so
    the origin is trusted; the client id is scoped under it so a page cannot pose as a native client."""
    headers = ctx.request_headers
    origin = headers.get("origin", "")
    own = client_id_from(headers.get(CLIENT_ID_KEY), "")
    return CallInfo(client_id=f"web:{origin}" + (f"#{own}" if own else ""), transport="connect",
                    peer=ctx.client_address or "", origin=origin)


def _check_size(request: Message, limit: int) -> None:
    """The same per-method limits as the native server (only print jobs and identify calls are large)."""
    size = request.ByteSize()
    if size > limit:
        raise InvalidRequestError(f"request of {size} bytes exceeds the {limit}-byte limit for this call")


def _unary(name: str, impl: Callable[[Any, CallInfo], Awaitable[Any]], limit: int, metrics: AgentMetrics
           ) -> Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]]:
    async def endpoint(request: Any, ctx: RequestContext[Any, Any]) -> Any:
        started = time.perf_counter()
        outcome = "OK"
        call: CallInfo | None = None
        try:
            _check_size(request, limit)
            call = call_info(ctx)
            return await impl(request, call)
        except AgentError as exc:
            outcome = status.status_for(exc).name
            raise connect_error(exc, ctx, stream=False) from None
        except Exception:
            outcome = "INTERNAL"
            log.exception("%s failed", name)
            raise ConnectError(Code.INTERNAL, "INTERNAL: internal error (see agent log)") from None
        finally:
            elapsed = time.perf_counter() - started
            metrics.operations.labels(name, outcome).inc()
            metrics.latency.labels(name).observe(elapsed)
            audit.record(operation=name, client_id=call.client_id if call else "",
                         origin=ctx.request_headers.get("origin", ""), transport="connect", outcome=outcome,
                         device_id=audit.target_of(request, call.targets if call else []),
                         peer=ctx.client_address or "", duration=elapsed)
    return endpoint


def _streaming(name: str, impl: Callable[[Any, CallInfo], AsyncIterator[Any]], limit: int, metrics: AgentMetrics
               ) -> Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]]:
    async def endpoint(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        started = time.perf_counter()
        outcome = "OK"
        call: CallInfo | None = None
        try:
            _check_size(request, limit)
            call = call_info(ctx)
            async with contextlib.aclosing(impl(request, call)) as stream:  # type: ignore[type-var]
                async for item in stream:
                    yield item
        except AgentError as exc:
            outcome = status.status_for(exc).name
            raise connect_error(exc, ctx, stream=True) from None
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "CANCELLED"
            raise
        except Exception:
            outcome = "INTERNAL"
            log.exception("%s failed", name)
            raise ConnectError(Code.INTERNAL, "INTERNAL: internal error (see agent log)") from None
        finally:
            metrics.operations.labels(name, outcome).inc()
            audit.record(operation=name, client_id=call.client_id if call else "",
                         origin=ctx.request_headers.get("origin", ""), transport="connect", outcome=outcome,
                         device_id=audit.target_of(request, call.targets if call else []),
                         peer=ctx.client_address or "",
                         duration=time.perf_counter() - started)
    return endpoint


def endpoints_for(cores: Sequence[ServiceCore], metrics: AgentMetrics,
                  max_request_bytes: int = 64 << 20) -> dict[str, AnyEndpoint]:
    """``/package.Service/Method`` -> endpoint, for every unary and server-streaming RPC the cores implement."""
    table: dict[str, AnyEndpoint] = {}
    for core in cores:
        service = core.descriptor
        for method in service.methods:
            impl = getattr(core, method.name, None)
            if impl is None or method.client_streaming:
                continue
            info: MethodInfo[Any, Any] = MethodInfo(
                name=method.name, service_name=service.full_name,
                input=message_factory.GetMessageClass(method.input_type),
                output=message_factory.GetMessageClass(method.output_type),
                idempotency_level=IdempotencyLevel.UNKNOWN,
                stream_type=StreamType.SERVER_STREAM if method.server_streaming else StreamType.UNARY)
            path = f"/{service.full_name}/{method.name}"
            limit = request_limit(method, max_request_bytes)
            if method.server_streaming:
                table[path] = Endpoint.server_stream(method=info,
                                                     function=_streaming(method.name, impl, limit, metrics))
            else:
                table[path] = Endpoint.unary(method=info, function=_unary(method.name, impl, limit, metrics))
    return table


class AgentConnectApp(ConnectASGIApplication[object]):
    """A Connect ASGI application serving a fixed table of endpoints (of several services)."""

    def __init__(self, table: Mapping[str, AnyEndpoint], read_max_bytes: int) -> None:
        super().__init__(service=object(), endpoints=lambda _service: table, read_max_bytes=read_max_bytes,
                         codecs=[ProtoBinaryCodec(), ProtoJsonCodec()])

    @property
    def path(self) -> str:
        return "/"


def default_demo_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "clients" / "js" / "demo"


class ConnectServer:
    """uvicorn on one loopback socket, run as tasks of the agent's loop."""

    def __init__(self, cores: Sequence[ServiceCore], metrics: AgentMetrics, web: WebSection, state_dir: str,
                 demo: bool = False) -> None:
        self._web = web
        self._extra_origins: set[str] = set()
        demo_dir = (Path(web.demo_dir) if web.demo_dir else default_demo_dir()) if (demo or web.demo) else None
        self.policy = WebPolicy(
            allowed_origins=frozenset(web.allowed_origins), pairings=PairingStore(state_dir),
            buckets=TokenBuckets(web.rate_per_second, web.rate_burst), max_request_bytes=web.max_request_bytes,
            max_streams_per_client=web.max_streams_per_client, demo_dir=demo_dir)
        table = endpoints_for(cores, metrics, web.max_request_bytes)
        self.policy.streaming_paths = frozenset(p for p, e in table.items() if isinstance(e, EndpointServerStream))
        self.app = GuardedApp(AgentConnectApp(table, web.max_request_bytes), self.policy)
        self._server: uvicorn.Server | None = None
        self._sock: socket.socket | None = None
        self.address = ""

    def listen(self) -> str:
        """Bind the configured loopback address; returns ``host:port``."""
        host, port = check_loopback_address(self._web.listen, "web.listen")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then (else every
        # response body waits for a delayed ACK, ~40 ms per call)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"web.listen: cannot listen on {host}:{port}: {exc.strerror}") from None
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        bound = sock.getsockname()[1]
        self.address = f"[{host}]:{bound}" if family == socket.AF_INET6 else f"{host}:{bound}"
        if self.policy.demo_dir is not None:
            # the demo page is served from this listener: its own origin may call it (pairing still required)
            names = ["localhost", f"[{host}]" if family == socket.AF_INET6 else host]
            self.policy.allowed_origins = self.policy.allowed_origins | {f"http://{n}:{bound}" for n in names}
        return self.address

    async def start(self) -> None:
        if self._sock is None:
            self.listen()
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False, server_header=False,
                                date_header=False, timeout_graceful_shutdown=int(max(1, self._grace)),
                                ws="none", h11_max_incomplete_event_size=64 * 1024)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        assert self._sock is not None
        await server.startup(sockets=[self._sock])
        self._server = server

    _grace = 5.0

    async def stop(self, grace: float) -> None:
        if self._server is None:
            if self._sock is not None:  # bound but never started
                self._sock.close()
                self._sock = None
            return
        self._server.config.timeout_graceful_shutdown = int(max(1, grace))
        self._server.should_exit = True
        await self._server.shutdown(sockets=[self._sock] if self._sock else None)
        self._server = None
        self._sock = None
