"""A typed Python client for desktop applications, over the agent's unix socket.

    async with AgentClient.connect("/run/centre-agent/agent.sock", client_id="my-app") as agent:
        devices = await agent.devices.ListDevices(devices_pb2.ListDevicesRequest())
"""

from __future__ import annotations

import os
from types import TracebackType

import grpc

from agent.api.call import CLIENT_ID_KEY
from agent.config import DEFAULT_SOCKET
from centre.agent.v1 import (
    agent_pb2_grpc,
    barcode_pb2_grpc,
    devices_pb2_grpc,
    fingerprint_pb2_grpc,
    idcard_pb2_grpc,
    printer_pb2_grpc,
    scanner_pb2_grpc,
)

SOCKET_ENV = "CENTRE_AGENT_SOCKET"


def default_target() -> str:
    """``unix:`` target from ``$CENTRE_AGENT_SOCKET`` or the default socket path."""
    value = os.environ.get(SOCKET_ENV, DEFAULT_SOCKET)
    return value if value.startswith(("unix:", "127.", "localhost", "[::1]")) else f"unix:{value}"


class _ClientId(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, client_id: str) -> None:
        self._md = (CLIENT_ID_KEY, client_id)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._md)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                          details.wait_for_ready)

    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)


class AgentClient:
    """Stubs for every service of the local API on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.devices = devices_pb2_grpc.DeviceServiceStub(channel)
        self.agent = agent_pb2_grpc.AgentServiceStub(channel)
        self.idcard = idcard_pb2_grpc.IdCardServiceStub(channel)
        self.fingerprint = fingerprint_pb2_grpc.FingerprintServiceStub(channel)
        self.scanner = scanner_pb2_grpc.ScannerServiceStub(channel)
        self.printer = printer_pb2_grpc.PrinterServiceStub(channel)
        self.barcode = barcode_pb2_grpc.BarcodeServiceStub(channel)

    @classmethod
    def connect(cls, target: str | None = None, client_id: str = "") -> AgentClient:
        target = target or default_target()
        if not target.startswith("unix:") and "/" in target:
            target = f"unix:{target}"
        interceptors = [_ClientId(client_id)] if client_id else None
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                   ("grpc.max_send_message_length", 64 * 1024 * 1024)]
        return cls(grpc.aio.insecure_channel(target, options=options, interceptors=interceptors))

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
