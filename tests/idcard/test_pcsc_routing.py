"""Two PC/SC readers (vpcd's two slots, as a dual-interface reader shows up) and the agent
choosing the reader: ``centre-agent run`` with the ``pcsc`` backend against our pcscd, the
emulator as the card, the CLI as the client.

A read that names no reader goes to the one reader holding a card; cards on both, or on
none, is an error naming both readers. ``devices`` lists which reader holds a card.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.drivers.idcard import mrz
from agent.simulator.emrtd import sample_cccd
from agent.simulator.emrtd.profiles import SAMPLE_ID
from tests.idcard.pcsc_testbed import PcscdPeer, VpcdCardProcess, start_pcsc_agent, wait_for_card
from tests.support.agent_process import AgentProcess

KEY = mrz.parse(sample_cccd().mrz).key()
READ = ("idcard", "read", "--doc-number", KEY.document_number, "--birth-date", KEY.date_of_birth,
        "--expiry-date", KEY.date_of_expiry, "--no-face", "--json")


@pytest.fixture
def agent_factory(running_pcscd: PcscdPeer, tmp_path: Path) -> Iterator[Callable[[], AgentProcess]]:
    """Starts the agent when the test says so (after or before cards are put on the readers)."""
    started: list[AgentProcess] = []

    def start() -> AgentProcess:
        agent = start_pcsc_agent(tmp_path, tmp_path / "csca")
        started.append(agent)
        return agent

    (tmp_path / "csca").mkdir()
    yield start
    for agent in started:
        agent.stop()


def readers(agent: AgentProcess, pcscd: PcscdPeer, card_present: tuple[bool, bool]) -> list[dict[str, Any]]:
    """The two vpcd readers from ``devices --json`` once both are ready with these cards."""
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = agent.cli("devices", "--json")
        assert out.returncode == 0, out.stderr
        by_name = {row["name"]: row for row in json.loads(out.stdout)}
        rows = [by_name[name] for name in pcscd.reader_names if name in by_name]
        if (len(rows) == 2 and all(row["state"] == "ready" for row in rows)
                and tuple(row["card_present"] for row in rows) == card_present):
            return rows
        time.sleep(0.1)
    raise AssertionError(f"readers never listed with cards {card_present}: {rows}")


def test_read_without_a_device_goes_to_the_reader_holding_the_card(
        agent_factory: Callable[[], AgentProcess], running_pcscd: PcscdPeer,
        vpcd_card: Callable[..., VpcdCardProcess], tmp_path: Path) -> None:
    # The card is on the second reader before the agent starts: found with the reader, no event.
    card = vpcd_card("--csca-out", str(tmp_path / "csca" / "csca.der"), slot=1)
    wait_for_card(card.reader)
    agent = agent_factory()
    first, second = readers(agent, running_pcscd, (False, True))

    out = agent.cli(*READ)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["device_id"] == second["id"]
    assert result["id_number"] == SAMPLE_ID
    assert result["verification"]["passive"] == "valid"
    assert first["id"] != second["id"]

    table = agent.cli("devices")
    assert table.returncode == 0, table.stderr
    lines = {line.split()[0]: line for line in table.stdout.splitlines()}
    assert lines[second["id"]].rstrip().endswith("card on the reader")
    assert "card on the reader" not in lines[first["id"]]


def test_cards_on_both_readers_or_on_none_is_an_error_naming_both(
        agent_factory: Callable[[], AgentProcess], running_pcscd: PcscdPeer,
        vpcd_card: Callable[..., VpcdCardProcess]) -> None:
    agent = agent_factory()
    cards = [vpcd_card("--card", "tests.idcard.tiny_card:TinyCard", inserted=False, slot=slot)
             for slot in (0, 1)]
    rows = readers(agent, running_pcscd, (False, False))

    none = agent.cli(*READ)
    assert none.returncode == 1
    assert "NO_CARD" in none.stderr
    for row in rows:
        assert f'"{row["name"]}" ({row["id"]})' in none.stderr

    for card in cards:
        card.insert()
    readers(agent, running_pcscd, (True, True))
    both = agent.cli(*READ)
    assert both.returncode == 1
    assert "FAILED_PRECONDITION: SEVERAL_CARDS" in both.stderr
    for row in rows:
        assert f'"{row["name"]}" ({row["id"]})' in both.stderr
    assert "Traceback" not in none.stderr + both.stderr


def test_devices_json_card_present_follows_insert_and_remove(
        agent_factory: Callable[[], AgentProcess], running_pcscd: PcscdPeer,
        vpcd_card: Callable[..., VpcdCardProcess]) -> None:
    agent = agent_factory()
    card = vpcd_card("--card", "tests.idcard.tiny_card:TinyCard", inserted=False, slot=1)
    readers(agent, running_pcscd, (False, False))
    card.insert()
    readers(agent, running_pcscd, (False, True))
    card.remove()
    readers(agent, running_pcscd, (False, False))
    card.insert()
    readers(agent, running_pcscd, (False, True))
