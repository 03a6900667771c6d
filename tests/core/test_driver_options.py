"""Backend options: every backend has a typed options class, the example config documents every
option of every backend, and backends built from a plain mapping check it like the config does."""

from __future__ import annotations

import re
import tomllib
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from agent.config import load_config
from agent.drivers.options import OPTIONS, DriverOptions, typed_options
from agent.drivers.presence import PROBES, Presence, typelib_dirs
from agent.drivers.registry import BACKENDS
from agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "agent.example.toml"


def test_every_backend_has_an_options_class_and_a_presence_probe() -> None:
    assert sorted(OPTIONS) == sorted(BACKENDS)
    assert sorted(PROBES) == sorted(BACKENDS)
    for name, cls in OPTIONS.items():
        assert cls.backend == name
        assert issubclass(cls, DriverOptions)
        cls()  # every option has a default


def _nested_fields(cls: type[Any]) -> list[str]:
    """Field names of dataclasses inside ``cls``'s list fields (e.g. escpos ``printers``)."""
    names = []
    for hint in get_type_hints(cls).values():
        for arg in get_args(hint):
            if is_dataclass(arg):
                names += [f.name for f in fields(arg)]
    return names


def test_example_config_documents_every_option_of_every_backend() -> None:
    text = EXAMPLE.read_text()
    tables = tomllib.loads(text)["drivers"]
    missing = []
    for name, cls in OPTIONS.items():
        table = tables.get(name)
        if table is None:
            missing.append(f"[drivers.{name}]")
            continue
        if "enabled" not in table:
            missing.append(f"drivers.{name}.enabled")
        missing += [f"drivers.{name}.{f.name}" for f in fields(cls) if f.name not in table]
        # options inside list entries are shown in an example line
        missing += [f"drivers.{name}: {key}" for key in _nested_fields(cls)
                    if not re.search(rf"\b{key} = ", text)]
    assert missing == []


def test_example_config_shows_the_defaults() -> None:
    """A live option in the example is its default, so the example is also the reference."""
    config = load_config(EXAMPLE)
    differ = []
    for name, table in config.drivers.items():
        defaults = OPTIONS[name]()
        for f in fields(defaults):
            if getattr(table.options, f.name) != getattr(defaults, f.name) and f.name != "udev_only":
                differ.append(f"drivers.{name}.{f.name}")
    assert differ == []
    assert config.drivers["evdev"].options.udev_only is True  # type: ignore[attr-defined]
    assert any(f.name == "udev_only" and f.default is False for f in fields(OPTIONS["evdev"]))


def test_example_config_finds_hardware_but_leaves_serial_ports_alone() -> None:
    config = load_config(EXAMPLE)
    enabled = {name: table.enabled for name, table in config.drivers.items()}
    assert {name for name, value in enabled.items() if value == "auto"} == {
        "pcsc", "sane", "escl", "ipp", "cups", "libfprint", "evdev"}
    assert {name for name, value in enabled.items() if value is False} == {
        "escpos", "zfm", "serial-barcode", "vendor-sdk",
        "sim-idcard", "sim-fingerprint", "sim-scanner", "sim-printer", "sim-barcode"}
    # the serial backends stay off even if someone sets them to "auto"
    for name in ("escpos", "zfm", "serial-barcode", "vendor-sdk"):
        assert PROBES[name]().present is False
    everything_present = config.enabled_backends(lambda name: Presence(True, "test"))
    assert everything_present == ["pcsc", "sane", "escl", "ipp", "cups", "libfprint", "evdev"]
    assert config.enabled_backends(lambda name: Presence(False, "test")) == []


@pytest.mark.parametrize(("name", "options", "message"), [
    ("sane", {"rescan_intervall": 5}, "unknown key 'drivers.sane.rescan_intervall'"),
    ("ipp", {"poll_interval": "often"}, "drivers.ipp.poll_interval must be a number"),
    ("pcsc", {"extended_length": "sometimes"}, "drivers.pcsc.extended_length must be"),
    ("zfm", {"ports": "/dev/ttyUSB0"}, "drivers.zfm.ports must be a list"),
])
def test_typed_options_checks_a_plain_mapping_like_the_config(name: str, options: dict[str, Any],
                                                              message: str) -> None:
    with pytest.raises(ConfigError) as err:
        typed_options(OPTIONS[name], options)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_typed_options_passes_the_checked_dataclass_through() -> None:
    options = OPTIONS["escl"]()
    assert typed_options(OPTIONS["escl"], options) is options
    assert typed_options(OPTIONS["escl"], {"retry_delay": 1}).retry_delay == 1.0  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        typed_options(OPTIONS["escl"], OPTIONS["ipp"]())


def test_option_defaults_are_the_dataclass_defaults_only() -> None:
    for cls in OPTIONS.values():
        for f in fields(cls):
            assert f.default is not MISSING or f.default_factory is not MISSING, f"{cls.__name__}.{f.name}"


def test_presence_probes_look_at_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.drivers import presence

    monkeypatch.setenv("GI_TYPELIB_PATH", str(tmp_path))
    assert typelib_dirs()[0] == tmp_path
    (tmp_path / "FPrint-2.0.typelib").write_bytes(b"")
    found = presence.libfprint_present()
    assert found.present
    assert str(tmp_path) in found.detail
    monkeypatch.setenv("PCSCLITE_CSOCK_NAME", str(tmp_path / "pcscd.comm"))
    pcscd = presence.pcscd_present()
    assert pcscd.present == (Path("/usr/sbin/pcscd").exists())
    (tmp_path / "pcscd.comm").write_bytes(b"")
    assert presence.pcscd_present().present
    assert presence.probe("no-such-backend").present is False
