"""End to end: ``centre-agent scan`` against a ``--simulate`` agent process, whose scanner is the
eSCL emulator driven by the real eSCL backend; the PDF is streamed by pdf_stream."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from tests.support.agent_process import AgentProcess, start_agent


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    proc = start_agent(tmp_path_factory.mktemp("scan-agent"))
    try:
        yield proc
    finally:
        proc.stop()


def test_scan_adf_to_pdf_json(agent: AgentProcess, tmp_path: Path) -> None:
    out = tmp_path / "dossier.pdf"
    result = agent.cli("scan", "--source", "adf", "--resolution", "150", "--output", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == "done"
    assert report["pages"] == 10
    data = out.read_bytes()
    assert report["sha256"] == hashlib.sha256(data).hexdigest()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert len(pdf.pages) == 10
        for page in pdf.pages:
            assert [float(v) for v in page.MediaBox] == pytest.approx([0, 0, 595.2, 841.92])
            (image,) = page.get_images().values()
            assert image.Filter == "/DCTDecode"  # the scanner's JPEG, not re-encoded
            with Image.open(io.BytesIO(image.read_raw_bytes())) as img:
                assert img.size == (1240, 1754)


def test_scan_flatbed_gray(agent: AgentProcess, tmp_path: Path) -> None:
    out = tmp_path / "id-copy.pdf"
    result = agent.cli("scan", "--mode", "gray", "--resolution", "75", "--output", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["state"], report["pages"]) == ("done", 1)
    with pikepdf.open(out) as pdf:
        (image,) = pdf.pages[0].get_images().values()
        assert image.ColorSpace == "/DeviceGray"


def test_scan_with_an_unsupported_resolution_fails_cleanly(agent: AgentProcess, tmp_path: Path) -> None:
    out = tmp_path / "never.pdf"
    result = agent.cli("scan", "--resolution", "123", "--output", str(out), "--json")
    assert result.returncode != 0
    assert not out.exists()
    assert not out.with_name(out.name + ".part").exists()
