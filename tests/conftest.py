"""Suite-wide checks: no test may leave a process behind or leak asyncio tasks, and every
system file a test uses comes from a Debian package the scripts install."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# A centre-agent or centre-gateway package installed on this machine (the CI packaging step installs
# both) must not leak its /etc config into the tests: every CLI a test runs, in this process or a child,
# reads the built-in defaults unless the test names a file (agent/cli/config_file.py,
# gateway/config_file.py).
os.environ["CENTRE_AGENT_CONFIG"] = ""
os.environ["CENTRE_GATEWAY_CONFIG"] = ""

from tests.support import system_files

REPO = Path(__file__).resolve().parents[1]
_uses = system_files.UseRecorder()
_uses.install()


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...
        comm_end = stat.rfind(")")
        fields = stat[comm_end + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid and fields[0] != "Z":
            found.append((int(entry.name), stat[stat.find("(") + 1:comm_end]))
    return found


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _uses.current_test = item.nodeid


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = _children(os.getpid())
    if left:
        print(f"\nFAIL: the test session left child processes running: {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _uses.active = False
    closure = system_files.allowed_packages(REPO)
    problems = system_files.judge(_uses.uses.values(), exempt_roots=system_files.exempt_roots(REPO),
                                  closure=closure)
    if problems:
        print("\nFAIL: the tests used system files that no package in scripts/apt/*.txt provides:")
        for problem in problems:
            print(f"  {problem}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    if leaked:
        for t in leaked:
            t.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test leaked asyncio tasks: {[t.get_coro() for t in leaked]}")
