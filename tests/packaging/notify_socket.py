"""A service-manager stand-in: the unix datagram socket systemd would own as NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Received:
    at: float  # time.monotonic() when the datagram arrived
    fields: dict[str, str]


@dataclass
class NotifySocket:
    """Receives notifications on its own thread, so a blocked asyncio loop cannot hide them."""

    address: str  # value for NOTIFY_SOCKET ("/path" or "@abstract")
    sock: socket.socket
    messages: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stop: bool = False

    @classmethod
    def open(cls, path: str | None = None) -> NotifySocket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:
            name = f"centre-test-notify-{os.getpid()}-{time.monotonic_ns()}"
            sock.bind(b"\0" + name.encode())
            address = "@" + name
        else:
            sock.bind(path)
            address = path
        sock.settimeout(0.05)
        notify = cls(address, sock)
        notify._thread = threading.Thread(target=notify._receive, daemon=True)
        notify._thread.start()
        return notify

    def _receive(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            with self._lock:
                self.messages.append(Received(time.monotonic(), fields))

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def with_key(self, key: str) -> list[Received]:
        return [m for m in self.snapshot() if key in m.fields]

    def wait_for(self, key: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.with_key(key)
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(f"{count} x {key} not received; got {self.snapshot()!r}")

    def close(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()
        self.sock.close()

    async def wait_for_async(self, key: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        import asyncio

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.with_key(key)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"{count} x {key} not received; got {self.snapshot()!r}")
