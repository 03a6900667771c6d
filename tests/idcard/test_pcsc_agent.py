"""End to end: ``centre-agent run`` with the ``pcsc`` backend, our pcscd + vpcd + emulator,
and the CLI as the client (``devices``, ``idcard read``, ``watch``)."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.client import AgentClient
from agent.drivers.idcard import mrz
from agent.simulator.emrtd import card_qr_text, sample_cccd
from agent.simulator.emrtd.profiles import SAMPLE_DG13, SAMPLE_ID
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import idcard_pb2 as ipb
from tests.idcard.pcsc_testbed import REPO_ROOT, PcscdPeer, VpcdCardProcess, start_pcsc_agent, wait_for_card
from tests.support.agent_process import AgentProcess

KEY = mrz.parse(sample_cccd().mrz).key()


@pytest.fixture
def pcsc_agent(running_pcscd: PcscdPeer, tmp_path: Path) -> Iterator[tuple[AgentProcess, Path]]:
    csca = tmp_path / "csca"
    csca.mkdir()
    # The agent inherits PCSCLITE_CSOCK_NAME from this process: it talks to our pcscd.
    agent = start_pcsc_agent(tmp_path, csca)
    try:
        yield agent, csca
    finally:
        agent.stop()


def pcsc_device(agent: AgentProcess) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = agent.cli("devices", "--json")
        assert out.returncode == 0, out.stderr
        rows = [row for row in json.loads(out.stdout) if row.get("name", "").endswith(" 00 00")]
        if rows and rows[0]["state"] == "ready":
            return dict(rows[0])
        time.sleep(0.1)
    raise AssertionError("the pcsc reader did not show up ready")


def test_read_through_the_agent_and_the_cli(pcsc_agent: tuple[AgentProcess, Path],
                                            vpcd_card: Callable[..., VpcdCardProcess]) -> None:
    agent, csca = pcsc_agent
    card = vpcd_card("--csca-out", str(csca / "csca.der"))
    wait_for_card(card.reader)
    device = pcsc_device(agent)
    out = agent.cli("idcard", "read", "--device", device["id"], "--doc-number", KEY.document_number,
                    "--birth-date", KEY.date_of_birth, "--expiry-date", KEY.date_of_expiry, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["id_number"] == SAMPLE_ID
    assert result["verification"]["passive"] == "valid"
    assert result["verification"]["active"] == "valid"
    assert result["face"]["mime_type"] == "image/jpeg"
    for secret in (SAMPLE_ID, result["full_name"], result["place_of_residence"]):
        assert secret not in agent.log()

    wrong = agent.cli("idcard", "read", "--device", device["id"], "--doc-number", KEY.document_number,
                      "--birth-date", KEY.date_of_birth, "--expiry-date", "311231", "--json")
    assert wrong.returncode != 0
    assert "ACCESS_DENIED" in wrong.stderr or "access" in wrong.stderr.lower()
    assert "Traceback" not in wrong.stderr


def test_read_with_the_qr_code_through_the_agent_and_the_cli(
        pcsc_agent: tuple[AgentProcess, Path], vpcd_card: Callable[..., VpcdCardProcess]) -> None:
    """From the QR to the chip: the key derived from the emulator card's QR text opens it
    (the card is issued with the expiry Art. 21 gives it), given as an argument or on stdin."""
    agent, csca = pcsc_agent
    card = vpcd_card("--csca-out", str(csca / "csca.der"))
    wait_for_card(card.reader)
    device = pcsc_device(agent)
    qr = card_qr_text(sample_cccd())
    out = agent.cli("idcard", "read", "--device", device["id"], "--qr", qr, "--no-face", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["id_number"] == SAMPLE_ID
    assert result["document_number"] == SAMPLE_ID[-9:]
    assert result["date_of_expiry"] == "2039-03-15"
    assert result["verification"]["passive"] == "valid"

    piped = subprocess.run([sys.executable, "-m", "agent", "idcard", "read", "--qr", "-", "--no-face", "--json"],
                           input=qr + "\r\n", capture_output=True, text=True, env=agent.env, cwd=REPO_ROOT,
                           timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["id_number"] == SAMPLE_ID
    for secret in (qr, SAMPLE_ID, SAMPLE_ID[-9:], "15031999", "10012024"):
        assert secret not in agent.log()


async def test_a_refused_qr_key_is_permission_denied_with_a_hint(
        pcsc_agent: tuple[AgentProcess, Path], vpcd_card: Callable[..., VpcdCardProcess]) -> None:
    """A QR whose derived keys the card refuses (here: a holder born in 1950, issued in 2021,
    so a card without expiry and two candidates) fails with PERMISSION_DENIED, reason
    ACCESS_DENIED and a hint to type the MRZ or the CAN, after exactly those two tries; the
    card is left usable."""
    agent, csca = pcsc_agent
    card = vpcd_card("--csca-out", str(csca / "csca.der"), "--max-wrong-key-attempts", "3")
    wait_for_card(card.reader)
    device = pcsc_device(agent)
    other = card_qr_text(sample_cccd()).split("|")
    other[3], other[6] = "15031950", "10012021"
    async with AgentClient.connect(str(agent.socket), "qr-test") as client:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.idcard.ReadCard(ipb.ReadCardRequest(device=cpb.DeviceRef(device_id=device["id"]),
                                                             qr="|".join(other), skip_face=True), timeout=60)
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert dict(err.value.trailing_metadata() or ())["centre-error-reason"] == "ACCESS_DENIED"
        assert "MRZ" in (err.value.details() or "")
        assert "CAN" in (err.value.details() or "")
        # Two candidates, two failed attempts: a third (blocking at 3) would make this CARD_BLOCKED.
        ok = await client.idcard.ReadCard(ipb.ReadCardRequest(device=cpb.DeviceRef(device_id=device["id"]),
                                                              qr=card_qr_text(sample_cccd()), skip_face=True),
                                          timeout=60)
    assert ok.personal.id_number == SAMPLE_ID
    assert "15031950" not in agent.log()


def test_dg13_with_version_and_oid_ahead_reads_whole_through_the_cli(
        pcsc_agent: tuple[AgentProcess, Path], vpcd_card: Callable[..., VpcdCardProcess]) -> None:
    """An emulator card whose DG13 starts with a version INTEGER 1 and an OID (the layout that
    made the old parser take the version for field 1): every field from DG13, and says so."""
    agent, csca = pcsc_agent
    card = vpcd_card("--csca-out", str(csca / "csca.der"), "--dg13-header", "version-oid")
    wait_for_card(card.reader)
    device = pcsc_device(agent)
    out = agent.cli("idcard", "read", "--device", device["id"], "--doc-number", KEY.document_number,
                    "--birth-date", KEY.date_of_birth, "--expiry-date", KEY.date_of_expiry, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["full_name"] == SAMPLE_DG13[2]
    assert result["place_of_residence"] == SAMPLE_DG13[9]
    assert (result["father_name"], result["mother_name"]) == SAMPLE_DG13[13]
    assert result["nationality_name"] == "Việt Nam"
    assert result["nationality"] == "VNM"
    assert result["extra_fields"] == []
    sources = result["sources"]
    for name in ("id_number", "full_name", "date_of_birth", "sex", "date_of_expiry", "date_of_issue",
                 "place_of_residence", "father_name", "mother_name", "old_id_number"):
        assert sources[name] == "dg13", name
    assert sources["document_number"] == "dg1"
    assert result["verification"]["data"] == "valid"
    assert result["verification"]["passive"] == "valid"
    log = agent.log()
    for secret in (SAMPLE_ID, str(SAMPLE_DG13[2]), str(SAMPLE_DG13[9])):
        assert secret not in log


def test_card_events_reach_a_watching_client(pcsc_agent: tuple[AgentProcess, Path],
                                             vpcd_card: Callable[..., VpcdCardProcess]) -> None:
    agent, _csca = pcsc_agent
    pcsc_device(agent)
    card = vpcd_card("--card", "tests.idcard.tiny_card:TinyCard", inserted=False)
    watch = subprocess.Popen([sys.executable, "-m", "agent", "watch", "--json"], stdout=subprocess.PIPE,
                             text=True, env=agent.env, cwd=REPO_ROOT)
    try:
        assert watch.stdout is not None
        stream = watch.stdout

        def next_kind() -> str:
            ready, _, _ = select.select([stream], [], [], 20)
            assert ready, "no event from the agent"
            line = stream.readline()
            assert line, "watch ended"
            return str(json.loads(line)["kind"])

        # The initial snapshot (both vpcd slots) says the stream is subscribed.
        assert [next_kind(), next_kind()] == ["device_added", "device_added"]
        card.insert()
        kinds: list[str] = []
        while "card_inserted" not in kinds:
            kinds.append(next_kind())
        card.remove()
        while "card_removed" not in kinds:
            kinds.append(next_kind())
    finally:
        watch.terminate()
        watch.wait(timeout=10)
        if watch.stdout is not None:
            watch.stdout.close()
