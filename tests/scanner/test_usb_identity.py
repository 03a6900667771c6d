"""Stable keys of SANE USB scanners: the USB serial number or physical port from sysfs, not
the device number in the SANE name (which changes on every plug-in)."""

from __future__ import annotations

from pathlib import Path

from agent.drivers.scanner.usb_identity import sane_stable_key


def _usb_device(sysfs: Path, port: str, bus: int, device: int, vendor: str, product: str,
                serial: str | None) -> None:
    entry = sysfs / "bus" / "usb" / "devices" / port
    entry.mkdir(parents=True)
    (entry / "busnum").write_text(f"{bus}\n")
    (entry / "devnum").write_text(f"{device}\n")
    (entry / "idVendor").write_text(f"{vendor}\n")
    (entry / "idProduct").write_text(f"{product}\n")
    if serial is not None:
        (entry / "serial").write_text(f"{serial}\n")


def test_the_key_follows_the_serial_number_across_plug_ins(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _usb_device(first, "1-2", 1, 4, "04b8", "0142", "X3PQ00123")
    _usb_device(second, "2-1.4", 2, 17, "04b8", "0142", "X3PQ00123")  # another port, another number
    before = sane_stable_key("epson2:libusb:001:004", first)
    after = sane_stable_key("epson2:libusb:002:017", second)
    assert before == after == "epson2:usb:04b8:0142:X3PQ00123"


def test_without_a_serial_the_physical_port_keeps_the_key(tmp_path: Path) -> None:
    _usb_device(tmp_path, "1-2", 1, 3, "1083", "1234", None)
    _usb_device(tmp_path, "1-3", 1, 9, "1083", "1234", None)  # an identical scanner on the next port
    first = sane_stable_key("fujitsu:libusb:001:003", tmp_path)
    second = sane_stable_key("fujitsu:libusb:001:009", tmp_path)
    assert first == "fujitsu:usb:1083:1234@1-2"
    assert second == "fujitsu:usb:1083:1234@1-3"


def test_other_names_and_unknown_devices_are_kept(tmp_path: Path) -> None:
    _usb_device(tmp_path, "1-2", 1, 4, "04b8", "0142", "../../etc")
    assert sane_stable_key("test:0", tmp_path) == "test:0"
    assert sane_stable_key("pixma:04A91234_ABC123", tmp_path) == "pixma:04A91234_ABC123"
    assert sane_stable_key("genesys:libusb:003:001", tmp_path) == "genesys:libusb:003:001"  # not in sysfs
    assert sane_stable_key("genesys:libusb:001:004", tmp_path / "absent") == "genesys:libusb:001:004"
    assert sane_stable_key("epson2:libusb:001:004", tmp_path) == "epson2:usb:04b8:0142:.._.._etc"
