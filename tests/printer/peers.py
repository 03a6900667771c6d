"""Real printer peers on loopback: a private D-Bus + avahi, ippeveprinter, cupsd.

Used by the fixtures in ``conftest.py`` and by ``bench/print_ipp.py``. Every
process is started here and stopped by the PID started here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

AVAHI_RUN_DIR = Path("/run/avahi-daemon")

_DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
"""

_AVAHI_CONF = """[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
"""

# The fake print command: reads the job file (never copies it), prints the STATE: lines
# found in the control file (ippeveprinter reads them from stderr), waits, exits with the
# code in the exit file (non-zero aborts the job).
_FAKE_PRINT = """#!/bin/sh
ctl="{ctl}"
[ -f "$ctl/state" ] && cat "$ctl/state" >&2
[ -f "$ctl/delay" ] && sleep "$(cat "$ctl/delay")"
cat "$1" > /dev/null
exit "$(cat "$ctl/exit" 2>/dev/null || echo 0)"
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """Stop a process this module started, by its PID."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def _wait_for(check: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_avahi() -> int | None:
    """PID of an avahi-daemon already running on this machine (from its pid file), if any."""
    pid_file = AVAHI_RUN_DIR / "pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        comm = ""
    if _alive(pid) and comm.startswith("avahi-daemon"):
        return pid
    return None


#: Where a test run that started the shared avahi notes its D-Bus address (avahi rewrites its
#: own environment with its process title, so /proc/PID/environ cannot tell).
SHARED_NOTE = Path("/run/centre-test-avahi.bus")


def _bus_of(pid: int) -> str:
    """The D-Bus system bus a running avahi-daemon talks to."""
    try:
        noted_pid, bus = SHARED_NOTE.read_text().split(" ", 1)
        if int(noted_pid) == pid:
            return bus.strip()
    except (OSError, ValueError):
        pass
    return "unix:path=/run/dbus/system_bus_socket"  # a system avahi on the system bus


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class MdnsStack:
    """A private system D-Bus and an avahi-daemon on ``lo`` only.

    avahi keeps its pid file and socket at a fixed path (``/run/avahi-daemon``). Where the
    machine lets us (root, mount namespaces), avahi runs in its own mount namespace with a
    private ``/run/avahi-daemon``, so it never meets another test run's avahi. Otherwise an
    avahi that is already running is reused through its own bus, and a stale pid file left
    by a dead one is removed before starting ours.
    """

    workdir: Path
    bus_address: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _noted: bool = False

    def start(self) -> None:
        # CENTRE_TEST_SHARED_AVAHI=1 forces the path taken where mount namespaces are not allowed
        private = os.environ.get("CENTRE_TEST_SHARED_AVAHI") != "1" and _can_unshare()
        existing = None if private else _running_avahi()
        if existing is not None:
            self.bus_address = _bus_of(existing)
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        bus_socket = self.workdir / "system_bus.sock"
        conf = self.workdir / "dbus.conf"
        conf.write_text(_DBUS_CONF.format(socket=bus_socket))
        dbus = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(dbus)
        _wait_for(bus_socket.exists, "dbus-daemon")
        self.bus_address = f"unix:path={bus_socket}"
        avahi_conf = self.workdir / "avahi-daemon.conf"
        avahi_conf.write_text(_AVAHI_CONF)
        avahi_args = ["avahi-daemon", "-f", str(avahi_conf), "--no-drop-root", "--no-chroot",
                      "--no-rlimits"]
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address}
        log = (self.workdir / "avahi.log").open("wb")
        AVAHI_RUN_DIR.mkdir(parents=True, exist_ok=True)
        if private:
            script = f'mount -t tmpfs tmpfs {AVAHI_RUN_DIR} && exec "$@"'
            args = ["unshare", "-m", "sh", "-c", script, "sh", *avahi_args]
        else:
            with contextlib.suppress(FileNotFoundError):
                (AVAHI_RUN_DIR / "pid").unlink()  # stale: its process is gone (checked above)
            args = avahi_args
        avahi = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(avahi)
        log_path = self.workdir / "avahi.log"
        _wait_for(lambda: b"Server startup complete" in log_path.read_bytes() or avahi.poll() is not None,
                  "avahi-daemon")
        if avahi.poll() is not None:
            raise RuntimeError(f"avahi-daemon exited: {log_path.read_text()[-500:]}")
        if not private:
            SHARED_NOTE.write_text(f"{avahi.pid} {self.bus_address}")
            self._noted = True

    def stop(self) -> None:
        if self._noted:
            SHARED_NOTE.unlink(missing_ok=True)
            self._noted = False
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()


@dataclass
class IppEvePrinter:
    """``ippeveprinter`` with a fake print command, controllable per test."""

    workdir: Path
    bus_address: str
    name: str = "CentreTestPrinter"
    formats: str = "application/pdf,image/jpeg,image/pwg-raster,image/urf"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control(self) -> Path:
        return self.workdir / "control"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.control.mkdir(exist_ok=True)
        spool = self.workdir / "spool"
        spool.mkdir(exist_ok=True)
        command = self.workdir / "fake-print.sh"
        command.write_text(_FAKE_PRINT.format(ctl=self.control))
        command.chmod(0o755)
        self.port = free_port()
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address}
        log = (self.workdir / "ippeveprinter.log").open("wb")
        self.process = subprocess.Popen(
            ["ippeveprinter", "-p", str(self.port), "-n", "localhost", "-d", str(spool), "-k",
             "-c", str(command), "-f", self.formats, self.name],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_for(self._answers, "ippeveprinter")

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.workdir / "ippeveprinter.log").read_text()[-500:]
            raise RuntimeError(f"ippeveprinter exited: {log}")
        try:
            return httpx.get(f"{self.http}/", timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        stop(self.process)
        self.process = None

    # -- fault injection (ippeveprinter's web interface, TESTBED.md) -------------------------------

    def set_supplies(self, waste: int = 25, toner: int = 75) -> None:
        httpx.get(f"{self.http}/supplies", params={"supply0": waste, "supply1": toner}, timeout=5.0)

    def set_media_level(self, level: int) -> None:
        """Sheets in the main tray (0 -> media-empty). The form sets every tray at once, so the
        by-pass tray is sent as ippeveprinter starts it (envelopes, level unknown)."""
        httpx.get(f"{self.http}/media", timeout=5.0, params={
            "size1": "na_letter_8.5x11in", "type1": "stationery", "level1": level,
            "size3": "na_number-10_4.125x9.5in", "type3": "envelope", "level3": -2})

    def script_job(self, *, state: str = "", delay: float = 0.0, exit_code: int = 0) -> None:
        """What the fake print command does for the next jobs."""
        for name, text in (("state", state), ("delay", f"{delay}" if delay else ""),
                           ("exit", str(exit_code) if exit_code else "")):
            path = self.control / name
            if text:
                path.write_text(text + "\n")
            else:
                path.unlink(missing_ok=True)

    def reset(self) -> None:
        self.script_job()
        self.set_supplies()
        self.set_media_level(250)


@contextlib.contextmanager
def running(*peers: MdnsStack | IppEvePrinter) -> Iterator[None]:
    started: list[MdnsStack | IppEvePrinter] = []
    try:
        for peer in peers:
            peer.start()
            started.append(peer)
        yield
    finally:
        for peer in reversed(started):
            peer.stop()


@dataclass
class FakeEscposPrinter:
    """A socat pty pair with tests/printer/fake_escpos.py on the far end (or on a TCP port)."""

    workdir: Path
    tcp: bool = False
    port: int = 0
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def control(self) -> Path:
        return self.workdir / "control"

    @property
    def device(self) -> str:
        return str(self.workdir / "printer-side")

    def start(self) -> None:
        self.control.mkdir(parents=True, exist_ok=True)
        script = Path(__file__).with_name("fake_escpos.py")
        if self.tcp:
            self.port = free_port()
            target = ["--tcp", str(self.port)]
        else:
            far = self.workdir / "fake-side"
            socat = subprocess.Popen(
                ["socat", f"pty,raw,echo=0,link={self.device}", f"pty,raw,echo=0,link={far}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.processes.append(socat)
            _wait_for(lambda: Path(self.device).exists() and far.exists(), "socat pty pair")
            target = ["--serial", str(far)]
        fake = subprocess.Popen([sys.executable, str(script), "--control", str(self.control), *target])
        self.processes.append(fake)
        _wait_for(lambda: (self.control / "ready").exists(), "fake ESC/POS printer")

    def set_state(self, *, paper: str = "ok", cover: str = "closed", mute: bool = False) -> None:
        # atomic replacements: the fake printer reads these files at any moment
        for name, value in (("paper", paper), ("cover", cover)):
            tmp = self.control / f".{name}.tmp"
            tmp.write_text(value)
            os.replace(tmp, self.control / name)
        if mute:
            (self.control / "mute").write_text("1")
        else:
            (self.control / "mute").unlink(missing_ok=True)

    def cuts(self) -> int:
        path = self.control / "cuts"
        return int(path.read_text() or 0) if path.exists() else 0

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()


@dataclass
class CupsDaemon:
    """A hand-started ``cupsd -f`` with a private ServerRoot on 127.0.0.1, one queue via lpadmin."""

    workdir: Path
    bus_address: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        # filters run as user lp: pytest's private (0700) tmp tree is out of their reach,
        # so the ServerRoot lives in a directory of its own that lp can traverse
        root = self.workdir = Path(tempfile.mkdtemp(prefix="centre-cupsd-"))
        root.chmod(0o755)
        for sub in ("spool", "tmp", "cache", "state", "log", "ppd"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (root / "cupsd.conf").write_text(
            f"Listen 127.0.0.1:{self.port}\nLogLevel warn\nDefaultAuthType None\nBrowsing No\n"
            "WebInterface No\nServerAlias *\n<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
            "<Policy default>\n  <Limit All>\n    Order deny,allow\n    Allow all\n  </Limit>\n</Policy>\n")
        (root / "cups-files.conf").write_text(
            f"ServerRoot {root}\nRequestRoot {root}/spool\nTempDir {root}/tmp\nCacheDir {root}/cache\n"
            f"StateDir {root}/state\nErrorLog {root}/log/error_log\nAccessLog {root}/log/access_log\n"
            f"PageLog {root}/log/page_log\nPrintcap {root}/printcap\nUser lp\nGroup lp\n"
            "SystemGroup root\nFileDevice No\nSandboxing relaxed\n")
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address}
        self.process = subprocess.Popen(
            ["cupsd", "-f", "-c", str(root / "cupsd.conf"), "-s", str(root / "cups-files.conf")], env=env)
        _wait_for(self._answers, "cupsd")

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"cupsd exited: {(self.workdir / 'log' / 'error_log').read_text()[-500:]}")
        return subprocess.run(["lpstat", "-h", self.server, "-r"], capture_output=True,
                              check=False).returncode == 0

    def add_queue(self, name: str, uri: str) -> None:
        # right after start-up cupsd may still refuse admin requests for a moment
        for attempt in range(40):
            result = subprocess.run(["lpadmin", "-h", self.server, "-p", name, "-E", "-v", uri,
                                     "-m", "everywhere"], capture_output=True, text=True, check=False)
            if result.returncode == 0:
                return
            time.sleep(0.25 if attempt < 39 else 0)
        raise RuntimeError(f"lpadmin failed: {result.stderr}")

    def stop(self) -> None:
        stop(self.process)
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)
