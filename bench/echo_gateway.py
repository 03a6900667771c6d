"""Baseline for bench/fleet.py: a bare grpc.aio AgentReporting server that answers every call
with a constant reply (no validation, storage or metrics). Prints its port, runs until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from grpc import aio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from centre.gateway.v1 import reporting_pb2, reporting_pb2_grpc


class Echo(reporting_pb2_grpc.AgentReportingServicer):
    async def Heartbeat(self, request: reporting_pb2.HeartbeatRequest,
                        context: object) -> reporting_pb2.HeartbeatResponse:
        return reporting_pb2.HeartbeatResponse(acked_seq=request.last_seq)

    async def ReportDevices(self, request: reporting_pb2.ReportDevicesRequest,
                            context: object) -> reporting_pb2.ReportDevicesResponse:
        return reporting_pb2.ReportDevicesResponse(acked_seq=request.updates[-1].seq, applied=len(request.updates))


async def main() -> None:
    server = aio.server()
    reporting_pb2_grpc.add_AgentReportingServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"echo-gateway: ready grpc=127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
