"""The ``sane`` backend inside an agent process (private SANE_CONFIG_DIR with the ``test``
backend), scanned with ``centre-agent scan``; faults come back as precise states."""

from __future__ import annotations

import json
from pathlib import Path

import pikepdf
import pytest

from tests.support.agent_process import start_agent


@pytest.mark.parametrize(
    ("fault", "state", "reason"),
    [
        ("Default", "done", ""),
        ("SANE_STATUS_JAMMED", "failed", "PAPER_JAM"),
    ],
)
def test_agent_scans_the_feeder_of_a_sane_device(
    tmp_path: Path, sane_config_dir: Path, fault: str, state: str, reason: str
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        '[drivers.sane]\nrescan_interval = 0\ndevices = ["test:0"]\n'
        f'[drivers.sane.device_options."test:0"]\nread_return_value = "{fault}"\n'
        'read_delay = false\ntest_picture = "Grid"\n'
    )
    agent = start_agent(tmp_path, simulate=False, config=config, env={"SANE_CONFIG_DIR": str(sane_config_dir)})
    try:
        out = tmp_path / "out.pdf"
        result = None
        for _ in range(50):  # until the backend has enumerated and opened the device
            result = agent.cli(
                "scan", "--source", "adf", "--mode", "gray", "--resolution", "75", "--output", str(out), "--json"
            )
            if result.stdout:  # a job ran (no device yet: one error line on stderr, no JSON)
                break
        assert result is not None
        report = json.loads(result.stdout)
        assert (report["state"], report["reason"]) == (state, reason), result.stderr
        if state == "done":
            assert report["pages"] == 10
            with pikepdf.open(out) as pdf:
                assert len(pdf.pages) == 10
                (image,) = pdf.pages[0].get_images().values()
                assert (int(image.Width), int(image.Height), str(image.ColorSpace)) == (620, 876, "/DeviceGray")
        else:
            assert report["pages"] == 0
            assert report["partial_discarded"] is False
            assert result.returncode == 1
            assert not out.exists()
    finally:
        agent.stop()


def test_agent_still_stops_in_order_after_a_sane_scan(tmp_path: Path, sane_config_dir: Path) -> None:
    """SANE's test backend (like many real ones) resets SIGTERM to its default action as its reader starts,
    in a thread: without agent/stop_signals.py, the next SIGTERM (systemctl stop) kills the agent outright."""
    config = tmp_path / "agent.toml"
    config.write_text('[drivers.sane]\nrescan_interval = 0\ndevices = ["test:0"]\n')
    agent = start_agent(tmp_path, simulate=False, config=config, env={"SANE_CONFIG_DIR": str(sane_config_dir)})
    try:
        result = None
        for _ in range(50):  # until the backend has enumerated and opened the device
            result = agent.cli("scan", "--source", "flatbed", "--resolution", "75", "--output",
                               str(tmp_path / "out.pdf"), "--json")
            if result.stdout:
                break
        assert result is not None
        assert json.loads(result.stdout)["state"] == "done", result.stderr
    finally:
        agent.stop()
    assert agent.proc.returncode == 0, agent.log()[-2000:]
    assert "stopping" in agent.log()
