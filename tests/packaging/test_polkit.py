"""The polkit rule, judged by a real polkitd (tests/packaging/polkit_authority.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULE = ROOT / "packaging" / "polkit" / "60-centre-agent.rules"
PCSC = ("org.debian.pcsc-lite.access_pcsc", "org.debian.pcsc-lite.access_card")


def authority(rule: Path, workdir: Path, *users: str) -> dict[str, dict[str, bool]]:
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, str(ROOT / "tests/packaging/polkit_authority.py"),
         str(rule), str(workdir), *users], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    answer: dict[str, dict[str, bool]] = json.loads(result.stdout)
    return answer


def test_agent_user_may_use_pcscd_and_nobody_else(tmp_path: Path) -> None:
    answer = authority(RULE, tmp_path / "pk", "centre-agent", "nobody", "centre-gateway")
    assert answer["centre-agent"] == dict.fromkeys(PCSC, True)
    assert answer["nobody"] == dict.fromkeys(PCSC, False)
    assert answer["centre-gateway"] == dict.fromkeys(PCSC, False)


def test_without_the_rule_the_agent_is_refused(tmp_path: Path) -> None:
    """The grant above comes from the rule, not from the authority's defaults."""
    empty = tmp_path / "60-centre-agent.rules"
    empty.write_text("// no rules\n")
    answer = authority(empty, tmp_path / "pk", "centre-agent")
    assert answer["centre-agent"] == dict.fromkeys(PCSC, False)
