"""The PC/SC test peer: a private pcscd with one vpcd reader, and vpcd card processes.

Used by ``tests/idcard/conftest.py`` and by ``bench/idcard_pcsc.py``.

One pcscd per machine: pcscd insists on ``/run/pcscd`` (its socket and pid file are
compiled in), so a second one refuses to start and stopping a shared one would pull the
rug from under whoever else uses it. Instead every test run gets a pcscd of its own in a
private mount namespace (``unshare -m``) where a directory of ours is bind-mounted over
``/run/pcscd``; the client library finds it through ``PCSCLITE_CSOCK_NAME``. This works
as root with no systemd (the CI case) whether or not a system pcscd is running, and the
restart test can stop and start *its* pcscd by the PID it started.

``PCSCLITE_CSOCK_NAME`` is read once per process by libpcsclite (on the first call), so
:func:`claim_socket_path` must run before anything in the process talks to pcscd.

Where no private mount namespace can be had (no CAP_SYS_ADMIN, e.g. an unprivileged
container), and no other pcscd is running, pcscd is started in the ordinary place instead
(still by us, stopped by its PID); ``CENTRE_TEST_PCSCD_DIRECT=1`` forces that mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.agent_process import AgentProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
FRIENDLY_NAME = "Centre Test PCD"


def claim_socket_path() -> Path:
    """Pick this process's private pcscd socket path and point libpcsclite at it."""
    base = Path(tempfile.gettempdir()) / f"centre-pcscd-{os.getpid()}"
    path = base / "run" / "pcscd.comm"
    os.environ["PCSCLITE_CSOCK_NAME"] = str(path)
    return path


def vpcd_library() -> str:
    """Path of vpcd's IFD handler, from the Debian package's file list."""
    try:
        listing = subprocess.run(["dpkg", "-L", "vsmartcard-vpcd"], check=True, capture_output=True,
                                 text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listing = []
    candidates = [line for line in listing if "libifdvpcd.so" in line]
    candidates.sort(key=lambda line: (not line.endswith(".so"), line))
    for candidate in candidates:
        if Path(candidate).exists():
            return candidate
    raise RuntimeError("vsmartcard-vpcd is not installed (scripts/apt/idcard.txt)")


def free_port_pair() -> int:
    """A port P with P and P+1 free on every address (vpcd binds 0.0.0.0 for both slots)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        try:
            for candidate in (port, port + 1):
                with socket.socket() as check:
                    check.bind(("0.0.0.0", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for vpcd")


SYSTEM_SOCKET = Path("/run/pcscd/pcscd.comm")


def _pcscd() -> str:
    return shutil.which("pcscd") or "/usr/sbin/pcscd"


def _pcscd_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class PcscdPeer:
    """A pcscd of our own (private config, private socket), controlled by its PID."""

    def __init__(self, socket_path: Path, port: int | None = None) -> None:
        self.socket_path = socket_path
        self.base = socket_path.parent.parent
        self.run_dir = socket_path.parent
        self.config_dir = self.base / "conf"
        self.log_path = self.base / "pcscd.log"  # outside the config dir: pcscd parses every file there
        self.port = port or free_port_pair()
        self.process: subprocess.Popen[bytes] | None = None
        self.reader_names = (f"{FRIENDLY_NAME} 00 00", f"{FRIENDLY_NAME} 00 01")
        # Forced with CENTRE_TEST_PCSCD_DIRECT=1 (to test the fallback); chosen on its own when
        # the machine allows no private mount namespace.
        self.direct = os.environ.get("CENTRE_TEST_PCSCD_DIRECT") == "1"
        if self.direct:
            self.socket_path = SYSTEM_SOCKET
            os.environ["PCSCLITE_CSOCK_NAME"] = str(SYSTEM_SOCKET)

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "vpcd").write_text(
            f'FRIENDLYNAME "{FRIENDLY_NAME}"\n'
            f"DEVICENAME /dev/null:{self.port}\n"
            f"LIBPATH {vpcd_library()}\n"
            f"CHANNELID {self.port}\n")

    def start(self) -> float:
        """Start pcscd; return when its socket answers. Returns the time.perf_counter() of the start.

        In a private mount namespace when the machine allows it (``unshare -m`` needs root and
        CAP_SYS_ADMIN). Otherwise, and only before this process has talked to pcscd, only if no
        other pcscd is running, pcscd is started in the ordinary place (``/run/pcscd``) and the
        client library is pointed there instead: still ours, still stopped by its PID.
        """
        if self.process is not None and self.process.poll() is None:
            return 0.0
        self._write_config()
        if not self.direct:
            try:
                return self._start_namespaced()
            except RuntimeError:
                if _pcscd_answers(SYSTEM_SOCKET) or os.environ.get("PCSCLITE_CSOCK_NAME") != str(
                        self.socket_path):
                    raise
                self.direct = True
                self.socket_path = SYSTEM_SOCKET
                os.environ["PCSCLITE_CSOCK_NAME"] = str(SYSTEM_SOCKET)
        return self._start_direct()

    def _start_namespaced(self) -> float:
        Path("/run/pcscd").mkdir(parents=True, exist_ok=True)  # the mount point
        script = (f"mount --bind {self.run_dir} /run/pcscd && "
                  f"exec {_pcscd()} --foreground --info --config {self.config_dir}")
        return self._spawn(["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script])

    def _start_direct(self) -> float:
        if _pcscd_answers(SYSTEM_SOCKET):
            raise RuntimeError("another pcscd is running and no private mount namespace is possible")
        return self._spawn([_pcscd(), "--foreground", "--info", "--config", str(self.config_dir)])

    def _spawn(self, command: list[str]) -> float:
        started = time.perf_counter()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self._wait_for_socket()
        return started

    def _wait_for_socket(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"pcscd exited with {self.process.returncode}: see {self.log_path}")
            if _pcscd_answers(self.socket_path):
                return
            time.sleep(0.01)
        raise RuntimeError(f"pcscd did not come up: see {self.log_path}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class VpcdCardProcess:
    """``python -m agent.simulator.vpcd_card`` on one vpcd slot, driven over its stdin."""

    def __init__(self, port: int, *extra: str, reader: str = "") -> None:
        self.port = port
        self.reader = reader  # the PC/SC reader name of the slot it plugs into
        self._extra = extra
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._pump_thread: threading.Thread | None = None

    def start(self, *, inserted: bool = True) -> VpcdCardProcess:
        args = [sys.executable, "-m", "agent.simulator.vpcd_card", "--port", str(self.port), *self._extra]
        if not inserted:
            args.append("--removed")
        self.process = subprocess.Popen(args, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        self.expect("ready")
        return self

    def _pump(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())
        self._lines.put("<eof>")

    def expect(self, wanted: str, timeout: float = 10.0) -> str:
        """Wait for a status line starting with ``wanted``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"vpcd card: no {wanted!r} line")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"vpcd card: no {wanted!r} line") from None
            if line.startswith(wanted):
                return line
            if line == "<eof>":
                raise RuntimeError(f"vpcd card exited while waiting for {wanted!r}")

    def send(self, command: str) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def insert(self) -> None:
        self.send("insert")

    def remove(self) -> None:
        self.send("remove")

    def drop_after(self, count: int) -> None:
        self.send(f"drop-after {count}")
        self.expect("armed")

    def stats(self) -> dict[str, int]:
        self.send("stats")
        line = self.expect("stats ")
        counts: dict[str, int] = json.loads(line[len("stats "):])
        return counts

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert process.stdin is not None
            process.stdin.write("quit\n")
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if self._pump_thread is not None:
            self._pump_thread.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def wait_for_card(reader: str, *, present: bool = True, timeout: float = 10.0) -> float:
    """Block until pcscd reports a card in ``reader`` (or none); return perf_counter() of the notice.

    A raw ``SCardGetStatusChange`` waiter: this is "pcscd's own notice" in the benchmarks.
    """
    from smartcard import scard

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != 0:
        raise RuntimeError(f"pcscd not reachable: {scard.SCardGetErrorMessage(hresult)}")
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"card {'present' if present else 'absent'} not seen in {reader!r}")
            hresult, states = scard.SCardGetStatusChange(context, int(remaining * 1000), [(reader, state)])
            noticed = time.perf_counter()
            if hresult & 0xFFFFFFFF == 0x8010000A:
                continue
            if hresult != 0:
                raise RuntimeError(f"status change failed: {scard.SCardGetErrorMessage(hresult)}")
            _name, event_state, _atr = states[0]
            if bool(event_state & scard.SCARD_STATE_PRESENT) is present:
                return noticed
            state = event_state & ~scard.SCARD_STATE_CHANGED
    finally:
        scard.SCardReleaseContext(context)


def start_pcsc_agent(tmp: Path, csca_dir: Path | None = None) -> AgentProcess:
    """``centre-agent run`` with only the ``pcsc`` backend (no ``--simulate``), state under ``tmp``.

    The agent inherits ``PCSCLITE_CSOCK_NAME`` from this process, so it talks to the pcscd of
    :class:`PcscdPeer`; start that first. Stop the agent with ``AgentProcess.stop()``.
    """
    from tests.support.agent_process import start_agent

    config = tmp / "agent.toml"
    idcard = f'[idcard]\ncsca_dir = "{csca_dir}"\n\n' if csca_dir is not None else ""
    config.write_text(f"{idcard}[drivers.pcsc]\nenabled = true\n")
    return start_agent(tmp, simulate=False, config=config)
