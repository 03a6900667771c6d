"""The TypeScript SDK's own unit tests (node --test on the built dist/)."""

from __future__ import annotations

import shutil
import subprocess

from tests.web.conftest import ROOT

JS = ROOT / "clients" / "js"


def test_sdk_diagnosis_units() -> None:
    node = shutil.which("node")
    assert node is not None, "node is required (scripts/apt/web.txt)"
    assert (JS / "dist" / "diagnose.js").is_file(), "run clients/js/install.sh first (builds dist/)"
    out = subprocess.run([node, "--test", "tests/diagnose.test.mjs"], cwd=JS, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "# pass 7" in out.stdout
    assert "# fail 0" in out.stdout
