"""The agent's stop signals (SIGTERM, SIGINT), kept installed although native code resets them.

Many SANE backends (the ``test`` backend among them) begin their reader task with
``sigaction(SIGTERM, SIG_DFL)``. That is meant for a forked reader process, but run in a
thread (sanei_thread on pthreads, as Debian builds it) it resets the handler of the whole
agent: the next SIGTERM (``systemctl stop``) would kill it outright, with no orderly stop,
no ``STOPPING=1`` and running jobs cut. Python cannot see this (``signal.getsignal`` still
names its handler), so code that calls such a library calls :func:`reinstall` afterwards,
which installs the handlers again from the event loop's thread (the only thread that may).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

_handlers: dict[int, Callable[[], None]] = {}
_loop: list[asyncio.AbstractEventLoop] = []


def install(loop: asyncio.AbstractEventLoop, handlers: dict[int, Callable[[], None]]) -> None:
    """Install ``handlers`` on ``loop`` (the running one, in the main thread) and remember them."""
    _handlers.clear()
    _handlers.update(handlers)
    _loop[:] = [loop]
    _apply()


def uninstall() -> None:
    """Forget the handlers (the loop is going away and removes them); :func:`reinstall` is then a no-op."""
    _handlers.clear()
    _loop.clear()


def _apply() -> None:
    if not _loop:
        return
    for sig, handler in _handlers.items():
        _loop[0].add_signal_handler(sig, handler)  # sets the process's sigaction again


def reinstall() -> None:
    """Install the stop handlers again. Safe from any thread; a no-op outside a running agent."""
    if not _loop or _loop[0].is_closed():
        return
    loop = _loop[0]
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        _apply()
    else:
        loop.call_soon_threadsafe(_apply)
