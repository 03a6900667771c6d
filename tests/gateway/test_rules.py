"""Pure rules: liveness semantics, problems, admission bucket, config schema, validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import ConfigError, InvalidRequestError
from centre.gateway.v1 import reporting_pb2
from gateway import convert
from gateway.admission import TokenBucket
from gateway.config import load_config
from gateway.model import (
    MISSING_AFTER_MS,
    AgentStatus,
    ConditionInfo,
    DeviceReport,
    ProblemSeverity,
    SupplyInfo,
    agent_status,
)
from tests.gateway.client import identity, printer, report, status_update
from tests.gateway.gateway_process import REPO


def test_agent_status_semantics() -> None:
    now = 10 * MISSING_AFTER_MS
    assert agent_status(now - 120_000, 60, now) is AgentStatus.ONLINE  # exactly interval + 60 s
    assert agent_status(now - 120_001, 60, now) is AgentStatus.OFFLINE
    assert agent_status(now - 30_000, 10, now) is AgentStatus.ONLINE
    assert agent_status(now - 71_000, 10, now) is AgentStatus.OFFLINE
    assert agent_status(now - MISSING_AFTER_MS + 1, 60, now) is AgentStatus.OFFLINE
    assert agent_status(now - MISSING_AFTER_MS, 60, now) is AgentStatus.MISSING


def test_device_problems() -> None:
    assert DeviceReport("d", "printer").problems() == []
    report_ = DeviceReport("d", "printer", state="error", last_error="MEDIA_JAM",
                           conditions=(ConditionInfo("toner-low", ProblemSeverity.WARNING),
                                       ConditionInfo("idle", ProblemSeverity.INFO)),
                           supplies=(SupplyInfo("Black", "toner", 0), SupplyInfo("Cyan", "toner", 10),
                                     SupplyInfo("Paper", "paper", -1), SupplyInfo("M", "toner", 11)))
    assert [(c, s) for c, s, _ in report_.problems()] == [
        ("device-error", ProblemSeverity.ERROR), ("toner-low", ProblemSeverity.WARNING),
        ("supply-low", ProblemSeverity.ERROR), ("supply-low", ProblemSeverity.WARNING)]
    assert DeviceReport("d", "scanner", state="gone").problems()[0][0] == "device-gone"


def test_token_bucket_admits_burst_then_sheds_with_hint() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, 5.0, clock=lambda: now[0])
    assert [bucket.try_take() for _ in range(5)] == [0.0] * 5
    hint = bucket.try_take()
    assert hint >= 0.1
    now[0] += 0.1  # one token refilled
    assert bucket.try_take() == 0.0
    assert bucket.try_take() > 0
    with pytest.raises(ConfigError):
        TokenBucket(0, 1)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "needle"), [
    ("[server]\nlisten = 1\n", "server.listen"),
    ("[storage]\npool_size = \"4\"\n", "storage.pool_size must be int"),
    ("[admission]\nenabled = 1\n", "admission.enabled must be bool"),
    ("[nonsense]\n", "unknown section [nonsense]"),
    ("[server]\nhttp_listen = \"0.0.0.0:8070\"\n", "server.http_listen must be a loopback"),
    ("[storage]\nbackend = \"postgresql\"\n", "storage.dsn is required"),
    ("[auth]\nagent_tokens = [1]\n", "auth.agent_tokens"),
    ("[server\n", "not valid TOML"),
])
def test_config_errors_name_key_and_file(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_config_valid_and_defaults(tmp_path: Path) -> None:
    assert load_config(None).storage_backend == "sqlite"
    config = load_config(_write(tmp_path, '[storage]\nbackend = "postgresql"\ndsn = "host=x"\n'
                                          '[admission]\nrate = 5\nburst = 10.5\n'))
    assert (config.storage_backend, config.admission_rate, config.admission_burst) == ("postgresql", 5, 10.5)


@pytest.mark.parametrize("args", [["run", "--config", "/nonexistent/gw.toml"], ["fleet", "--config", "BAD"]])
def test_cli_config_error_is_one_line_exit_2(tmp_path: Path, args: list[str]) -> None:
    if "BAD" in args:
        args = [a if a != "BAD" else str(_write(tmp_path, "[fleet]\nwrite_batch = true\n")) for a in args]
    result = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert args[-1] in lines[0]
    assert "not found" in lines[0] or "fleet.write_batch" in lines[0]


def test_validation_messages_do_not_echo_values() -> None:
    secret = "Tran Thi Canary"
    bad = report(status_update(1, printer(last_error=secret)))
    with pytest.raises(InvalidRequestError) as err:
        convert.agent_report(bad, 0)
    assert secret not in str(err.value)
    assert "last_error" in str(err.value)
    bad = report(status_update(1, printer()), agent=identity(agent_id=secret))
    with pytest.raises(InvalidRequestError) as err:
        convert.agent_report(bad, 0)
    assert secret not in str(err.value)


def test_valid_report_converts() -> None:
    req = report(status_update(1, printer("p1", reporting_pb2.DEVICE_STATE_BUSY, toner=7)),
                 reporting_pb2.DeviceUpdate(seq=5, observed_at_ms=9, removed_device_id="p0"))
    parsed = convert.agent_report(req, 123)
    assert parsed.received_ms == 123
    assert parsed.updates[0].status is not None
    assert parsed.updates[0].status.state == "busy"
    assert parsed.updates[0].status.supplies[0].level_percent == 7
    assert parsed.updates[1].removed_id == "p0"
    assert convert.device_pb(parsed.updates[0].status).state == reporting_pb2.DEVICE_STATE_BUSY


def test_example_config_is_valid() -> None:
    config = load_config(REPO / "config" / "gateway.example.toml")
    assert config.storage_backend == "sqlite"
    assert config.http_listen.startswith("127.0.0.1:")
