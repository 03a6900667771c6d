"""Idle agent: RSS with every simulated device loaded, and CPU time over an idle period.

    .venv/bin/python bench/agent_idle.py [--seconds 30]

Targets: RSS <= 60 MiB; CPU time while idle ~0 (no busy polling). The baseline in the same
run is an idle bare grpcio aio server with prometheus-client imported.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.agent_process import start_agent  # noqa: E402

BARE = """
import asyncio, grpc, prometheus_client
async def main():
    server = grpc.aio.server(); server.add_insecure_port("127.0.0.1:0"); await server.start()
    print("ready", flush=True); await server.wait_for_termination()
asyncio.run(main())
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bare = subprocess.Popen([sys.executable, "-c", BARE], stdout=subprocess.PIPE, text=True)
        agent = start_agent(Path(tmp))
        try:
            assert bare.stdout is not None
            bare.stdout.readline()
            time.sleep(3)  # let start-up work finish
            cpu0_a, cpu0_b = cpu_seconds(agent.proc.pid), cpu_seconds(bare.pid)
            time.sleep(args.seconds)
            cpu_a = cpu_seconds(agent.proc.pid) - cpu0_a
            cpu_b = cpu_seconds(bare.pid) - cpu0_b
            rss_a, rss_b = rss_mib(agent.proc.pid), rss_mib(bare.pid)
        finally:
            agent.stop()
            bare.terminate()
            bare.wait()
            bare.stdout.close()  # type: ignore[union-attr]
    print(f"bare grpcio+prometheus : RSS {rss_b:.1f} MiB, CPU {cpu_b:.2f} s over {args.seconds:.0f} s idle")
    print(f"agent --simulate       : RSS {rss_a:.1f} MiB, CPU {cpu_a:.2f} s over {args.seconds:.0f} s idle")
    print(f"RSS ratio {rss_a / rss_b:.2f}x (target absolute <= 60 MiB: {'ok' if rss_a <= 60 else 'OVER'}); "
          f"idle CPU {100 * cpu_a / args.seconds:.2f} % of one core")


if __name__ == "__main__":
    main()
