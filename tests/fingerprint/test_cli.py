"""``centre-agent fingerprint|barcode`` end to end against ``centre-agent run --simulate``:
the CLI process, the gRPC API, the agent process, libfprint's virtual_image and the decoder."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from centre.agent.v1 import fingerprint_pb2 as fpb
from tests.support.agent_process import REPO, AgentProcess, start_agent

CCCD = "001099012345|123456789|Nguyễn Văn Canary|01021990|Nam|Số 1 Hà Nội|15082021"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, prints_dir: Path) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("fp-cli")
    config = tmp / "agent.toml"
    config.write_text(
        "[drivers.sim-barcode]\n"
        f"demo_scans = [\"8934567890123\", \"{CCCD}\"]\n"
        "demo_interval = 0.3\n"
        "[drivers.sim-fingerprint]\n"
        f"prints_dir = \"{prints_dir}\"\n", encoding="utf-8")
    proc = start_agent(tmp, config=config)
    try:
        yield proc
    finally:
        proc.stop()


def test_enroll_then_verify_through_the_cli(agent: AgentProcess, tmp_path: Path) -> None:
    template_file = tmp_path / "whorl.template"
    enrolled = agent.cli("fingerprint", "enroll", "--template", str(template_file), "--json")
    assert enrolled.returncode == 0, enrolled.stderr
    out = json.loads(enrolled.stdout)
    assert (out["enrolled"], out["stages"], out["format"]) == (True, 5, "libfprint")
    template = fpb.FingerprintTemplate.FromString(template_file.read_bytes())
    assert len(template.data) > 1000

    verified = agent.cli("fingerprint", "verify", "--template", str(template_file), "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["matched"] is True

    garbage = tmp_path / "garbage.template"
    garbage.write_bytes(fpb.FingerprintTemplate(format=template.format, data=b"CANARY-garbage").SerializeToString())
    refused = agent.cli("fingerprint", "verify", "--template", str(garbage), "--json")
    assert refused.returncode != 0
    assert "CANARY" not in refused.stderr

    log = agent.log()
    assert template.data[100:140].hex() not in log
    assert "CANARY" not in log


def test_capture_writes_a_png(agent: AgentProcess, tmp_path: Path) -> None:
    image = tmp_path / "finger.png"
    captured = agent.cli("fingerprint", "capture", "--image", str(image), "--json")
    assert captured.returncode == 0, captured.stderr
    out = json.loads(captured.stdout)
    assert (out["width"], out["height"]) == (250, 234)
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_barcode_watch_prints_decoded_scans(agent: AgentProcess) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "agent", "barcode", "watch", "--json"], stdout=subprocess.PIPE,
                            text=True, env=agent.env, cwd=REPO)
    try:
        assert proc.stdout is not None
        scans = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    by_text = {scan["text"]: scan["cccd_qr"] for scan in scans}
    assert by_text == {"8934567890123": False, CCCD: True}
    assert "Canary" not in agent.log()
