from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.agent_process import REPO


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "doctor", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=180)


def test_doctor_simulate_exercises_every_family() -> None:
    out = doctor("--simulate", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["passed"] is True
    names = [c["name"] for c in report["checks"]]
    for needle in ("agent reachable", "read card", "scan a test page", "print a test page", "capture a finger"):
        assert any(needle in n for n in names), (needle, names)
    # the report names facts, never the citizen's data
    assert "NGUYEN" not in out.stdout


def test_doctor_fails_with_nonzero_exit_when_the_agent_is_down(tmp_path: Path) -> None:
    out = doctor("--socket", str(tmp_path / "nobody.sock"))
    assert out.returncode == 1
    assert "FAIL  agent reachable" in out.stdout
