"""The doctor's prompts: on a terminal the scanner prompt waits for Enter; elsewhere it goes on."""

from __future__ import annotations

import asyncio
import io
import os
import pty

from agent.doctor.prompts import Installer


async def test_on_a_terminal_confirm_waits_for_enter() -> None:
    controller, terminal = pty.openpty()
    try:
        said = io.StringIO()
        installer = Installer(said, keyboard=terminal)
        assert installer.terminal
        waiting = asyncio.ensure_future(installer.confirm("put a sheet on the glass", 600))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # nothing typed yet
        os.write(controller, b"\n")
        assert await waiting is True
        assert said.getvalue() == ">>> put a sheet on the glass, then press Enter (going on by itself in 600 s)\n"
    finally:
        os.close(controller)
        os.close(terminal)


async def test_on_a_terminal_confirm_goes_on_by_itself_after_the_wait() -> None:
    controller, terminal = pty.openpty()
    try:
        assert await Installer(io.StringIO(), keyboard=terminal).confirm("put a sheet in the feeder", 0.1) is False
    finally:
        os.close(controller)
        os.close(terminal)


async def test_without_a_terminal_confirm_only_says_it() -> None:
    reader, writer = os.pipe()
    try:
        said = io.StringIO()
        installer = Installer(said, keyboard=reader)
        assert not installer.terminal
        assert await installer.confirm("put a sheet on the glass", 600) is False
        installer.ask("scan any barcode", 30)
        assert said.getvalue().splitlines() == [">>> put a sheet on the glass",
                                                ">>> scan any barcode (waiting up to 30 s)"]
    finally:
        os.close(reader)
        os.close(writer)
