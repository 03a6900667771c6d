"""Talking to systemd as a ``Type=notify`` service: readiness, status, watchdog.

The notification protocol is one datagram per message on the unix socket named
by ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace), each a
newline-separated list of ``KEY=value`` assignments (``READY=1``, ``STATUS=...``,
``WATCHDOG=1``, ``STOPPING=1``). Outside systemd the variable is unset and every
call here is a no-op, so the daemons call it unconditionally.

The watchdog pings come from a task on the daemon's own asyncio loop: if the
loop is blocked (a driver calling into a C library without ``run_blocking``, a
deadlock), the task cannot run, the pings stop, and systemd restarts the service
after ``WatchdogSec=``. That is the point: a thread pinging on a timer would keep
a wedged daemon alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping

log = logging.getLogger(__name__)

#: ping this many times per watchdog period (systemd's advice is at least twice)
PINGS_PER_PERIOD = 2


def _socket_address(value: str) -> str | bytes | None:
    """Turn ``NOTIFY_SOCKET`` into a ``sendto`` address; ``None`` if unusable."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # vsock (``vsock:CID:PORT``) and relative paths are not used by the service manager for services
    return None


def _watchdog_period(environ: Mapping[str, str]) -> float | None:
    """Seconds of ``WATCHDOG_USEC`` if the watchdog is meant for this process, else ``None``.

    Mirrors ``sd_watchdog_enabled``: ``WATCHDOG_PID``, when set, must be our pid
    (a child that inherited the environment must not ping for its parent).
    """
    usec_text = environ.get("WATCHDOG_USEC", "")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC")
        return None
    if usec <= 0:
        return None
    pid_text = environ.get("WATCHDOG_PID", "")
    if pid_text:
        try:
            pid = int(pid_text)
        except ValueError:
            log.warning("ignoring malformed WATCHDOG_PID")
            return None
        if pid != os.getpid():
            return None
    return usec / 1_000_000


class ServiceNotifier:
    """Sends ``sd_notify`` messages to the service manager, if there is one.

    Construct it with :meth:`from_environment`. Sending never blocks and never
    raises: a service manager that went away must not take the daemon with it.
    """

    def __init__(self, address: str | bytes | None, watchdog_seconds: float | None) -> None:
        self._address = address
        self._sock: socket.socket | None = None
        self.watchdog_seconds = watchdog_seconds if address is not None else None
        self._watchdog_task: asyncio.Task[None] | None = None
        self._send_failed = False
        self.pings_sent = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServiceNotifier:
        env = os.environ if environ is None else environ
        address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        return cls(address, _watchdog_period(env))

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens for notifications."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half the watchdog period, or ``None`` without a watchdog."""
        if self.watchdog_seconds is None:
            return None
        return self.watchdog_seconds / PINGS_PER_PERIOD

    def notify(self, **fields: str) -> bool:
        """Send one message of ``KEY=value`` lines; True if it was handed to the socket."""
        if self._address is None:
            return False
        lines = []
        for key, value in fields.items():
            # a newline inside a value would inject another assignment
            lines.append(f"{key}={value.replace(chr(10), ' ')}")
        payload = "\n".join(lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._send_failed:
                # log the first failure only: a missing manager is a state, not a stream of events
                reason = errno.errorcode.get(exc.errno or 0, "error")
                log.warning("cannot notify the service manager (%s)", reason)
                self._send_failed = True
            return False
        if self._send_failed:
            log.info("service manager notifications work again")
            self._send_failed = False
        return True

    def ready(self, status: str = "") -> bool:
        """The service is up: systemd finishes ``start`` and starts dependent units."""
        fields = {"READY": "1"}
        if status:
            fields["STATUS"] = status
        return self.notify(**fields)

    def status(self, text: str) -> bool:
        """One line shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def stopping(self, status: str = "") -> bool:
        fields = {"STOPPING": "1"}
        if status:
            fields["STATUS"] = status
        return self.notify(**fields)

    def ping(self) -> bool:
        return self.notify(WATCHDOG="1")

    def start_watchdog(self, healthy: Callable[[], bool] | None = None) -> asyncio.Task[None] | None:
        """Start pinging on the running loop; ``None`` when systemd asked for no watchdog.

        ``healthy`` is asked before each ping; while it answers False no ping is
        sent, so a daemon that knows it is broken gets restarted too.
        """
        interval = self.watchdog_interval
        if interval is None:
            return None
        if self._watchdog_task is None or self._watchdog_task.done():
            self._watchdog_task = asyncio.get_running_loop().create_task(
                self._watchdog_loop(interval, healthy), name="systemd-watchdog")
        return self._watchdog_task

    async def _watchdog_loop(self, interval: float, healthy: Callable[[], bool] | None) -> None:
        assert self.watchdog_seconds is not None
        period = self.watchdog_seconds
        unhealthy_logged = False
        late_logged = False
        due = time.monotonic()
        while True:
            lateness = time.monotonic() - due
            if lateness > period / 2 and not late_logged:
                # the loop was blocked for a large part of the period: say so once
                log.warning("event loop was blocked for %.1f s (watchdog period %.1f s)", lateness, period)
                late_logged = True
            elif lateness <= period / 2:
                late_logged = False
            ok = True
            if healthy is not None:
                try:
                    ok = bool(healthy())
                except Exception:
                    log.exception("watchdog health check failed")
                    ok = False
            if ok:
                if self.ping():
                    self.pings_sent += 1
                if unhealthy_logged:
                    log.info("health check passes again; watchdog pings resumed")
                    unhealthy_logged = False
            elif not unhealthy_logged:
                log.warning("health check failing; withholding watchdog pings")
                unhealthy_logged = True
            due = time.monotonic() + interval
            await asyncio.sleep(interval)

    async def stop_watchdog(self) -> None:
        task, self._watchdog_task = self._watchdog_task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@contextlib.asynccontextmanager
async def notify_service_manager(status: str, healthy: Callable[[], bool] | None = None,
                                 environ: Mapping[str, str] | None = None) -> AsyncIterator[ServiceNotifier]:
    """Around a daemon's serving phase: READY + watchdog on entry, STOPPING on exit.

    Enter it once everything listens, so systemd starts dependants only when
    the service can take requests::

        async with notify_service_manager("serving on /run/centre-agent/agent.sock"):
            await stop.wait()
    """
    notifier = ServiceNotifier.from_environment(environ)
    notifier.ready(status)
    notifier.start_watchdog(healthy)
    try:
        yield notifier
    finally:
        notifier.stopping("stopping")
        await notifier.stop_watchdog()
        notifier.close()
