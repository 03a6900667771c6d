"""Test peers for scanners: a private SANE config with the ``test`` backend, the eSCL emulator
as its own process, and a private sane-airscan config pointing at it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.context import RecordingContext

REPO = Path(__file__).resolve().parents[2]
SYSTEM_TEST_CONF = Path("/etc/sane.d/test.conf")


def write_sane_config(directory: Path) -> Path:
    """dll.conf with only ``test`` (fast enumeration), test.conf allowing A4 (geometry_max 300)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dll.conf").write_text("test\n")
    if SYSTEM_TEST_CONF.exists():
        lines = SYSTEM_TEST_CONF.read_text().splitlines()
        lines = ["geometry_max 300.0" if line.startswith("geometry_max") else line for line in lines]
    else:  # pragma: no cover - Debian ships it with libsane1
        lines = ["number_of_devices 2", "geometry_max 300.0"]
    (directory / "test.conf").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="session")
def sane_config_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The process-wide SANE_CONFIG_DIR: libsane reads it once, at sane_init()."""
    directory = write_sane_config(tmp_path_factory.mktemp("sane"))
    previous = os.environ.get("SANE_CONFIG_DIR")
    os.environ["SANE_CONFIG_DIR"] = str(directory)
    yield directory
    if previous is None:
        os.environ.pop("SANE_CONFIG_DIR", None)
    else:
        os.environ["SANE_CONFIG_DIR"] = previous


@dataclass
class EmulatorProcess:
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/eSCL"

    def set(self, **faults: object) -> None:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/emulator/faults",
            data={k: "" if v is None else str(v) for k, v in faults.items()},
        )
        assert response.status_code == 204

    def reset(self, sheets: int = 10) -> None:
        self.set(
            sheets=sheets,
            jam_after=None,
            cover_open=0,
            busy=0,
            busy_pages=0,
            vanish_after=None,
            page_delay=0,
            page_comment="",
            location_host="",
            empty_platen=0,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_emulator(*args: str) -> EmulatorProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.simulator.escl_scanner", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("READY "):
        process.kill()
        process.wait()
        raise RuntimeError(f"eSCL emulator did not start: {line!r}")
    return EmulatorProcess(process, int(line.split()[1]))


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[EmulatorProcess]:
    emulator = start_emulator("--no-zeroconf")
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(shared_emulator: EmulatorProcess) -> EmulatorProcess:
    """The shared emulator process, reset to a loaded feeder and no faults."""
    assert shared_emulator.process.poll() is None
    shared_emulator.reset()
    return shared_emulator


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., EmulatorProcess]]:
    """Private emulator processes (for tests that make the device vanish or announce it)."""
    started: list[EmulatorProcess] = []

    def factory(*args: str) -> EmulatorProcess:
        emulator = start_emulator(*args)
        started.append(emulator)
        return emulator

    yield factory
    for emulator in started:
        emulator.stop()


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[RecordingContext]:
    context = RecordingContext(tmp_path)
    yield context
    await context.aclose()


@pytest.fixture
def airscan_env(tmp_path: Path, emulator: EmulatorProcess) -> dict[str, str]:
    """SANE_CONFIG_DIR for scanimage with only sane-airscan, the emulator configured, discovery off."""
    if shutil.which("scanimage") is None:
        raise RuntimeError("scanimage (Debian sane-utils) is required")
    directory = tmp_path / "airscan"
    directory.mkdir()
    (directory / "dll.conf").write_text("airscan\n")
    (directory / "airscan.conf").write_text(
        f'[devices]\n"Emu" = {emulator.url}, eSCL\n\n[options]\ndiscovery = disable\n'
    )
    return {**os.environ, "SANE_CONFIG_DIR": str(directory)}
