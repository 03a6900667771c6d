"""``centre-agent doctor`` gateway checks, and the result visible with ``centre-gateway agents --json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.provisioning.enroll import enroll
from agent.provisioning.identity import IdentityStore
from tests.gateway.gateway_process import REPO
from tests.provisioning.conftest import CENTRE
from tests.provisioning.pki import ProvisioningGateway, facts


def _doctor(state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "doctor", "--simulate", "--json", "--state-dir", str(state),
                           *extra], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=180)


def test_doctor_checks_the_gateway_and_reports_to_it(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    pgateway.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-DOC")
    state = tmp_path / "state"
    enroll(IdentityStore(state), pgateway.enroll_target, pgateway.token(CENTRE), facts(4, "SN-DOC"),
           ca_file=str(pgateway.ca_file))
    out = _doctor(state)
    assert out.returncode == 0, out.stdout + out.stderr
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["certificate valid"]["outcome"] == "pass"
    assert "expires in 30.0 days" in checks["certificate valid"]["detail"] or \
        "expires in 29.9 days" in checks["certificate valid"]["detail"]
    assert checks["gateway reachable"]["outcome"] == "pass"
    assert checks["clock skew"]["outcome"] == "pass"
    assert checks["result sent to the gateway"]["outcome"] == "pass"
    # no agent ran to fetch the gateway's trust bundle; the simulated doctor only warns
    assert checks["trust bundle"]["outcome"] == "warn"
    [row] = pgateway.agents()
    assert row["doctor"]["passed"] is True
    sent = {c["name"]: c["outcome"] for c in row["doctor"]["checks"]}
    assert sent["gateway reachable"] == "pass"
    assert any("print a test page" in name for name in sent)
    # names and outcomes only: no details (paths, device data, the simulated card holder) reach the gateway
    assert all(set(c) == {"name", "outcome"} for c in row["doctor"]["checks"])
    assert "NGUYEN" not in json.dumps(row)


def test_doctor_fails_for_an_agent_awaiting_approval(pgateway: ProvisioningGateway, tmp_path: Path) -> None:
    state = tmp_path / "state"
    enroll(IdentityStore(state), pgateway.enroll_target, pgateway.token(CENTRE), facts(5),
           ca_file=str(pgateway.ca_file))
    out = _doctor(state, "--no-print", "--no-scan", "--no-finger")
    assert out.returncode == 1
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["certificate valid"]["outcome"] == "pass"
    assert checks["gateway reachable"]["outcome"] == "fail"
    assert "awaiting operator approval" in checks["gateway reachable"]["detail"]
    assert checks["clock skew"]["outcome"] == "fail"


def test_doctor_on_a_pc_that_was_never_enrolled(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "agent", "doctor", "--socket", str(tmp_path / "none.sock"),
                          "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert out.returncode == 1
    assert "FAIL  certificate valid: not enrolled: run `centre-agent enroll`" in out.stdout
