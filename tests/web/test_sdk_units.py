"""The TypeScript SDK's own unit tests (node --test on the built dist/)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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


def test_generated_sdk_code_matches_the_protos(tmp_path: Path) -> None:
    protoc = shutil.which("protoc")
    assert protoc is not None, "protoc is required (scripts/apt/web.txt)"
    plugin = JS / "node_modules" / ".bin" / "protoc-gen-es"
    protos = sorted(str(p) for p in (ROOT / "protos" / "centre" / "agent" / "v1").glob("*.proto"))
    subprocess.run([protoc, "-I", str(ROOT / "protos"), f"--plugin=protoc-gen-es={plugin}", f"--es_out={tmp_path}",
                    "--es_opt=target=ts,import_extension=js", *protos], check=True, timeout=120)
    committed = JS / "src" / "gen"
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.ts"))
    assert fresh == sorted(p.relative_to(committed) for p in committed.rglob("*.ts"))
    for rel in fresh:
        assert (tmp_path / rel).read_text() == (committed / rel).read_text(), \
            f"{rel} is stale: run clients/js/generate.sh and commit"
