from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import AgentConfig, load_config
from agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp: Path, text: str) -> Path:
    path = tmp / "agent.toml"
    path.write_text(text)
    return path


def test_example_config_is_valid() -> None:
    cfg = load_config(REPO / "config" / "agent.example.toml")
    assert cfg.agent.socket == "/run/centre-agent/agent.sock"
    assert cfg.metrics.listen == "127.0.0.1:9464"


def test_defaults_without_a_file() -> None:
    assert load_config(None) == AgentConfig()


@pytest.mark.parametrize(("text", "message"), [
    ("[agent]\nsokcet = 'x'\n", "unknown key 'agent.sokcet'"),
    ("[agent]\ndebounce_seconds = 'slow'\n", "agent.debounce_seconds must be a number"),
    ("[agent]\nmax_message_bytes = 1.5\n", "agent.max_message_bytes must be an integer"),
    ("[nonsense]\n", "unknown key 'nonsense'"),
    ("[agent]\ntcp = '0.0.0.0:50051'\n", "must be a loopback address"),
    ("[metrics]\nlisten = '192.168.1.5:9464'\n", "must be a loopback address"),
    ("[agent]\nsocket_mode = 'rw'\n", "socket_mode must be octal"),
    ("agent = [\n", "not valid TOML"),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_cli_reports_config_errors_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[agent]\nwat = 1\n")
    for args in (["run", "--config", str(path)], ["run", "--config", str(tmp_path / "missing.toml")]):
        proc = subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, cwd=REPO,
                              timeout=60)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1
        assert ("wat" in lines[0]) or ("not found" in lines[0])


@pytest.mark.parametrize(("text", "message"), [
    ('[doctor]\nexpect = ["idcard", "camera"]\n', "doctor.expect entry 'camera' is not a device family"),
    ('[doctor]\nexpect = "idcard"\n', "doctor.expect must be a list"),
    ("[doctor]\nwait_seconds = 0\n", "doctor.wait_seconds must be positive"),
    ("[doctor]\nexpected = []\n", "unknown key 'doctor.expected'"),
])
def test_doctor_section_is_validated(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert message in err.value.message


def test_doctor_section_defaults_and_values(tmp_path: Path) -> None:
    assert load_config(None).doctor.expect == []
    cfg = load_config(write(tmp_path, '[doctor]\nexpect = ["idcard", "printer"]\nwait_seconds = 30\n'))
    assert (cfg.doctor.expect, cfg.doctor.wait_seconds) == (["idcard", "printer"], 30.0)
