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

from agent.drivers.registry import BACKENDS  # noqa: E402
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
        # core + API only; every driver backend (no hardware attached); simulated devices with their
        # protocol emulators running inside the agent process
        every = Path(tmp) / "every.toml"
        # vendor-sdk needs a vendor's library path: there is none to load here
        every.write_text("".join(f"[drivers.{name}]\n" for name in BACKENDS
                                 if not name.startswith("sim-") and name != "vendor-sdk"))
        agents = {}
        try:
            agents["core + API, no backends"] = start_agent(Path(tmp) / "core", simulate=False)
            agents["every driver backend    "] = start_agent(Path(tmp) / "every", simulate=False, config=every)
            agents["--simulate (+emulators) "] = start_agent(Path(tmp) / "sim")
            assert bare.stdout is not None
            bare.stdout.readline()
            time.sleep(5)  # let start-up work finish
            pids = {"bare grpcio+prometheus ": bare.pid, **{k: a.proc.pid for k, a in agents.items()}}
            cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
            time.sleep(args.seconds)
            cpu = {k: cpu_seconds(pid) - cpu0[k] for k, pid in pids.items()}
            rss = {k: rss_mib(pid) for k, pid in pids.items()}
        finally:
            for agent in agents.values():
                agent.stop()
            bare.terminate()
            bare.wait()
            bare.stdout.close()  # type: ignore[union-attr]
    base = rss["bare grpcio+prometheus "]
    for key in pids:
        print(f"{key}: RSS {rss[key]:5.1f} MiB ({rss[key] / base:.2f}x bare), "
              f"CPU {cpu[key]:.2f} s over {args.seconds:.0f} s idle ({100 * cpu[key] / args.seconds:.2f} % of a core)")
    print("target: <= 60 MiB with every driver loaded; idle CPU ~0")


if __name__ == "__main__":
    main()
