"""Journald logging: structured fields, redaction, nothing else leaves the process.

The journal is a socket this test owns: a private mount namespace with its own
/run/systemd/journal/socket (TESTBED.md), read by tests/packaging/journal_receiver.py.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.errors import ConfigError
from agent.journal import StructuredJournalHandler

ROOT = Path(__file__).resolve().parents[2]
CANARY_ID = "079912345678"  # a 12-digit CCCD number
CANARY_PAYLOAD = "CANARYPAYLOADzq7"


def in_private_journal(command: list[str], stop_on: str = "") -> dict[str, Any]:
    receiver = [sys.executable, str(ROOT / "tests/packaging/journal_receiver.py")]
    if stop_on:
        receiver += ["--stop-on", stop_on]
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", *receiver, "--", *command],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
        check=False)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


LOGGING_SNIPPET = f"""
import logging
from agent.logs import setup_logging
setup_logging("debug", target="journald")
log = logging.getLogger("agent.drivers.idcard")
log.info("card read for %s", "{CANARY_ID}",
         extra={{"device_id": "idcard-usb-1-2", "operation": "ReadCard", "client_id": "portal",
                "outcome": "ok", "payload": "{CANARY_PAYLOAD}"}})
try:
    raise ValueError("bad MRZ for {CANARY_ID}")
except ValueError:
    log.exception("read failed", extra={{"device_id": "idcard-usb-1-2", "outcome": "failed"}})
log.debug("plain")
"""


def test_records_carry_structured_fields_and_no_personal_data() -> None:
    result = in_private_journal([sys.executable, "-c", LOGGING_SNIPPET])
    assert result["returncode"] == 0
    entries = result["entries"]
    assert [e["MESSAGE"].split("\n")[0] for e in entries] == ["card read for <redacted>", "read failed", "plain"]
    first = entries[0]
    assert first["DEVICE_ID"] == "idcard-usb-1-2"
    assert first["OPERATION"] == "ReadCard"
    assert first["CLIENT_ID"] == "portal"
    assert first["OUTCOME"] == "ok"
    assert first["PRIORITY"] == "6"
    assert first["LOGGER"] == "agent.drivers.idcard"
    assert first["SYSLOG_IDENTIFIER"] == "centre-agent"
    failed = entries[1]
    assert failed["OUTCOME"] == "failed"
    assert failed["PRIORITY"] == "3"
    assert "ValueError" in failed["EXCEPTION_TEXT"]
    assert entries[2]["PRIORITY"] == "7"
    assert "OPERATION" not in entries[2]
    everything = json.dumps(entries)
    assert CANARY_ID not in everything
    assert CANARY_PAYLOAD not in everything  # extra attributes outside the field list never leave
    assert "PAYLOAD" not in {k for e in entries for k in e}


def test_agent_daemon_logs_to_the_journal(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nlog_target = "journald"\nsocket = "{tmp_path / "agent.sock"}"\n'
                      f'state_dir = "{tmp_path / "state"}"\n[metrics]\nlisten = ""\n')
    result = in_private_journal([sys.executable, "-m", "agent", "run", "--simulate", "--config", str(config)],
                                stop_on="centre-agent ready")
    assert result["returncode"] == 0
    messages = [e["MESSAGE"] for e in result["entries"]]
    assert any(m.startswith("centre-agent ") and "serving on" in m for m in messages), messages
    assert "stopping" in messages
    assert {e["SYSLOG_IDENTIFIER"] for e in result["entries"]} == {"centre-agent"}


def test_handler_sends_only_the_listed_fields() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    def sender(message: str, **fields: Any) -> None:
        sent.append((message, fields))

    handler = StructuredJournalHandler("centre-gateway", sender=sender)
    record = logging.LogRecord("gateway", logging.WARNING, __file__, 1, "agent %s silent", ("pc-1",), None)
    record.outcome = "failed for 123456789012"  # redacted like the message
    record.template = b"\x01\x02"
    assert handler.filter(record)
    handler.emit(record)
    ((message, fields),) = sent
    assert message == "agent pc-1 silent"
    assert set(fields) == {"SYSLOG_IDENTIFIER", "PRIORITY", "LOGGER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
                           "OUTCOME"}
    assert fields["OUTCOME"] == "failed for <redacted>"
    assert fields["SYSLOG_IDENTIFIER"] == "centre-gateway"


@pytest.mark.parametrize("target", ["stderr", "journald"])
def test_log_target_accepts_stderr_and_journald(tmp_path: Path, target: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\nlog_target = "{target}"\n')
    assert load_config(path).agent.log_target == target


def test_log_target_rejects_anything_else(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nlog_target = "syslog"\n')
    with pytest.raises(ConfigError, match=r"agent\.log_target"):
        load_config(path)
