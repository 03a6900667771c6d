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
    # [drivers.*] tables are checked like every other table
    ("[drivers.sane]\nrescan_intervall = 5\n", "unknown key 'drivers.sane.rescan_intervall'"),
    ("[drivers.pcsc]\nenable = false\n", "unknown key 'drivers.pcsc.enable'"),
    ("[drivers.pcsc]\nenabled = 'yes'\n", "drivers.pcsc.enabled must be true, false or \"auto\", not 'yes'"),
    ("[drivers.ipp]\npoll_interval = 'often'\n", "drivers.ipp.poll_interval must be a number, not str"),
    ("[drivers.escl]\nurls = 'http://192.0.2.1/eSCL'\n", "drivers.escl.urls must be a list, not str"),
    ("[drivers.escl]\nurls = [1]\n", "drivers.escl.urls[0] must be a str, not int"),
    ("[drivers.escl]\ntls = 'maybe'\n", "drivers.escl.tls must be \"pin\", \"verify\" or \"off\", not 'maybe'"),
    ("[drivers.sane]\ndevice_options = {'test:0' = 1}\n", "[drivers.sane.device_options.test:0] must be a table"),
    ("[drivers.escpos]\nprinters = [{device = '/dev/ttyS0', baud = 9600}]\n",
     "unknown key 'drivers.escpos.printers[0].baud'"),
    ("[drivers.zfm]\naddress = 1.5\n", "drivers.zfm.address must be an integer, not float"),
    ("[drivers.ipp]\npoll_interval = 0\n", "drivers.ipp.poll_interval must be a positive number"),
    ("[drivers.escpos]\nenabled = false\nprinters = [{device = '/dev/ttyS0', address = '192.0.2.1:9100'}]\n",
     "drivers.escpos.printers[0] needs exactly one of device and address"),
    ("[drivers.scanner]\n", "unknown driver backend 'drivers.scanner'"),
    ("[drivers]\npcsc = true\n", "[drivers.pcsc] must be a table"),
    ("drivers = 1\n", "[drivers] must be a table"),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_driver_tables_are_typed_with_nested_tables_and_lists(tmp_path: Path) -> None:
    from agent.drivers.options import EscposPrinterOptions, SaneOptions

    cfg = load_config(write(tmp_path, """
[drivers.sane]
enabled = false
rescan_interval = 0
devices = ["test:0"]
[drivers.sane.device_options."test:0"]
read_return_value = "SANE_STATUS_JAMMED"
[drivers.escpos]
printers = [{device = "/dev/ttyUSB0", baudrate = 19200}, {address = "127.0.0.1:9100"}]
[drivers.pcsc]
"""))
    sane = cfg.backend_options("sane")
    assert sane == SaneOptions(rescan_interval=0.0, devices=["test:0"],
                               device_options={"test:0": {"read_return_value": "SANE_STATUS_JAMMED"}})
    assert isinstance(sane.rescan_interval, float)
    assert cfg.backend_options("escpos").printers == [  # type: ignore[attr-defined]
        EscposPrinterOptions(device="/dev/ttyUSB0", baudrate=19200), EscposPrinterOptions(address="127.0.0.1:9100")]
    # a table without `enabled` is on; `enabled = false` is off
    assert cfg.enabled_backends() == ["escpos", "pcsc"]
    # a backend without a table gets its defaults
    assert cfg.backend_options("escl").tls == "pin"  # type: ignore[attr-defined]


def test_no_driver_tables_means_no_backend() -> None:
    assert load_config(None).enabled_backends() == []


def test_auto_runs_a_backend_only_where_its_service_is_present(tmp_path: Path) -> None:
    from agent.drivers.presence import Presence

    cfg = load_config(write(tmp_path, """
[drivers.pcsc]
enabled = "auto"
[drivers.cups]
enabled = "auto"
[drivers.zfm]
enabled = false
[drivers.sane]
enabled = true
"""))
    present = {"pcsc": Presence(True, "pcscd found at /usr/sbin/pcscd"),
               "cups": Presence(False, "cupsd not found (/usr/sbin/cupsd, /run/cups/cups.sock)")}
    asked: list[str] = []

    def probe(name: str) -> Presence:
        asked.append(name)
        return present[name]

    assert cfg.enabled_backends(probe) == ["pcsc", "sane"]
    assert asked == ["pcsc", "cups"]  # only "auto" backends are probed
    decisions = {d.name: d for d in cfg.backend_decisions(probe)}
    assert decisions["cups"].auto_absent
    assert not decisions["cups"].runs
    assert "cupsd not found" in decisions["cups"].reason
    assert not decisions["pcsc"].auto_absent
    assert decisions["pcsc"].runs
    assert not decisions["zfm"].auto_absent
    assert decisions["zfm"].reason == "enabled = false"
    # everything present: both auto backends run
    assert cfg.enabled_backends(lambda name: Presence(True, "here")) == ["pcsc", "cups", "sane"]
    # --simulate: emulated devices only, "auto" stays off, `true` still runs
    assert cfg.enabled_backends(lambda name: Presence(True, "here"), simulate=True) == ["sane"]


def test_cli_exits_2_on_a_driver_table_typo(tmp_path: Path) -> None:
    path = write(tmp_path, "[drivers.sane]\nenable = false\n")
    proc = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(path)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"centre-agent: {path}: unknown key 'drivers.sane.enable'"]


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
