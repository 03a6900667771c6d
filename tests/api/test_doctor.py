"""``centre-agent doctor`` as the installer's acceptance test, run as its own process against
agents started as processes (or its own private agent with ``--simulate``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_config
from agent.doctor.expectations import expected_families
from agent.drivers.registry import BACKEND_FAMILY, BACKENDS, load_backend_class
from agent.simulator.idcard import SIMULATED_KEY
from tests.support.agent_process import REPO, AgentProcess, start_agent

#: what the simulated card and barcode scanner hold: none of it may reach the report
PERSONAL = ("TRAN", "NGHIEM", SIMULATED_KEY.document_number, "centre-doctor test scan")


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "doctor", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          stdin=subprocess.DEVNULL)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def mark(out: subprocess.CompletedProcess[str], name: str) -> str:
    """PASS, FAIL, WARN or skip: the text report's mark for the check ``name``."""
    for line in out.stdout.splitlines():
        rest = line[6:]
        if rest == name or rest.startswith(f"{name}: "):
            return line[:4].strip()
    raise AssertionError(f"no check {name!r} in {out.stdout}")


def test_doctor_simulate_exercises_every_family_the_barcode_scanner_included(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agent.toml", "")
    out = doctor("--simulate", "--json", "--no-gateway", "--config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["passed"] is True
    outcomes = {c["name"]: c["outcome"] for c in report["checks"]}
    for needle in ("agent reachable", "devices found", "read the test card", "scan a test page", "print a test page",
                   "capture a finger", "scan a barcode"):
        assert [o for n, o in outcomes.items() if needle in n] == ["pass"], (needle, outcomes)
    for family in ("idcard", "fingerprint", "scanner", "printer", "barcode"):
        assert outcomes[f"{family}: found"] == "pass"
    # the installer was asked, on stderr (stdout is the JSON report)
    assert ">>> scan any barcode with Simulated barcode scanner" in out.stderr
    assert ">>> place a finger on the fingerprint sensor" in out.stderr
    # the report names facts, never the citizen's data nor what was scanned
    for secret in PERSONAL:
        assert secret not in out.stdout + out.stderr


def test_doctor_fails_with_nonzero_exit_when_the_agent_is_down(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agent.toml", "")
    out = doctor("--socket", str(tmp_path / "nobody.sock"), "--config", str(config), "--no-gateway")
    assert out.returncode == 1
    assert "FAIL  agent reachable" in out.stdout
    assert "all checks passed" not in out.stdout


def test_no_device_at_all_is_a_failure_not_a_pass(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agent.toml", "")  # no backend on
    agent = start_agent(tmp_path / "agent", simulate=False, config=config)
    try:
        out = doctor("--socket", str(agent.socket), "--config", str(config), "--no-gateway")
    finally:
        agent.stop()
    assert out.returncode == 1, out.stdout + out.stderr
    assert mark(out, "devices found") == "FAIL"
    assert mark(out, "backends") == "FAIL"
    assert "FAIL  devices found: no device found: " in out.stdout
    assert out.stdout.splitlines()[-1] == "doctor: some checks FAILED"


@pytest.fixture(scope="module")
def scanner_only_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """An agent whose only backend is the simulated scanner."""
    tmp = tmp_path_factory.mktemp("scanner-only")
    config = write_config(tmp / "agent.toml", "[drivers.sim-scanner]\n")
    agent = start_agent(tmp / "agent", simulate=False, config=config)
    yield agent
    agent.stop()


def test_a_missing_expected_family_fails_naming_it(scanner_only_agent: AgentProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path / "agent.toml",
                          '[drivers.sim-scanner]\n[doctor]\nexpect = ["scanner", "printer"]\n')
    out = doctor("--socket", str(scanner_only_agent.socket), "--config", str(config), "--no-gateway", "--no-scan")
    assert out.returncode == 1, out.stdout + out.stderr
    assert mark(out, "scanner: found") == "PASS"
    assert mark(out, "printer: found") == "FAIL"
    assert mark(out, "idcard: found") == "skip"  # present nowhere, expected nowhere
    assert "FAIL  printer: found: no printer device found, and this counter must have one ([doctor] expect): " \
           "no backend of this family is running" in out.stdout
    assert "all checks passed" not in out.stdout


def test_without_expect_the_families_of_the_backends_on_are_expected(scanner_only_agent: AgentProcess,
                                                                      tmp_path: Path) -> None:
    # the config turns the fingerprint backend on, but the agent found no sensor
    config = write_config(tmp_path / "agent.toml", "[drivers.sim-scanner]\n[drivers.sim-fingerprint]\n"
                                                   "[drivers.sim-printer]\nenabled = false\n")
    out = doctor("--socket", str(scanner_only_agent.socket), "--config", str(config), "--no-gateway", "--no-scan")
    assert out.returncode == 1, out.stdout + out.stderr
    assert mark(out, "scanner: found") == "PASS"
    assert mark(out, "fingerprint: found") == "FAIL"
    assert mark(out, "printer: found") == "skip"  # its backend is off
    assert "no fingerprint device found" in out.stdout


def test_default_expect_derives_from_the_backends_on(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "agent.toml", "[drivers.pcsc]\n[drivers.sane]\nenabled = false\n"
                                                               "[drivers.ipp]\n[drivers.evdev]\n"))
    assert expected_families(config) == ("idcard", "printer", "barcode")
    assert expected_families(config, simulate=True) == ("idcard", "fingerprint", "scanner", "printer", "barcode")
    stated = load_config(write_config(tmp_path / "stated.toml", '[drivers.pcsc]\n[doctor]\nexpect = ["scanner"]\n'))
    assert expected_families(stated) == ("scanner",)


def test_every_backend_has_its_family() -> None:
    assert set(BACKEND_FAMILY) == set(BACKENDS)
    for name, family in BACKEND_FAMILY.items():
        assert load_backend_class(name).family is family, name


def test_pcscd_down_is_a_failure(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agent.toml", "[drivers.pcsc]\n")
    # the agent's libpcsclite looks for pcscd on a socket nobody serves
    agent = start_agent(tmp_path / "agent", simulate=False, config=config,
                        env={"PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")})
    try:
        out = doctor("--socket", str(agent.socket), "--config", str(config), "--no-gateway")
    finally:
        agent.stop()
    assert out.returncode == 1, out.stdout + out.stderr
    assert mark(out, "pcscd") == "FAIL"
    assert "FAIL  backends: pcsc: the PC/SC service (pcscd) is not reachable" in out.stdout
    assert "all checks passed" not in out.stdout


def test_a_card_whose_csca_is_not_trusted_fails_with_what_to_install_and_where(tmp_path: Path) -> None:
    csca = tmp_path / "csca"
    csca.mkdir()
    config = write_config(tmp_path / "agent.toml", f'[idcard]\ncsca_dir = "{csca}"\n'
                                                   "[drivers.sim-idcard]\ntrust_card_csca = false\n")
    out = doctor("--simulate", "--config", str(config), "--no-gateway")
    assert out.returncode == 1, out.stdout + out.stderr
    (line,) = [x for x in out.stdout.splitlines() if "idcard: read the test card" in x]
    assert line.startswith("FAIL  idcard: read the test card: PACE, DGs [1, 2, 13, 15], passive unknown_issuer: "
                           "no CSCA in the trust store for the DS issuer CN="), line
    assert "C=VN" in line
    assert "Install the CSCA certificate of CN=" in line
    assert f"(country VN), or an ICAO master list holding it, as a PEM or DER file in {csca} ([idcard] csca_dir)" \
        in line
    for secret in PERSONAL:
        assert secret not in out.stdout + out.stderr


def test_prompts_wait_for_the_card_and_the_scan_then_fail(tmp_path: Path) -> None:
    # no card on the reader, a barcode scanner nobody uses (its first scan an hour away): each prompt
    # waits --wait seconds
    config = write_config(tmp_path / "agent.toml", '[drivers.sim-idcard]\nprofile = "empty"\n'
                                                   "[drivers.sim-barcode]\ndemo_interval = 3600.0\n")
    out = doctor("--simulate", "--config", str(config), "--no-gateway", "--wait", "1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert ">>> insert the test card into the ID-card reader (waiting up to 1 s)" in out.stderr
    assert ">>> scan any barcode with Simulated barcode scanner (waiting up to 1 s)" in out.stderr
    assert "FAIL  idcard: read the test card: no test card was inserted within 1 s" in out.stdout
    assert "scan a barcode: no scan within 1 s" in out.stdout
    assert re.search(r"^PASS  idcard Simulated ID-card reader \(idcard-\w+\): ready", out.stdout, re.M)


def test_a_wrong_key_for_the_card_on_the_reader_fails_at_once(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agent.toml", "")
    out = doctor("--simulate", "--config", str(config), "--no-gateway", "--doc-number", "123456789",
                 "--birth-date", SIMULATED_KEY.date_of_birth, "--expiry-date", SIMULATED_KEY.date_of_expiry)
    assert out.returncode == 1, out.stdout + out.stderr
    assert ">>> insert the test card" not in out.stderr  # the card is there: no waiting for one
    (line,) = [x for x in out.stdout.splitlines() if "idcard: read the test card" in x]
    assert line.startswith("FAIL  idcard: read the test card: Simulated ID-card reader: ACCESS_DENIED: PACE: "
                           "the card rejected the access key"), line
    assert line.endswith("(is it the test card's key?)"), line
    assert out.stdout.splitlines()[-1] == "doctor: some checks FAILED"
