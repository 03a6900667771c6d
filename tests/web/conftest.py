"""A real agent process (``python -m agent run --simulate``) with its browser listener on a free port."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTAL = "https://portal.example.gov.vn"  # never resolved: only used as an Origin header value
RATE_PORTAL = "https://rate.example.gov.vn"  # its own rate-limit bucket
STREAM_PORTAL = "https://streams.example.gov.vn"  # its own stream budget
REVOKE_PORTAL = "https://revoked.example.gov.vn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningAgent:
    process: subprocess.Popen[str]
    state_dir: Path
    socket: Path
    web: str  # host:port of the browser listener
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.web}"

    def pair(self, origin: str) -> str:
        out = subprocess.run([sys.executable, "-m", "agent", "pair", "--state-dir", str(self.state_dir),
                              "--origin", origin, "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
        token: str = json.loads(out.stdout)["token"]
        return token

    def revoke(self, origin: str) -> None:
        subprocess.run([sys.executable, "-m", "agent", "pair", "--state-dir", str(self.state_dir),
                        "--revoke", origin], cwd=ROOT, capture_output=True, text=True, check=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_agent(tmp: Path, config_text: str, extra: list[str] | None = None) -> RunningAgent:
    state = tmp / "state"
    state.mkdir(parents=True, exist_ok=True)
    sock = tmp / "agent.sock"
    config = tmp / "agent.toml"
    config.write_text(config_text)
    log = tmp / "agent.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "agent", "run", "--simulate", "--config", str(config), "--socket", str(sock),
           "--state-dir", str(state), "--metrics", "127.0.0.1:0", "--web", f"127.0.0.1:{free_port()}",
           *(extra or [])]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("centre-agent ready") or not line:
            break
    match = re.search(r"web=(\S+)", line)
    if match is None:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"agent did not start: {line!r}\n{log.read_text()}")
    return RunningAgent(proc, state, sock, match.group(1), log)


def stop_agent(agent: RunningAgent) -> None:
    if agent.process.poll() is None:
        agent.process.send_signal(signal.SIGTERM)
        try:
            agent.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.process.kill()
            agent.process.wait()
    if agent.process.stdout is not None:
        agent.process.stdout.close()


#: port of a static web server (started by the browser tests) whose origin the agent lists
LISTED_SITE_PORT = free_port()
LISTED_SITE = f"http://127.0.0.1:{LISTED_SITE_PORT}"

AGENT_CONFIG = f"""
[agent]
log_level = "debug"
log_format = "json"

[web]
allowed_origins = ["{PORTAL}", "{RATE_PORTAL}", "{STREAM_PORTAL}", "{REVOKE_PORTAL}", "{LISTED_SITE}"]
rate_per_second = 5.0
rate_burst = 20
max_request_bytes = 1048576
max_streams_per_client = 2
"""


@pytest.fixture(scope="session")
def portal_token(agent: RunningAgent) -> str:
    return agent.pair(PORTAL)


@pytest.fixture(scope="session")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    running = start_agent(tmp_path_factory.mktemp("web-agent"), AGENT_CONFIG)
    try:
        yield running
    finally:
        stop_agent(running)
