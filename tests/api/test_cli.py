"""The CLI against a running agent process (its own process, its own socket)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent_process import REPO, AgentProcess, start_agent


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    proc = start_agent(tmp_path_factory.mktemp("cli-agent"))
    try:
        yield proc
    finally:
        proc.stop()


def devices(agent: AgentProcess) -> list[dict[str, object]]:
    for _ in range(100):
        out = agent.cli("devices", "--json")
        assert out.returncode == 0, out.stderr
        rows: list[dict[str, object]] = json.loads(out.stdout)
        if len(rows) == 5 and all(r["state"] == "ready" for r in rows):
            return rows
        time.sleep(0.1)
    raise AssertionError(out.stdout)


def test_devices_json_shows_all_five_families(agent: AgentProcess) -> None:
    rows = devices(agent)
    assert {r["family"] for r in rows} == {"idcard", "fingerprint", "scanner", "printer", "barcode"}
    for row in rows:
        assert {"id", "family", "state", "name"} <= row.keys()


def test_watch_json_prints_one_event_per_line(agent: AgentProcess) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "agent", "watch", "--json"], stdout=subprocess.PIPE,
                            text=True, env=agent.env, cwd=REPO)
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(5)]
        assert {line["kind"] for line in lines} == {"device_added"}
        assert {line["device"]["family"] for line in lines} == {"idcard", "fingerprint", "scanner", "printer",
                                                                "barcode"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_unreachable_agent_is_one_clear_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "agent", "devices", "--socket", str(tmp_path / "none.sock")],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 1
    assert "is it running" in out.stderr
    assert "Traceback" not in out.stderr


def test_second_agent_on_the_same_socket_refuses(agent: AgentProcess, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "agent", "run", "--simulate", "--socket", str(agent.socket),
                          "--state-dir", str(tmp_path), "--metrics", ""], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.returncode == 2
    assert "already listening" in out.stderr


def test_metrics_page_has_bounded_labels_and_no_personal_data(agent: AgentProcess) -> None:
    import urllib.request

    devices(agent)
    out = agent.cli("idcard", "read", "--doc-number", "203004567", "--birth-date", "900115",
                    "--expiry-date", "300115", "--json")
    assert out.returncode == 0, out.stderr
    card = json.loads(out.stdout)
    page = urllib.request.urlopen(f"http://{agent.listen('metrics')}/metrics", timeout=10).read().decode()
    assert 'centre_agent_devices{family="idcard",state="ready"} 1.0' in page
    assert 'centre_agent_operations_total{operation="ReadCard",outcome="OK"}' in page
    for secret in (card["full_name"], card["id_number"], card["document_number"]):
        assert secret not in page
        assert secret not in agent.log()
    # native calls are audited: who, what, which device, outcome
    audit_lines = [line for line in agent.log().splitlines() if "audit operation=ReadCard" in line]
    assert audit_lines
    assert "client_id=centre-agent-cli" in audit_lines[-1]
    assert f"device_id={card['device_id']}" in audit_lines[-1]
    assert "outcome=OK" in audit_lines[-1]


def test_devices_json_says_whether_a_card_is_on_the_simulated_reader(agent: AgentProcess) -> None:
    rows = {str(r["family"]): r for r in devices(agent)}
    assert rows["idcard"]["card_present"] is True  # the simulated reader starts with its card
    assert all("card_present" not in r for family, r in rows.items() if family != "idcard")
    table = agent.cli("devices")
    idcard_line = next(line for line in table.stdout.splitlines() if str(rows["idcard"]["id"]) in line)
    assert "card on the reader" in idcard_line


def test_devices_with_no_device_says_so_and_what_to_check(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("")  # no [drivers.*] table: no backend runs
    empty = start_agent(tmp_path, simulate=False, config=config)
    try:
        out = empty.cli("devices")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("no device found (no driver backend is running")
        assert "centre-agent doctor" in lines[0]
        as_json = empty.cli("devices", "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout) == []
    finally:
        empty.stop()


def test_the_no_device_line_names_the_backends_that_look() -> None:
    from agent.cli.devices import no_devices_line
    from centre.agent.v1 import agent_pb2 as apb

    line = no_devices_line(apb.AgentHealth(backends=["pcsc", "sane"], backend_errors=["cups: cupsd not running"]))
    assert line.startswith("no device found (backends running: pcsc, sane; failed to start: cups: cupsd not running)")
    assert line.endswith("run `centre-agent doctor`")


def test_idcard_read_with_the_qr_code_of_the_simulated_card(agent: AgentProcess) -> None:
    from agent.simulator.idcard import SIMULATED_ID, simulated_card_qr

    devices(agent)
    qr = simulated_card_qr()
    out = agent.cli("idcard", "read", "--qr", qr, "--no-face", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["id_number"] == SIMULATED_ID
    bad = agent.cli("idcard", "read", "--qr", qr.replace("|10012024", "|"), "--json")
    assert bad.returncode != 0
    assert "INVALID_ARGUMENT" in bad.stderr, bad.stderr
    assert "issue date" in bad.stderr
    assert qr not in agent.log()
    assert SIMULATED_ID not in agent.log()
