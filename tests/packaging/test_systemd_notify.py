"""sd_notify and the watchdog, against a NOTIFY_SOCKET the test owns."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.systemd_notify import ServiceNotifier, notify_service_manager
from tests.packaging.notify_socket import NotifySocket

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket.open(str(tmp_path / "notify"))
    yield sock
    sock.close()


@pytest.fixture
def abstract_manager() -> Iterator[NotifySocket]:
    sock = NotifySocket.open()
    yield sock
    sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = ServiceNotifier.from_environment({})
    assert not notifier.enabled
    assert notifier.ready("x") is False
    assert notifier.watchdog_interval is None


def test_watchdog_needs_a_notify_socket() -> None:
    notifier = ServiceNotifier.from_environment({"WATCHDOG_USEC": "1000000"})
    assert notifier.watchdog_interval is None


@pytest.mark.parametrize(("env", "interval"), [
    ({"WATCHDOG_USEC": "4000000"}, 2.0),
    ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}, 2.0),
    ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "me"}, None),
])
def test_watchdog_interval_is_half_the_period_for_this_pid(env: dict[str, str], interval: float | None) -> None:
    notifier = ServiceNotifier.from_environment({"NOTIFY_SOCKET": "@x", **env})
    assert notifier.watchdog_interval == interval


def test_relative_notify_socket_is_ignored() -> None:
    assert not ServiceNotifier.from_environment({"NOTIFY_SOCKET": "relative/path"}).enabled


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_status_stopping_reach_the_socket(kind: str, request: pytest.FixtureRequest) -> None:
    sock: NotifySocket = request.getfixturevalue("manager" if kind == "path" else "abstract_manager")
    notifier = ServiceNotifier.from_environment({"NOTIFY_SOCKET": sock.address})
    assert notifier.ready("serving socket=/run/centre-agent/agent.sock")
    assert notifier.status("3 devices")
    assert notifier.stopping("bye")
    notifier.close()
    sock.wait_for("STOPPING")
    fields = [m.fields for m in sock.snapshot()]
    assert fields == [
        {"READY": "1", "STATUS": "serving socket=/run/centre-agent/agent.sock"},
        {"STATUS": "3 devices"},
        {"STOPPING": "1", "STATUS": "bye"},
    ]


def test_a_newline_cannot_inject_another_assignment(manager: NotifySocket) -> None:
    notifier = ServiceNotifier.from_environment({"NOTIFY_SOCKET": manager.address})
    notifier.status("printer ok\nREADY=1")
    notifier.close()
    (message,) = manager.wait_for("STATUS")
    assert message.fields == {"STATUS": "printer ok READY=1"}


def test_a_vanished_manager_does_not_raise(tmp_path: Path) -> None:
    notifier = ServiceNotifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.ping() is False
    notifier.close()


async def test_watchdog_pings_while_the_loop_runs_and_stops_while_it_is_blocked(manager: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "200000"}  # 0.2 s period, ping every 0.1 s
    async with notify_service_manager("serving", environ=env) as notifier:
        assert notifier.watchdog_interval == pytest.approx(0.1)
        await manager.wait_for_async("WATCHDOG", count=3)
        # a driver calling a blocking C function on the loop: nothing else on the loop may run
        blocked_from = time.monotonic()
        time.sleep(1.0)  # blocking on purpose: the point of the test
        blocked_until = time.monotonic()
        pings_before = len(manager.with_key("WATCHDOG"))
        # pings resume once the loop is free again
        await manager.wait_for_async("WATCHDOG", count=pings_before + 2)
    # unblocked, ten pings would have been sent in that second; blocked, none is sent. Arrival times
    # are taken by the receiving thread, so one ping sent just before the block may be stamped inside it.
    during = [m for m in manager.with_key("WATCHDOG") if blocked_from < m.at < blocked_until]
    assert len(during) <= 1
    assert manager.snapshot()[0].fields == {"READY": "1", "STATUS": "serving"}
    await manager.wait_for_async("STOPPING")  # the receiving thread may still be reading the last datagrams
    assert manager.snapshot()[-1].fields == {"STOPPING": "1", "STATUS": "stopping"}


async def test_failing_health_check_withholds_pings(manager: NotifySocket) -> None:
    healthy = True
    env = {"NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "100000"}
    async with notify_service_manager("serving", healthy=lambda: healthy, environ=env):
        await manager.wait_for_async("WATCHDOG", count=2)
        healthy = False
        await asyncio.sleep(0.06)  # let a ping already due go out
        count = len(manager.with_key("WATCHDOG"))
        await asyncio.sleep(0.5)  # ten intervals
        assert len(manager.with_key("WATCHDOG")) == count
        healthy = True
        await manager.wait_for_async("WATCHDOG", count=count + 1)


async def test_watchdog_for_another_pid_sends_no_pings(manager: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "50000", "WATCHDOG_PID": str(os.getpid() + 1)}
    async with notify_service_manager("serving", environ=env) as notifier:
        assert notifier.start_watchdog() is None
        await asyncio.sleep(0.3)
    manager.wait_for("STOPPING")
    assert manager.with_key("WATCHDOG") == []


def test_agent_daemon_notifies_ready_watchdog_and_stopping(manager: NotifySocket, tmp_path: Path) -> None:
    """The real ``centre-agent run`` process, supervised by the test's socket as systemd would."""
    env = {**os.environ, "NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "400000", "PYTHONPATH": str(ROOT)}
    agent_socket = tmp_path / "agent.sock"
    log_file = (tmp_path / "agent.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--simulate", "--socket", str(agent_socket), "--metrics", "",
         "--state-dir", str(tmp_path / "state")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        (ready,) = manager.wait_for("READY", timeout=60)
        assert ready.fields["STATUS"].startswith(f"serving socket={agent_socket}")
        assert agent_socket.exists()  # READY only once the socket listens
        manager.wait_for("WATCHDOG", count=3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()
    manager.wait_for("STOPPING", timeout=10)  # datagrams sent before exit may still be unread
    assert manager.snapshot()[-1].fields.get("STOPPING") == "1"


@pytest.mark.parametrize("workers", [1, 2])
def test_gateway_notifies_from_its_main_process_only(manager: NotifySocket, tmp_path: Path, workers: int) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[server]\ngrpc_listen = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:0"\nworkers = {workers}\n'
                      f'[storage]\npath = "{tmp_path / "fleet.db"}"\n')
    env = {**os.environ, "NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "400000", "PYTHONPATH": str(ROOT)}
    log_file = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        (ready,) = manager.wait_for("READY", timeout=60)
        assert ready.fields["STATUS"].startswith("serving grpc=127.0.0.1:")
        assert ready.fields["STATUS"].endswith(f"workers={workers}")
        manager.wait_for("WATCHDOG", count=3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()
    manager.wait_for("STOPPING")
    # the workers inherit NOTIFY_SOCKET; none of them may claim readiness or stop the service
    assert len(manager.with_key("READY")) == 1
    assert len(manager.with_key("STOPPING")) == 1
