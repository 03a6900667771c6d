"""The packaged config finds hardware: ``centre-agent run`` with ``config/agent.example.toml`` (the file
``packaging/debian/build.sh`` installs as ``/etc/centre-agent/agent.toml``), its driver tables untouched,
lists the vpcd reader of our pcscd."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.idcard.pcsc_testbed import FRIENDLY_NAME, REPO_ROOT, PcscdPeer
from tests.support.agent_process import start_agent

EXAMPLE = REPO_ROOT / "config" / "agent.example.toml"


def packaged_config(tmp: Path) -> Path:
    """The example config with only what points outside the test changed: no browser listener on a
    fixed port, mDNS on loopback only, CSCAs from ``tmp`` (socket, state and metrics come from the
    command line). Not one line under ``[drivers.*]`` changes."""
    text = EXAMPLE.read_text()
    drivers = text[text.index("[drivers."):text.index("[uplink]")]
    csca = tmp / "csca"
    csca.mkdir()
    for old, new in (('listen = "127.0.0.1:8765"', 'listen = ""'),
                     ("interfaces = []", 'interfaces = ["127.0.0.1"]'),
                     ('csca_dir = "/etc/centre-agent/csca"', f'csca_dir = "{csca}"')):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    assert drivers in text
    path = tmp / "agent.toml"
    path.write_text(text)
    return path


def test_the_packaged_config_lists_the_pcsc_reader_with_no_driver_edit(running_pcscd: PcscdPeer,
                                                                       tmp_path: Path) -> None:
    # The agent inherits PCSCLITE_CSOCK_NAME from this process: it talks to our pcscd.
    agent = start_agent(tmp_path, simulate=False, config=packaged_config(tmp_path))
    try:
        readers: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while not readers and time.monotonic() < deadline:
            out = agent.cli("devices", "--json")
            assert out.returncode == 0, out.stderr
            readers = [row for row in json.loads(out.stdout)
                       if row["family"] == "idcard" and str(row["name"]).startswith(FRIENDLY_NAME)]
            time.sleep(0.2)
        assert readers, agent.log()[-3000:]
        assert {row["backend"] for row in readers} == {"pcsc"}
        log = agent.log()
        assert 'backend pcsc on: enabled = "auto", present: pcscd found at' in log
        assert "backend zfm off: enabled = false" in log
        assert "backend serial-barcode off: enabled = false" in log
    finally:
        agent.stop()
