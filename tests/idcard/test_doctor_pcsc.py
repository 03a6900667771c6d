"""``centre-agent doctor`` against the ``pcsc`` backend with our pcscd: one vpcd reader with two
slots shows up as two PC/SC readers, like a dual-interface reader at a counter."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from agent.drivers.idcard import mrz
from agent.simulator.emrtd import sample_cccd
from agent.simulator.emrtd.profiles import SAMPLE_ID
from tests.idcard.pcsc_testbed import REPO_ROOT, PcscdPeer, VpcdCardProcess, start_pcsc_agent, wait_for_card
from tests.support.agent_process import AgentProcess

KEY = mrz.parse(sample_cccd().mrz).key()


def ready_readers(agent: AgentProcess, count: int) -> list[str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = agent.cli("devices", "--json")
        assert out.returncode == 0, out.stderr
        rows = [row for row in json.loads(out.stdout) if row["family"] == "idcard" and row["state"] == "ready"]
        if len(rows) >= count:
            return [row["name"] for row in rows]
        time.sleep(0.1)
    raise AssertionError("the vpcd readers did not show up ready")


def start_doctor(agent: AgentProcess, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "agent", "doctor", "--socket", str(agent.socket), "--config",
                             str(config), "--no-gateway", "--doc-number", KEY.document_number, "--birth-date",
                             KEY.date_of_birth, "--expiry-date", KEY.date_of_expiry],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=agent.env, cwd=REPO_ROOT)


def test_doctor_asks_for_the_card_and_reads_it_on_the_reader_that_holds_it(running_pcscd: PcscdPeer,
                                                                            tmp_path: Path) -> None:
    csca = tmp_path / "csca"
    csca.mkdir()
    agent = start_pcsc_agent(tmp_path, csca)
    second = running_pcscd.reader_names[1]
    # the card goes into the second slot, only once the doctor asks for it
    card = VpcdCardProcess(running_pcscd.port + 1, "--csca-out", str(csca / "csca.der"), reader=second)
    card.start(inserted=False)
    try:
        assert len(ready_readers(agent, 2)) == 2
        doctor = start_doctor(agent, tmp_path / "agent.toml")
        assert doctor.stderr is not None
        prompt = doctor.stderr.readline()
        assert prompt.startswith(">>> insert the test card into the ID-card readers (waiting up to 60 s)"), prompt
        card.insert()
        out, err = doctor.communicate()
        assert doctor.returncode == 0, out + err
        assert f"PASS  idcard: read the test card: PACE, DGs [1, 2, 13, 15], passive valid (on {second})" \
            in out.splitlines(), out
        assert out.splitlines()[-1] == "doctor: all checks passed"

        # the card stays in: the doctor reads it at once, without asking
        again = start_doctor(agent, tmp_path / "agent.toml")
        out, err = again.communicate()
        assert again.returncode == 0, out + err
        assert ">>> insert the test card" not in err
        assert f"passive valid (on {second})" in out
        assert SAMPLE_ID not in out + err + agent.log()
    finally:
        card.stop()
        agent.stop()
        wait_for_card(second, present=False)
