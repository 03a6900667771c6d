"""Unary call through the agent vs a bare grpcio aio echo server, same machine, same run.

Both servers run as their own processes on unix sockets; this process is the client.
Prints p50/mean latency of each and the ratio (target: agent <= 1.2x the bare server).

    .venv/bin/python bench/agent_unary.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from centre.agent.v1 import agent_pb2  # noqa: E402
from tests.support.agent_process import start_agent  # noqa: E402

ECHO_SERVER = """
import asyncio, sys, grpc
async def main(path):
    server = grpc.aio.server()
    async def echo(req, ctx):
        return req
    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers([handler])
    server.add_insecure_port("unix:" + path)
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()
asyncio.run(main(sys.argv[1]))
"""


async def measure(call: object, request: object, calls: int) -> list[float]:
    for _ in range(200):  # warm-up
        await call(request)  # type: ignore[operator]
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await call(request)  # type: ignore[operator]
        samples.append(time.perf_counter() - t0)
    return samples


async def run(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        echo_sock = f"{tmp}/echo.sock"
        echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, echo_sock], stdout=subprocess.PIPE, text=True)
        agent = start_agent(Path(tmp))
        try:
            assert echo.stdout is not None
            echo.stdout.readline()
            request = agent_pb2.GetVersionRequest()
            async with grpc.aio.insecure_channel(f"unix:{echo_sock}") as ch_echo, \
                    grpc.aio.insecure_channel(f"unix:{agent.socket}") as ch_agent:
                bare = ch_echo.unary_unary("/bench.Echo/Echo", request_serializer=agent_pb2.GetVersionRequest.
                                           SerializeToString, response_deserializer=agent_pb2.GetVersionRequest.
                                           FromString)
                via_agent = ch_agent.unary_unary("/centre.agent.v1.AgentService/GetVersion",
                                                 request_serializer=agent_pb2.GetVersionRequest.SerializeToString,
                                                 response_deserializer=agent_pb2.Version.FromString)
                bare_s: list[float] = []
                agent_s: list[float] = []
                for _ in range(rounds):  # interleave rounds so machine noise hits both alike
                    bare_s += await measure(bare, request, calls // rounds)
                    agent_s += await measure(via_agent, request, calls // rounds)
        finally:
            agent.stop()
            echo.terminate()
            echo.wait()
            if echo.stdout:
                echo.stdout.close()
    b50, a50 = statistics.median(bare_s), statistics.median(agent_s)
    bm, am = statistics.fmean(bare_s), statistics.fmean(agent_s)
    print(f"bare grpcio echo : p50 {b50 * 1e3:.3f} ms  mean {bm * 1e3:.3f} ms")
    print(f"agent GetVersion : p50 {a50 * 1e3:.3f} ms  mean {am * 1e3:.3f} ms")
    print(f"ratio p50 {a50 / b50:.2f}x  mean {am / bm:.2f}x  (target <= 1.2x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.rounds))


if __name__ == "__main__":
    main()
