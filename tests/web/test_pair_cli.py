"""``centre-agent pair``: issue, list, revoke."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.web.conftest import ROOT


def pair(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "pair", "--state-dir", str(state), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_issue_list_revoke(tmp_path: Path) -> None:
    issued = pair(tmp_path, "--origin", "https://Portal.Example.gov.vn:443", "--json")
    assert issued.returncode == 0, issued.stderr
    data = json.loads(issued.stdout)
    assert data["origin"] == "https://portal.example.gov.vn"
    assert data["token"].startswith("cdp_")
    human = pair(tmp_path, "--origin", "https://other.example.gov.vn")
    assert "token: cdp_" in human.stdout
    listed = json.loads(pair(tmp_path, "--list", "--json").stdout)
    assert [row["origin"] for row in listed] == ["https://other.example.gov.vn", "https://portal.example.gov.vn"]
    assert data["token"] not in pair(tmp_path, "--list").stdout  # tokens are never shown again
    assert pair(tmp_path, "--revoke", "https://portal.example.gov.vn").returncode == 0
    listed = json.loads(pair(tmp_path, "--list", "--json").stdout)
    assert [row["origin"] for row in listed] == ["https://other.example.gov.vn"]


def test_revoking_an_unknown_origin_fails(tmp_path: Path) -> None:
    out = pair(tmp_path, "--revoke", "https://never.example")
    assert out.returncode == 1
    assert "not paired" in out.stderr


def test_bad_origin_is_one_line(tmp_path: Path) -> None:
    out = pair(tmp_path, "--origin", "portal.example.gov.vn/path")
    assert out.returncode == 2
    assert "scheme://host" in out.stderr
    assert "Traceback" not in out.stderr
