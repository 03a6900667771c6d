"""The native gRPC server (grpcio asyncio) on a unix socket and, optionally, loopback TCP.

Services are bound generically from their proto descriptors to the service cores,
so every RPC passes through one wrapper: caller identity, metrics, and the
mapping of agent errors to status codes (:mod:`agent.api.status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agent.api import audit, status
from agent.api.call import CLIENT_ID_KEY, CallInfo, client_id_from
from agent.errors import AgentError, ConfigError, InvalidRequestError
from agent.metrics import AgentMetrics

log = logging.getLogger(__name__)


class ServiceCore(Protocol):
    descriptor: ServiceDescriptor


def call_info(context: grpc.aio.ServicerContext[Any, Any]) -> CallInfo:
    metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    peer = context.peer() or ""
    transport = "unix" if peer.startswith("unix") else "tcp"
    return CallInfo(client_id=client_id_from(metadata.get(CLIENT_ID_KEY), f"{transport}-anonymous"),
                    transport=transport, peer=peer)


async def _fail(context: grpc.aio.ServicerContext[Any, Any], exc: AgentError) -> None:
    context.set_trailing_metadata(status.trailers(exc))
    await context.abort(status.status_for(exc), status.describe(exc))


#: Requests that carry documents or many templates may be large; every other request is small.
LARGE_REQUESTS = frozenset({"PrintRequest", "IdentifyRequest"})
SMALL_REQUEST_BYTES = 1 << 20


def _parse(request_cls: Any, raw: bytes, limit: int) -> Any:
    """Decode here, not in grpcio, so a corrupt or oversized message is INVALID_ARGUMENT
    (grpcio would answer UNKNOWN or RESOURCE_EXHAUSTED)."""
    if len(raw) > limit:
        raise InvalidRequestError(f"request of {len(raw)} bytes exceeds the {limit}-byte limit for this call")
    try:
        return request_cls.FromString(raw)
    except DecodeError:
        raise InvalidRequestError("request is not a valid protobuf message") from None


#: Read-only queries are not audited (clients poll them); every device operation is.
UNAUDITED = frozenset({"ListDevices", "GetDevice", "GetVersion", "GetHealth", "GetConfigSummary",
                       "GetScannerCapabilities", "GetPrinterCapabilities", "GetFingerprintCapabilities",
                       "GetPrinterStatus", "ListPrintJobs", "ParseCardQr"})


def _audit(name: str, request: Any, call: CallInfo | None, outcome: str, started: float) -> None:
    if name in UNAUDITED or call is None:
        return
    audit.record(operation=name, client_id=call.client_id, origin=call.origin, transport=call.transport,
                 outcome=outcome, device_id=audit.target_of(request, call.targets),
                 peer=call.peer, duration=time.perf_counter() - started)


def _unary(name: str, impl: Callable[[Any, CallInfo], Awaitable[Any]], request_cls: Any, limit: int,
           metrics: AgentMetrics) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def behavior(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        outcome = "OK"
        request: Any = None
        call: CallInfo | None = None
        try:
            call = call_info(context)
            request = _parse(request_cls, raw, limit)
            return await impl(request, call)
        except AgentError as exc:
            outcome = status.status_for(exc).name
            await _fail(context, exc)
        except Exception:
            outcome = "INTERNAL"
            log.exception("%s failed", name)
            await context.abort(grpc.StatusCode.INTERNAL, "INTERNAL: internal error (see agent log)")
        finally:
            metrics.operations.labels(name, outcome).inc()
            metrics.latency.labels(name).observe(time.perf_counter() - started)
            _audit(name, request, call, outcome, started)
    return behavior


def _streaming(name: str, impl: Callable[[Any, CallInfo], AsyncIterator[Any]], request_cls: Any, limit: int,
               metrics: AgentMetrics) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
    async def behavior(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        started = time.perf_counter()
        outcome = "OK"
        request: Any = None
        call: CallInfo | None = None
        try:
            call = call_info(context)
            request = _parse(request_cls, raw, limit)
            stream_impl = impl(request, call)
            async with contextlib.aclosing(stream_impl) as stream:  # type: ignore[type-var]
                async for item in stream:
                    yield item
        except AgentError as exc:
            outcome = status.status_for(exc).name
            await _fail(context, exc)
        except Exception:
            outcome = "INTERNAL"
            log.exception("%s failed", name)
            await context.abort(grpc.StatusCode.INTERNAL, "INTERNAL: internal error (see agent log)")
        except asyncio.CancelledError:
            outcome = "CANCELLED"  # the client went away mid-stream
            raise
        finally:
            metrics.operations.labels(name, outcome).inc()
            _audit(name, request, call, outcome, started)
    return behavior


def request_limit(method: Any, max_message_bytes: int) -> int:
    return max_message_bytes if method.input_type.name in LARGE_REQUESTS else min(SMALL_REQUEST_BYTES,
                                                                                  max_message_bytes)


def bind(core: ServiceCore, metrics: AgentMetrics, max_message_bytes: int) -> grpc.GenericRpcHandler:
    """A generic handler serving every RPC of ``core.descriptor`` that ``core`` implements."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in core.descriptor.methods:
        impl = getattr(core, method.name, None)
        if impl is None:
            continue
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        limit = request_limit(method, max_message_bytes)
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(method.name, impl, request_cls, limit, metrics),
                response_serializer=response_cls.SerializeToString)
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(method.name, impl, request_cls, limit, metrics),
                response_serializer=response_cls.SerializeToString)
    return grpc.method_handlers_generic_handler(core.descriptor.full_name, handlers)


def prepare_socket_path(path: Path) -> None:
    """Create the socket's directory; remove a stale socket, refuse if an agent is listening."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # stale: nobody listens
    else:
        raise ConfigError(f"another agent is already listening on {path}")
    finally:
        probe.close()


class GrpcServer:
    def __init__(self, cores: Sequence[ServiceCore], metrics: AgentMetrics, max_message_bytes: int) -> None:
        # grpcio's own cap sits above ours so that an oversized request reaches _parse and gets
        # INVALID_ARGUMENT with a reason instead of grpcio's RESOURCE_EXHAUSTED
        options = [("grpc.max_receive_message_length", max_message_bytes + SMALL_REQUEST_BYTES),
                   ("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        self.server = grpc.aio.server(options=options)
        self.server.add_generic_rpc_handlers([bind(core, metrics, max_message_bytes) for core in cores])
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [core.descriptor.full_name for core in cores]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)
        self._names = names
        self._socket: Path | None = None

    def listen_unix(self, path: str, mode: int) -> None:
        sock = Path(path)
        prepare_socket_path(sock)
        self.server.add_insecure_port(f"unix:{sock}")
        self._socket = sock
        self._mode = mode

    def listen_tcp(self, host: str, port: int) -> int:
        bound = self.server.add_insecure_port(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
        if bound == 0:
            raise ConfigError(f"cannot listen on {host}:{port}")
        return bound

    async def start(self) -> None:
        await self.server.start()
        if self._socket is not None:
            os.chmod(self._socket, self._mode)
        for name in ["", *self._names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        for name in ["", *self._names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.unlink()
