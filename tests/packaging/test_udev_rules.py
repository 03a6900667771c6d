"""60-centre-agent.rules: generated from libfprint's list, and checked by the real udev rule engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.udev_mock import (
    SysDevice,
    UdevResult,
    chain,
    rule_problems,
    run_udev_test,
    usb_device,
    usb_interface,
)

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "packaging" / "udev" / "60-centre-agent.rules"
GENERATOR = ROOT / "packaging" / "udev" / "generate-rules.py"
AGENT_GROUPS = ["scanner", "lp", "dialout", "input", "plugdev"]


def udev(tmp_path: Path, description: str, device_path: str, action: str = "add") -> UdevResult:
    result = run_udev_test(RULES, description, device_path, tmp_path / "udev", AGENT_GROUPS, action)
    assert rule_problems(result.output, RULES.name) == []
    return result


def test_rules_parser_reports_a_broken_rule(tmp_path: Path) -> None:
    """The syntax check above really sees our file: a misspelt key is reported."""
    broken = tmp_path / "src" / RULES.name
    broken.parent.mkdir()
    broken.write_text(RULES.read_text().replace('GROUP="plugdev", MODE="0660"', 'GROPU="plugdev", MODE="0660"'))
    sensor = usb_device("1-2", "27c6", "5840")
    result = run_udev_test(broken, chain(sensor), sensor.path, tmp_path / "udev", AGENT_GROUPS)
    assert rule_problems(result.output, RULES.name) != []


def test_committed_rules_match_the_generator() -> None:
    generated = subprocess.run([sys.executable, str(GENERATOR), "--output", "-"], capture_output=True, text=True,
                               check=True).stdout
    assert generated == RULES.read_text(), "re-run packaging/udev/generate-rules.py"


def test_generator_takes_supported_ids_and_skips_unsupported(tmp_path: Path) -> None:
    hwdb = tmp_path / "fp.hwdb"
    hwdb.write_text("# Supported by libfprint driver goodixmoc\nusb:v27C6p5840*\nusb:v27C6p6014*\n ID_AUTOSUSPEND=1\n\n"
                    "# Known unsupported devices\nusb:v04F3p0903*\n ID_AUTOSUSPEND=1\n")
    text = subprocess.run([sys.executable, str(GENERATOR), "--hwdb", str(hwdb), "--output", "-"],
                          capture_output=True, text=True, check=True).stdout
    assert 'ATTR{idVendor}=="27c6", ATTR{idProduct}=="5840", ENV{CENTRE_AGENT_KIND}="fingerprint"' in text
    assert 'ATTR{idProduct}=="6014"' in text
    assert "04f3" not in text
    assert "# fingerprint sensors: 2 USB ids of libfprint drivers" in text


def test_fingerprint_sensor_is_given_to_plugdev(tmp_path: Path) -> None:
    sensor = usb_device("1-2", "27c6", "5840", name="Goodix MOC Fingerprint Sensor")  # goodixmoc
    result = udev(tmp_path, chain(sensor), sensor.path)
    assert result.properties["CENTRE_AGENT_KIND"] == "fingerprint"
    assert result.group() == "plugdev"
    assert result.last("MODE") == "0660"
    assert ":centre-agent:" in result.properties["TAGS"]


def test_sane_scanner_is_given_to_scanner_group(tmp_path: Path) -> None:
    scanner = usb_device("1-3", "03f0", "0101", name="ScanJet 4100C")  # in libsane's hwdb
    result = udev(tmp_path, chain(scanner), scanner.path)
    assert result.properties.get("libsane_matched") == "yes", "libsane1 hwdb missing (scripts/apt/packaging.txt)"
    assert result.properties["CENTRE_AGENT_KIND"] == "scanner"
    assert result.group() == "scanner"


def test_usb_printer_class_device_is_given_to_lp(tmp_path: Path) -> None:
    printer = usb_device("1-4", "04b8", "0e28", interfaces=[(7, 1, 4), (0xFF, 0, 0)], name="Receipt printer")
    result = udev(tmp_path, chain(printer), printer.path)
    assert result.properties["ID_USB_INTERFACES"] == ":070104:ff0000:"
    assert result.properties["CENTRE_AGENT_KIND"] == "printer"
    assert result.group() == "lp"


def input_chain(port: str, vendor: str, product: str, name: str) -> tuple[SysDevice, str]:
    usb = usb_device(port, vendor, product, name=name)
    intf = usb_interface(usb, 0, 3, "usbhid")
    hid = SysDevice(f"{intf.path}/0003:{vendor.upper()}:{product.upper()}.0001", {"SUBSYSTEM": "hid"})
    dev = SysDevice(f"{hid.path}/input/input7", {"SUBSYSTEM": "input", "PRODUCT": f"3/{vendor}/{product}/110"},
                    {"name": name})
    event = SysDevice(f"{dev.path}/event7", {"SUBSYSTEM": "input", "DEVNAME": "/dev/input/event7", "MAJOR": "13",
                                             "MINOR": "71"}, {"dev": "13:71"}, node="input/event7")
    return event, chain(event, dev, hid, intf, usb)


@pytest.mark.parametrize(("vendor", "product"), [("05e0", "1200"), ("0c2e", "0b61"), ("1eab", "1d06")])
def test_barcode_scanner_keyboard_is_tagged(tmp_path: Path, vendor: str, product: str) -> None:
    event, description = input_chain("1-5", vendor, product, "Bar Code Scanner")
    result = udev(tmp_path, description, event.path)
    assert result.properties["CENTRE_AGENT_KIND"] == "barcode"
    assert result.group() == "input"
    assert ":centre-agent:" in result.properties["TAGS"]


def test_usb_serial_adapter_is_tagged_for_dialout(tmp_path: Path) -> None:
    usb = usb_device("1-6", "1a86", "7523", name="USB Serial")
    intf = usb_interface(usb, 0, 0xFF, "ch341")
    port = SysDevice(f"{intf.path}/ttyUSB0", {"SUBSYSTEM": "usb-serial"})
    tty = SysDevice(f"{port.path}/tty/ttyUSB0", {"SUBSYSTEM": "tty", "DEVNAME": "/dev/ttyUSB0", "MAJOR": "188",
                                                 "MINOR": "0"}, {"dev": "188:0"}, node="ttyUSB0")
    result = udev(tmp_path, chain(tty, port, intf, usb), tty.path)
    assert result.properties["CENTRE_AGENT_KIND"] == "serial"
    assert result.group() == "dialout"


def test_a_mouse_is_left_alone(tmp_path: Path) -> None:
    event, description = input_chain("1-7", "046d", "c077", "Logitech USB Optical Mouse")
    result = udev(tmp_path, description, event.path)
    assert "CENTRE_AGENT_KIND" not in result.properties
    assert result.assignments == []


def test_a_usb_stick_is_left_alone(tmp_path: Path) -> None:
    stick = usb_device("1-8", "0781", "5567", interfaces=[(8, 6, 0x50)], name="Cruzer Blade")
    result = udev(tmp_path, chain(stick), stick.path)
    assert "CENTRE_AGENT_KIND" not in result.properties
    assert result.assignments == []


def test_removal_is_ignored(tmp_path: Path) -> None:
    sensor = usb_device("1-2", "27c6", "5840")
    result = udev(tmp_path, chain(sensor), sensor.path, action="remove")
    assert "CENTRE_AGENT_KIND" not in result.properties
    assert result.assignments == []
