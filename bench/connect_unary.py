"""Browser-listener overhead, measured against baselines in the same run.

1. Connect unary: ``AgentService.GetVersion`` through the agent's full browser listener (Host,
   Origin and token checks, rate limit, audit line, metrics, the generic binding to the service
   core) vs a bare connectrpc ASGI app answering the same RPC with a constant, on the same
   uvicorn server setup in the same process. Same client (httpx, keep-alive, Connect JSON),
   interleaved rounds; the ratio of medians is printed (target <= 1.2x).
2. Event latency: simulated card insert -> the CARD_INSERTED event read off the Connect
   ``DeviceService.WatchEvents`` stream by an HTTP client, vs the same event read off the native
   gRPC stream over the unix socket, in the same run.

Run: .venv/bin/python bench/connect_unary.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.api.connect_server import AgentConnectApp, endpoints_for
from agent.api.pairing import PairingStore
from agent.client import AgentClient
from agent.config import AgentConfig, AgentSection, MetricsSection, WebSection
from agent.daemon import start_agent
from agent.domain.device import DeviceFamily
from agent.logs import setup_logging
from agent.metrics import AgentMetrics
from centre.agent.v1 import agent_pb2, devices_pb2

ORIGIN = "https://portal.example.gov.vn"
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]  # as browsers do
ROUNDS = 9
CALLS = 300
EVENTS = 30


class EchoCore:
    """The bare baseline: GetVersion answering a constant, no checks, no audit."""

    descriptor = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
    _reply = agent_pb2.Version(agent_version="0.1.0", api_version="centre.agent.v1", python_version="3")

    async def GetVersion(self, request: Any, call: Any) -> agent_pb2.Version:
        return self._reply


async def serve(app: Any) -> tuple[uvicorn.Server, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as the agent's listener
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, server_header=False,
                            date_header=False)
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    return server, int(sock.getsockname()[1])


def time_calls(client: httpx.Client, url: str, headers: dict[str, str]) -> float:
    """Seconds per call, sequential calls on one keep-alive connection (run in a thread: the servers
    keep the event loop to themselves)."""
    started = time.perf_counter()
    for _ in range(CALLS):
        r = client.post(url, content=b"{}", headers=headers)
        if r.status_code != 200:
            raise SystemExit(f"call failed: {r.status_code} {r.text}")
    return (time.perf_counter() - started) / CALLS


def nodelay() -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(socket_options=NODELAY)


def envelopes(buffer: bytearray) -> list[bytes]:
    out = []
    while len(buffer) >= 5:
        _, length = struct.unpack(">BI", buffer[:5])
        if len(buffer) < 5 + length:
            break
        out.append(bytes(buffer[5:5 + length]))
        del buffer[:5 + length]
    return out


async def main() -> None:
    # the agent's real logging (JSON, redaction filter, one audit line per call) into /dev/null
    setup_logging("info", "json")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    tmp = Path(tempfile.mkdtemp(prefix="bench-connect-"))
    config = AgentConfig(
        agent=AgentSection(socket=str(tmp / "agent.sock"), state_dir=str(tmp / "state")),
        metrics=MetricsSection(listen=""),
        web=WebSection(listen="127.0.0.1:0", allowed_origins=[ORIGIN], rate_per_second=1e6, rate_burst=1_000_000))
    agent = await start_agent(config, simulate=True)
    token = PairingStore(config.agent.state_dir).issue(ORIGIN)
    agent_url = f"http://{agent.listen['web']}/centre.agent.v1.AgentService/GetVersion"
    bare_server, bare_port = await serve(AgentConnectApp(endpoints_for([EchoCore()], AgentMetrics()), 1 << 20))
    bare_url = f"http://127.0.0.1:{bare_port}/centre.agent.v1.AgentService/GetVersion"
    headers = {"Content-Type": "application/json", "Origin": ORIGIN, "Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(timeout=30, transport=httpx.HTTPTransport(socket_options=NODELAY)) as client:
            for url in (agent_url, bare_url):  # warm up
                await asyncio.to_thread(time_calls, client, url, headers)
            agent_times, bare_times = [], []
            for _ in range(ROUNDS):
                agent_times.append(await asyncio.to_thread(time_calls, client, agent_url, headers))
                bare_times.append(await asyncio.to_thread(time_calls, client, bare_url, headers))
        a, b = statistics.median(agent_times), statistics.median(bare_times)
        ratio = statistics.median(x / y for x, y in zip(agent_times, bare_times, strict=True))
        print(f"connect unary GetVersion: agent {a * 1e6:.0f} us/call, bare connectrpc {b * 1e6:.0f} us/call, "
              f"ratio {ratio:.2f}x (median of {ROUNDS} interleaved rounds; target <= 1.2x)")
        await event_latency(agent, headers)
    finally:
        await bare_server.shutdown()
        await agent.stop()


async def event_latency(agent: Any, headers: dict[str, str]) -> None:
    rt = agent.runtime
    info = rt.registry.list([DeviceFamily.IDCARD])[0]
    reader: Any = rt.registry.device(info.id, DeviceFamily.IDCARD)
    url = f"http://{agent.listen['web']}/centre.agent.v1.DeviceService/WatchEvents"
    body = json.dumps({"deviceIds": [info.id]}).encode()
    connect_lat: list[float] = []
    native_lat: list[float] = []
    async with httpx.AsyncClient(timeout=30, transport=nodelay()) as client, \
            AgentClient.connect(agent.listen["socket"], client_id="bench") as native:
        req = client.build_request("POST", url, content=struct.pack(">BI", 0, len(body)) + body,
                                   headers={**headers, "Content-Type": "application/connect+json"})
        resp = await client.send(req, stream=True)
        native_stream = native.devices.WatchEvents(devices_pb2.WatchEventsRequest(device_ids=[info.id]))
        chunks = resp.aiter_raw()
        buffer = bytearray()

        async def next_connect_insert() -> float:
            while True:
                for raw in envelopes(buffer):
                    if b"CARD_INSERTED" in raw:
                        return time.perf_counter()
                buffer.extend(await chunks.__anext__())

        async def next_native_insert() -> float:
            async for ev in native_stream:
                if ev.kind == devices_pb2.EVENT_KIND_CARD_INSERTED:
                    return time.perf_counter()
            raise SystemExit("native event stream ended")

        await asyncio.sleep(0.3)  # both streams subscribed
        from agent.simulator.emrtd import EmulatedEmrtd

        for _ in range(EVENTS):
            reader.remove_card()
            card = EmulatedEmrtd(reader._backend.card_issue())  # made before the clock starts
            await asyncio.sleep(0.02)
            t_connect = asyncio.ensure_future(next_connect_insert())
            t_native = asyncio.ensure_future(next_native_insert())
            started = time.perf_counter()
            reader.insert_card(card)
            connect_at, native_at = await asyncio.gather(t_connect, t_native)
            connect_lat.append(connect_at - started)
            native_lat.append(native_at - started)
        native_stream.cancel()
        await resp.aclose()
    c, n = statistics.median(connect_lat), statistics.median(native_lat)
    print(f"card insert -> event: Connect stream p50 {c * 1e3:.2f} ms (max {max(connect_lat) * 1e3:.2f} ms), "
          f"native gRPC p50 {n * 1e3:.2f} ms (max {max(native_lat) * 1e3:.2f} ms), ratio {c / n:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
