"""Agent-fleet simulator against one gateway process (SQLite, then PostgreSQL).

Simulated agents are multiplexed over a few gRPC channels in this process. Time is
compressed: a fleet of N agents sends N/60 heartbeats per second (one per agent per
60 s) plus diffs from 10 % of the agents per minute, the same per-second rate the
real fleet would produce. Each fleet size runs for a few seconds; the figures
are errors, p50/p99 latency and the gateway's RSS, and the largest fleet held with
p99 <= 100 ms (ratio p99 / 100 ms printed as the verdict).

    .venv/bin/python bench/fleet.py [--levels 50000,100000,...] [--seconds 5]
                                         [--gateways sqlite:1,postgresql:1,postgresql:2]

``BACKEND:WORKERS``: workers are gateway processes sharing the port, one per core.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from centre.gateway.v1 import reporting_pb2, reporting_pb2_grpc
from tests.gateway.gateway_process import AGENT_TOKEN, GatewayProcess
from tests.gateway.postgres_server import PostgresServer

MD = (("authorization", f"Bearer {AGENT_TOKEN}"),)
TARGET_P99 = 0.100
CHANNELS = 4


def _agent(i: int) -> reporting_pb2.AgentIdentity:
    return reporting_pb2.AgentIdentity(agent_id=f"sim-{i:06d}", province=f"P{i % 63:02d}", centre=f"C{i % 3300:04d}")


def _status(i: int, state: reporting_pb2.DeviceState.ValueType) -> reporting_pb2.DeviceStatus:
    return reporting_pb2.DeviceStatus(
        device_id=f"printer-{i % 4}", kind="printer", backend="ipp", name="Printer", model="M404", state=state,
        supplies=[reporting_pb2.Supply(name="Black Toner", kind="toner", level_percent=i % 100)],
        counters={"pages_printed": i})


class Fleet:
    def __init__(self, target: str) -> None:
        self.channels = [aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                         for _ in range(CHANNELS)]
        self.stubs = [reporting_pb2_grpc.AgentReportingStub(c) for c in self.channels]
        self.seq: dict[int, int] = {}
        self.rng = random.Random(1)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def _call(self, i: int, kind: str, latencies: list[float], errors: list[str]) -> None:
        stub = self.stubs[i % CHANNELS]
        started = time.perf_counter()
        try:
            if kind == "hb":
                await stub.Heartbeat(reporting_pb2.HeartbeatRequest(
                    agent=_agent(i), interval_seconds=60, epoch=1, last_seq=self.seq.get(i, 0),
                    health=reporting_pb2.AgentHealth(version="0.1.0", uptime_seconds=100, host=f"h{i}")),
                    metadata=MD, timeout=10)
            else:
                seq = self.seq.get(i, 0) + 1
                self.seq[i] = seq
                state = reporting_pb2.DEVICE_STATE_ERROR if seq % 2 else reporting_pb2.DEVICE_STATE_READY
                update = reporting_pb2.DeviceUpdate(seq=seq, observed_at_ms=int(time.time() * 1000),
                                                    status=_status(i, state))
                await stub.ReportDevices(reporting_pb2.ReportDevicesRequest(agent=_agent(i), epoch=1,
                                                                            updates=[update]),
                                         metadata=MD, timeout=10)
            latencies.append(time.perf_counter() - started)
        except grpc.RpcError as exc:
            errors.append(exc.code().name)

    async def run_level(self, agents: int, seconds: float) -> tuple[int, int, list[float], list[str]]:
        """Open loop: calls start on schedule whether or not earlier ones finished."""
        rate = agents / 60.0 * 1.1  # heartbeats + 10 % of agents sending one diff per minute
        interval = 1.0 / rate
        latencies: list[float] = []
        errors: list[str] = []
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        n = 0
        while True:
            due = start + n * interval
            now = time.perf_counter()
            if due - start >= seconds:
                break
            if due > now:
                await asyncio.sleep(due - now)
            i = self.rng.randrange(agents)
            kind = "diff" if self.rng.random() < 0.1 / 1.1 else "hb"
            task = asyncio.create_task(self._call(i, kind, latencies, errors))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.gather(*tasks)
        return n, int(rate), latencies, errors


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pids: Callable[[], list[int]]) -> float:
    total = 0.0
    for pid in pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children_of(pid: int) -> list[int]:
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@dataclass
class Result:
    held: int = 0  # largest fleet with p99 <= 100 ms and no errors on this (shared) machine
    cpu_ms_per_call: float = float("nan")  # gateway process CPU per call (median over levels)
    db_cpu_ms_per_call: float = 0.0  # database server CPU per call (PostgreSQL only)

    def capacity(self) -> int:
        """Fleet one dedicated core would carry at 70 % utilisation, from CPU per call."""
        per_call = self.cpu_ms_per_call / 1000
        return int(0.7 / per_call * 60 / 1.1) if per_call > 0 else 0


async def _ladder(label: str, target: str, levels: list[int], seconds: float, rss: Callable[[], int],
                  server_pids: Callable[[], list[int]], db_pids: Callable[[], list[int]] | None = None) -> Result:
    """Run the fleet sizes in order until one misses the target."""
    fleet = Fleet(target)
    result = Result()
    cpu_per_call: list[float] = []
    db_per_call: list[float] = []
    try:
        await fleet.run_level(levels[0], 2.0)  # warm-up: connections, the first agents' state
        print(f"\n[{label}] idle RSS {rss() / 1024:.1f} MiB")
        print(f"{'agents':>8} {'req/s':>6} {'calls':>6} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'p99/100ms':>9} {'RSS MiB':>8} {'cpu ms/call':>11}")
        for agents in levels:
            # a shared machine stalls now and then: a level that misses gets one more try
            for attempt in (1, 2):
                cpu0 = _cpu_seconds(server_pids)
                db0 = _cpu_seconds(db_pids) if db_pids else 0.0
                calls, rate, latencies, errors = await fleet.run_level(agents, seconds)
                cpu_per_call.append((_cpu_seconds(server_pids) - cpu0) / calls * 1000)
                if db_pids:
                    db_per_call.append((_cpu_seconds(db_pids) - db0) / calls * 1000)
                p50, p99 = _pct(latencies, 0.50), _pct(latencies, 0.99)
                db_note = f"  (+{db_per_call[-1]:.3f} db)" if db_pids else ""
                print(f"{agents:>8} {rate:>6} {calls:>6} {len(errors):>6} {p50 * 1000:>7.2f} {p99 * 1000:>7.2f} "
                      f"{p99 / TARGET_P99:>9.2f} {rss() / 1024:>8.1f} {cpu_per_call[-1]:>11.3f}{db_note}"
                      f"{'  (retry)' if attempt == 2 else ''}", flush=True)
                if errors:
                    print(f"         error codes: {sorted(set(errors))}")
                passed = not errors and p99 <= TARGET_P99
                if passed or errors:
                    break
            if not passed:
                break
            result.held = agents
    finally:
        await fleet.close()
    result.cpu_ms_per_call = statistics.median(cpu_per_call)
    result.db_cpu_ms_per_call = statistics.median(db_per_call) if db_per_call else 0.0
    print(f"[{label}] largest fleet held here with p99 <= 100 ms and 0 errors: {result.held} agents; "
          f"{result.cpu_ms_per_call:.3f} ms CPU per call")
    return result


def _rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def bench_baseline(levels: list[int], seconds: float) -> Result:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("echo_gateway.py"))],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        target = line.split("grpc=", 1)[1].strip()
        return await _ladder("bare grpc.aio echo (baseline)", target, levels, seconds, lambda: _rss_of(proc.pid),
                             lambda: [proc.pid])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


async def bench_backend(backend: str, workers: int, levels: list[int], seconds: float, workdir: Path) -> Result:
    pg: PostgresServer | None = None
    dsn = ""
    if backend == "postgresql":
        pg = PostgresServer()
        pg.start()
        dsn = pg.reset_database("fleet_bench")
    gw = GatewayProcess(workdir / f"{backend}-{workers}", backend=backend, dsn=dsn, flush_seconds=30.0,
                        cache_seconds=2.0, log_level="WARNING", workers=workers)
    gw.start()
    try:
        assert gw.proc is not None
        pids = [gw.proc.pid, *gw.worker_pids()]
        db = (lambda: _children_of(pg.pid)) if pg is not None else None
        return await _ladder(f"gateway, {backend}, {workers} worker(s)", gw.target, levels, seconds,
                             lambda: sum(_rss_of(p) for p in pids), lambda: pids, db)
    finally:
        gw.stop()
        if pg is not None:
            pg.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="10000,25000,50000,75000,100000,150000,200000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--gateways", default="sqlite:1,postgresql:1,postgresql:2")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    gc.collect()
    gc.freeze()  # the simulator's own collector pauses would otherwise count as gateway latency
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="centre-fleet-bench-") as tmp:
        results["baseline"] = asyncio.run(bench_baseline(levels, args.seconds))
        for spec in args.gateways.split(","):
            backend, _, workers = spec.partition(":")
            results[spec] = asyncio.run(bench_backend(backend, int(workers or 1), levels, args.seconds, Path(tmp)))
    base = results["baseline"]
    load = os.getloadavg()[0]
    print(f"\nsummary (load average {load:.1f} on {os.cpu_count()} cores; latency figures are only as quiet "
          f"as the machine):")
    print(f"  {'server':<14} {'held here':>9} {'held/base':>9} {'cpu ms/call':>11} {'cpu/base':>8} "
          f"{'db ms/call':>10} {'1-core capacity':>15}")
    for label, r in results.items():
        held_ratio = r.held / base.held if base.held else float("nan")
        print(f"  {label:<14} {r.held:>9} {held_ratio:>9.2f} {r.cpu_ms_per_call:>11.3f} "
              f"{r.cpu_ms_per_call / base.cpu_ms_per_call:>8.2f} {r.db_cpu_ms_per_call:>10.3f} "
              f"{r.capacity():>9} agents")
    print("  (cpu ms/call sums all gateway workers; 1-core capacity: agents one dedicated core carries at\n"
          "   70 % CPU, from the measured CPU per call;\n"
          "   the target is 50,000 agents at p99 <= 100 ms on 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
