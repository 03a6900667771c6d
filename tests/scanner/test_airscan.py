"""Keeps the eSCL emulator honest: a real third-party eSCL client (sane-airscan, through
scanimage) scans from it and the images are checked."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image

from tests.scanner.conftest import EmulatorProcess


def _scanimage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["scanimage", "-d", "airscan:e0:Emu", *args], env=env, capture_output=True, timeout=60, check=False
    )


def test_airscan_sees_the_emulator(airscan_env: dict[str, str]) -> None:
    listing = subprocess.run(
        ["scanimage", "-L"], env=airscan_env, capture_output=True, text=True, timeout=60, check=True
    )
    assert "airscan:e0:Emu" in listing.stdout
    options = _scanimage(airscan_env, "-A")
    assert options.returncode == 0
    text = options.stdout.decode()
    assert "75|150|200|300|600dpi" in text
    assert "Flatbed|ADF|ADF Duplex" in text


def test_airscan_flatbed_a4_colour(airscan_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "page.png"
    result = _scanimage(
        airscan_env, "--mode", "Color", "--resolution", "150", "-x", "210", "-y", "297", "--format=png", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr.decode()
    with Image.open(out) as opened:
        img = opened.convert("RGB")
    assert img.size == (1240, 1754)
    dpi = 150
    # the emulator's marks: white paper corner, black frame at 1/2 inch, red page-number block
    assert img.getpixel((5, 5)) == (255, 255, 255)
    frame = img.getpixel((dpi // 2 + 1, 3 * dpi))
    assert isinstance(frame, tuple)
    assert max(frame) < 60
    red = img.getpixel((dpi // 2 + 5, dpi // 2 + dpi + dpi // 2))
    assert isinstance(red, tuple)
    assert red[0] > 150
    assert red[1] < 80


def test_airscan_adf_batch_gray(airscan_env: dict[str, str], tmp_path: Path, emulator: EmulatorProcess) -> None:
    emulator.set(sheets=3)
    result = _scanimage(
        airscan_env, "--source", "ADF", "--mode", "Gray", "--resolution", "75", f"--batch={tmp_path}/p%d.pnm"
    )
    assert result.returncode == 0, result.stderr.decode()
    files = sorted(tmp_path.glob("p*.pnm"))
    assert len(files) == 3
    for file in files:
        with Image.open(file) as img:
            assert img.mode == "L"
            assert img.width == 637  # the full 8.5 inch width airscan asks for by default, at 75 dpi


def test_airscan_sees_the_paper_jam(airscan_env: dict[str, str], tmp_path: Path, emulator: EmulatorProcess) -> None:
    emulator.set(sheets=5, jam_after=1)
    result = _scanimage(airscan_env, "--source", "ADF", "--resolution", "75", f"--batch={tmp_path}/p%d.pnm")
    assert len(list(tmp_path.glob("p*.pnm"))) == 1
    assert result.returncode != 0
    assert b"jammed" in result.stderr.lower()
