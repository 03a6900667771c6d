"""Runs ``centre-gateway run`` as a real process on loopback for tests and benchmarks."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AGENT_TOKEN = "agent-token-for-tests"
ADMIN_TOKEN = "admin-token-for-tests"


class GatewayProcess:
    def __init__(self, workdir: Path, *, backend: str = "sqlite", dsn: str = "", admission_rate: float = 100000.0,
                 admission_burst: float = 100000.0, flush_seconds: float = 0.2, cache_seconds: float = 0.0,
                 log_level: str = "DEBUG", workers: int = 1) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.dsn = dsn
        self.db_path = workdir / "fleet.db"
        self.log_path = workdir / "gateway.log"
        self.config_path = workdir / "gateway.toml"
        self.admission = (admission_rate, admission_burst)
        self.flush_seconds = flush_seconds
        self.cache_seconds = cache_seconds
        self.log_level = log_level
        self.workers = workers
        self.grpc_port = 0
        self.http_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _write_config(self) -> None:
        storage = (f'backend = "sqlite"\npath = "{self.db_path}"' if self.backend == "sqlite"
                   else f'backend = "postgresql"\ndsn = "{self.dsn}"')
        self.config_path.write_text(f"""
[server]
grpc_listen = "127.0.0.1:{self.grpc_port}"
http_listen = "127.0.0.1:{self.http_port}"
workers = {self.workers}
[storage]
{storage}
[auth]
agent_tokens = ["{AGENT_TOKEN}"]
admin_tokens = ["{ADMIN_TOKEN}"]
[admission]
rate = {self.admission[0]}
burst = {self.admission[1]}
[fleet]
heartbeat_flush_seconds = {self.flush_seconds}
view_cache_seconds = {self.cache_seconds}
[logging]
level = "{self.log_level}"
""")

    def start(self, timeout: float = 60.0) -> None:
        self._write_config()
        log = self.log_path.open("ab")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config_path)],
                                     stdout=subprocess.PIPE, stderr=log, cwd=REPO, env=env)
        log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        if not line.startswith(b"centre-gateway: ready"):
            self.stop()
            raise RuntimeError(f"gateway did not start: {line!r}; log: {self.log_path.read_text()[-2000:]}")
        fields = dict(part.split("=", 1) for part in line.decode().split()[2:])
        self.grpc_port = int(fields["grpc"].rpartition(":")[2])
        self.http_port = int(fields["http"].rpartition(":")[2])
        self._write_config()  # pin the bound ports: restarts and the CLI use the same ones

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def worker_pids(self) -> list[int]:
        """Extra worker processes (children of the main gateway process)."""
        assert self.proc is not None
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                    found.append(int(entry.name))
        return found

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0
