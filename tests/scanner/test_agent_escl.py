"""The ``escl`` backend inside an agent process, configured by URL, against the emulator process;
scanned with ``centre-agent scan``. Also the end-to-end privacy canary: the page content (a marker
inside every JPEG) reaches the output PDF and nowhere else: not the agent's DEBUG log, not /metrics,
not the state directory."""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.scanner.conftest import EmulatorProcess
from tests.support.agent_process import start_agent


def test_agent_scans_from_a_configured_escl_scanner_and_leaks_no_page(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    canary = f"CANARY-CITIZEN-{uuid.uuid4().hex}"
    emulator.set(page_comment=canary, sheets=3)
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nlog_level = "debug"\n\n[drivers.escl]\nzeroconf = false\nurls = ["{emulator.url}"]\n')
    agent = start_agent(tmp_path, simulate=False, config=config)
    try:
        out = tmp_path / "out" / "dossier.pdf"
        out.parent.mkdir()
        result = None
        for _ in range(50):  # until the backend has probed the scanner
            result = agent.cli("scan", "--source", "adf", "--resolution", "75", "--output", str(out), "--json")
            if result.returncode == 0:
                break
        assert result is not None
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert (report["state"], report["pages"]) == ("done", 3)
        pdf = out.read_bytes()
        assert report["sha256"] == hashlib.sha256(pdf).hexdigest()
        assert pdf.count(canary.encode()) == 3  # the pages went through, untouched

        metrics = urllib.request.urlopen(f"http://{agent.listen('metrics')}/metrics", timeout=10).read()
        devices = agent.cli("devices", "--json")
        assert devices.returncode == 0
        rows = json.loads(devices.stdout)
        assert [row["family"] for row in rows] == ["scanner"]
    finally:
        agent.stop()
    log = agent.log()
    assert " DEBUG " in log  # the log really ran at DEBUG
    assert canary not in log
    assert canary.encode() not in metrics
    assert canary not in devices.stdout
    for path in agent.state_dir.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_scanner_gone_mid_job_is_reported_with_the_partial_page_discarded(
    tmp_path: Path, emulator_factory: Callable[..., EmulatorProcess]
) -> None:
    private = emulator_factory("--no-zeroconf")
    private.set(sheets=3, vanish_after=1)
    config = tmp_path / "agent.toml"
    config.write_text(f'[drivers.escl]\nzeroconf = false\nurls = ["{private.url}"]\n')
    agent = start_agent(tmp_path, simulate=False, config=config)
    try:
        out = tmp_path / "dossier.pdf"
        result = None
        for _ in range(50):  # until the backend has probed the scanner
            result = agent.cli("scan", "--source", "adf", "--resolution", "75", "--output", str(out), "--json")
            if result.stdout:
                break
        assert result is not None
        report = json.loads(result.stdout)
        assert report["state"] == "failed"
        assert report["reason"] == "DEVICE_GONE"
        assert report["partial_discarded"] is True
        assert report["pages"] == 1
        assert not out.exists()
    finally:
        agent.stop()
