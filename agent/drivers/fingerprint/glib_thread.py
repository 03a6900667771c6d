"""A GLib main loop on a thread of its own, bridged to asyncio with futures.

Why not ``gi.events.GLibEventLoopPolicy`` (PyGObject 3.50)? The policy replaces the
event loop of the whole process: grpc.aio, uvicorn, zeroconf and every other driver
would then run on GLib's loop, which PyGObject still marks experimental and which
pytest-asyncio and uvicorn do not expect. libfprint needs only a GLib main context
to dispatch its callbacks, so the fingerprint backends run GLib on one dedicated
thread: every libfprint call starts there, and results come back to asyncio through
:meth:`asyncio.AbstractEventLoop.call_soon_threadsafe`. The asyncio loop never
blocks on GLib and GLib never touches asyncio objects directly.

The thread iterates GLib's *global default* context, not a private one:
``fp_context_enumerate()`` spins ``g_main_context_iteration(NULL)`` until device
probing finishes, so probing sources must live on the default context. A
process has one default context, hence one shared thread (:meth:`GLibThread.acquire`),
reference-counted by the backends that use it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from gi.repository import GLib

from agent.errors import DeviceUnavailableError

T = TypeVar("T")


class GLibThread:
    """The thread that iterates GLib's default main context."""

    _shared: ClassVar[GLibThread | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._context: Any = GLib.MainContext.default()
        self._loop: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._users = 0

    @classmethod
    def acquire(cls) -> GLibThread:
        """Start (or join) the process's GLib thread. Blocks for a few milliseconds at most."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = GLibThread()
            shared = cls._shared
            shared._users += 1
            if not shared.running:
                shared._start()
            return shared

    def release(self) -> None:
        """Drop one user; the last one stops the thread. Idempotent per acquire."""
        with self._shared_lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                self._stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        self._ready.clear()
        self._thread = threading.Thread(target=self._main, name="glib-main", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        loop = GLib.MainLoop.new(self._context, False)
        self._loop = loop

        def ready(*_a: Any) -> bool:
            self._ready.set()
            return False

        self._context.invoke_full(GLib.PRIORITY_HIGH, ready, None)
        loop.run()
        # let pending callbacks (close completions) run once before leaving
        while self._context.pending():
            self._context.iteration(False)

    def _stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return

        def quit_loop(*_a: Any) -> bool:
            loop.quit()
            return False

        self._context.invoke_full(GLib.PRIORITY_LOW, quit_loop, None)
        thread.join(timeout=5)
        self._thread = None
        self._loop = None

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the GLib thread, fire and forget."""
        if not self.running:
            raise DeviceUnavailableError("the GLib thread for libfprint is not running")

        def once(*_args: Any) -> bool:
            fn()
            return False  # GLib.SOURCE_REMOVE

        self._context.invoke_full(GLib.PRIORITY_DEFAULT, once, None)

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the GLib thread and return a future for its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the awaiting coroutine
                future.set_exception(exc)

        self.call_soon(run)
        return future

    async def run(self, fn: Callable[[], T]) -> T:
        """Await ``fn`` run on the GLib thread."""
        return await asyncio.wrap_future(self.submit(fn))
