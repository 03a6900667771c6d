"""Start ``centre-agent run`` as its own process for end-to-end tests, and stop it by PID."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class AgentProcess:
    proc: subprocess.Popen[str]
    socket: Path
    state_dir: Path
    ready_line: str
    log_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CENTRE_AGENT_SOCKET": str(self.socket), "PYTHONPATH": str(REPO)}

    def listen(self, key: str) -> str:
        for part in self.ready_line.split():
            if part.startswith(f"{key}="):
                return part.split("=", 1)[1]
        raise KeyError(key)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, cwd=REPO)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def let_others_reach(*paths: Path) -> None:
    """Give other users search (not read) permission on ``paths`` and every folder above them, for the
    rest of the test session: a checkout made with ``mktemp -d`` (0700) would otherwise keep a service
    user away from the code and the virtualenv it runs. The modes are put back when the session ends."""
    for path in paths:
        for folder in (path, *path.parents):
            mode = folder.stat().st_mode
            if folder in _REACHED or mode & 0o001:
                continue
            _REACHED[folder] = mode
            folder.chmod((mode & 0o7777) | 0o001)


def _restore_reached() -> None:
    for folder, mode in _REACHED.items():
        with contextlib.suppress(OSError):
            folder.chmod(mode & 0o7777)
    _REACHED.clear()


_REACHED: dict[Path, int] = {}
atexit.register(_restore_reached)


def as_user(user: str) -> list[str]:
    """Command prefix that runs the rest as ``user`` (its uid, primary gid and groups), like a unit's User=.
    The checkout and the interpreter's prefix are made reachable for that user (:func:`let_others_reach`)."""
    account = pwd.getpwnam(user)
    let_others_reach(REPO, Path(sys.prefix))
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "--"]


def start_agent(tmp: Path, *extra: str, simulate: bool = True, config: Path | None = None,
                env: dict[str, str] | None = None, timeout: float = 60, user: str = "") -> AgentProcess:
    """Run the agent with its socket and state under ``tmp``; wait for its ready line.

    With ``user``, the agent runs as that account (the test runs as root); ``tmp`` must then be
    reachable and writable for it."""
    tmp.mkdir(parents=True, exist_ok=True)
    sock = tmp / "agent.sock"
    state = tmp / "state"
    log_path = tmp / "agent.log"
    cmd = [*(as_user(user) if user else []), sys.executable, "-m", "agent", "run", "--socket", str(sock),
           "--state-dir", str(state), "--metrics", "127.0.0.1:0", *extra]
    if simulate:
        cmd.append("--simulate")
    if config is not None:
        cmd += ["--config", str(config)]
    with log_path.open("w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("centre-agent ready"):
                return AgentProcess(proc, sock, state, line.strip(), log_path)
            if not line and proc.poll() is not None:
                break
        if proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    proc.stdout.close()
    raise RuntimeError(f"agent did not start: {log_path.read_text()[-3000:]}")
