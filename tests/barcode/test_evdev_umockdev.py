"""python-evdev against a mocked scanner: umockdev provides /dev/input/event9 (no uinput here)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from evdev import ecodes

from tests.barcode.keystrokes import events

REPO = Path(__file__).resolve().parents[2]
NAME = "Honeywell 1900 Barcode Scanner"
CCCD = "001099012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội|15082021"

SYSFS = f"""P: /devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/input/input9/event9
N: input/event9
E: DEVNAME=/dev/input/event9
E: ID_INPUT=1
E: ID_INPUT_KEY=1
E: ID_INPUT_KEYBOARD=1
E: MAJOR=13
E: MINOR=73
E: SUBSYSTEM=input
A: dev=13:73
L: device=../../input9

P: /devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/input/input9
E: NAME="{NAME}"
E: PHYS="usb-0000:00:14.0-2/input0"
E: PRODUCT=3/c2e/b61/100
E: SUBSYSTEM=input
A: name={NAME}
A: phys=usb-0000:00:14.0-2/input0
A: uniq=
A: properties=0
"""


def bitmask(codes: list[int] | range, size: int) -> str:
    mask = bytearray(size)
    for code in codes:
        mask[code // 8] |= 1 << (code % 8)
    return mask.hex().upper()


def text_record(text: str) -> str:
    raw = text.encode() + b"\0"
    return f"{len(raw)} " + raw.ljust(256, b"\0").hex().upper()


def ioctl_records() -> str:
    """What python-evdev asks when it opens a device; buffer sizes must match its requests."""
    return "\n".join([
        "EVIOCGVERSION 0 " + struct.pack("<i", 0x010001).hex().upper(),
        "EVIOCGID 0 " + struct.pack("<HHHH", 3, 0x0C2E, 0x0B61, 0x0100).hex().upper(),
        "EVIOCGNAME(0) " + text_record(NAME),
        "EVIOCGPHYS(0) " + text_record("usb-0000:00:14.0-2/input0"),
        "EVIOCGUNIQ(0) " + text_record(""),
        "EVIOCGBIT(0) 4 " + bitmask([ecodes.EV_SYN, ecodes.EV_KEY, ecodes.EV_MSC], 4),
        "EVIOCGBIT(1) 96 " + bitmask(range(1, 128), 768),
        "EVIOCGBIT(4) 8 " + bitmask([ecodes.MSC_SCAN], 768),
        "EVIOCGPROP(0) 8 " + bitmask([], 256),
        "EVIOCGEFFECTS 0 " + struct.pack("<i", 0).hex().upper(),
    ]) + "\n"


def evemu(stream_texts: list[tuple[float, str]]) -> str:
    lines = []
    for start, text in stream_texts:
        for event in events(text, start=start):
            stamp = f"{event.sec}.{event.usec:06d}"
            lines.append(f"E: {stamp} {event.type:04x} {event.code:04x} {event.value:04x}")
    return "\n".join(lines) + "\n"


def run_mocked_scanner(tmp_path: Path, scans: list[tuple[float, str]], expected: int,
                       *extra: str) -> dict[str, Any]:
    """The evdev backend in ``umockdev_scan`` against the mocked scanner typing ``scans``."""
    umockdev_run = shutil.which("umockdev-run")
    assert umockdev_run, "umockdev-run missing: apt-get install umockdev (scripts/apt/fingerprint.txt)"
    (tmp_path / "scanner.umockdev").write_text(SYSFS)
    (tmp_path / "scanner.ioctl").write_text(ioctl_records())
    (tmp_path / "scanner.evemu").write_text(evemu(scans))
    result = subprocess.run(
        [umockdev_run, "-d", str(tmp_path / "scanner.umockdev"),
         "-i", f"/dev/input/event9={tmp_path / 'scanner.ioctl'}",
         "-e", f"/dev/input/event9={tmp_path / 'scanner.evemu'}",
         "--", sys.executable, "-m", "tests.barcode.umockdev_scan", str(expected), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_scans_reach_the_agent_from_a_grabbed_device(tmp_path: Path) -> None:
    report = run_mocked_scanner(tmp_path, [(0.3, "8934567890123\n"), (0.6, CCCD + "\n"), (1.5, "TAIL-42")], 3)
    assert report["found"] == [NAME]
    assert report["keys"] == ["usb-0000:00:14.0-2/input0:0c2e:0b61"]
    assert report["grabbed"] == [True]
    assert report["grabbed_after_stop"] == [False]
    assert report["scans"] == [
        {"text": "8934567890123", "cccd_qr": "false"},
        {"text": CCCD, "cccd_qr": "true"},
        {"text": "TAIL-42", "cccd_qr": "false"},  # no suffix: ended by the pause
    ]
    assert report["counted"] == [3]


def udev_database(tmp_path: Path, *properties: str) -> Path:
    """A udev database holding the record of the mocked event9 (char 13:73), as systemd-udevd
    writes it after the rules ran."""
    data = tmp_path / "udev-data"
    data.mkdir()
    (data / "c13:73").write_text("".join(f"{line}\n" for line in ("I:1700000000", *properties)))
    return data


def test_udev_only_takes_the_scanner_the_udev_rules_marked(tmp_path: Path) -> None:
    # as packaging/udev/60-centre-agent.rules leave a Honeywell scanner: kind, tag, group input
    data = udev_database(tmp_path, "E:ID_INPUT_KEYBOARD=1", "E:CENTRE_AGENT_KIND=barcode", "G:centre-agent",
                         "Q:centre-agent")
    report = run_mocked_scanner(tmp_path, [(0.3, "8934567890123\n")], 1,
                                json.dumps({"udev_only": True, "name_patterns": []}), str(data))
    assert report["found"] == [NAME]  # found by the udev mark, not by its name
    assert report["scans"] == [{"text": "8934567890123", "cccd_qr": "false"}]


def test_udev_only_leaves_an_unmarked_device_unopened(tmp_path: Path) -> None:
    # the same device with a name the patterns match, but the udev rules did not hand it to the agent
    data = udev_database(tmp_path, "E:ID_INPUT_KEYBOARD=1", "G:seat")
    report = run_mocked_scanner(tmp_path, [(0.3, "8934567890123\n")], 0, json.dumps({"udev_only": True}), str(data))
    assert report["found"] == []
    # no record in the udev database at all: not taken either
    (data / "c13:73").unlink()
    report = run_mocked_scanner(tmp_path, [], 0, json.dumps({"udev_only": True}), str(data))
    assert report["found"] == []
