"""Run the real udev rule engine (``udevadm test``) on devices described to umockdev.

umockdev-run gives ``udevadm`` a fake /sys with the described device and its
parents; a private mount namespace puts the rules file under test in
/etc/udev/rules.d (next to the system's own rules in /usr/lib/udev/rules.d, whose
usb_id and hwdb imports our rules build on), supplies any system group the
CI machine lacks, and gives udevadm a private /run and /dev to write its
database and symlinks into. Nothing on the host changes.
"""

from __future__ import annotations

import grp
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

USB_ROOT = "/devices/pci0000:00/0000:00:14.0/usb1"


@dataclass(frozen=True)
class SysDevice:
    path: str  # sysfs path below /sys
    properties: dict[str, str]
    attributes: dict[str, str] = field(default_factory=dict)
    binary_attributes: dict[str, bytes] = field(default_factory=dict)
    node: str = ""  # below /dev

    def umockdev(self) -> str:
        lines = [f"P: {self.path}"]
        if self.node:
            lines.append(f"N: {self.node}")
        lines += [f"E: {k}={v}" for k, v in self.properties.items()]
        lines += [f"A: {k}={v}" for k, v in self.attributes.items()]
        lines += [f"H: {k}={v.hex()}" for k, v in self.binary_attributes.items()]
        return "\n".join(lines) + "\n"


@dataclass
class UdevResult:
    output: str
    properties: dict[str, str]
    assignments: list[tuple[str, str]]  # (key, value) set by the rules file under test, in order
    group_ids: dict[str, str]  # group name -> gid as udevadm saw /etc/group

    def group(self) -> str | None:
        """Name of the last group the rules under test assigned."""
        gid = self.last("GROUP")
        names = [name for name, value in self.group_ids.items() if value == gid]
        return names[0] if names else gid

    def last(self, key: str) -> str | None:
        values = [v for k, v in self.assignments if k == key]
        return values[-1] if values else None


def usb_device(port: str, vendor: str, product: str, interfaces: list[tuple[int, int, int]] | None = None,
               name: str = "USB device") -> SysDevice:
    bus, dev = 1, 10 + int(port.split("-")[-1])
    descriptors = b""
    if interfaces is not None:
        # device descriptor, one configuration descriptor, then an interface descriptor per (class, sub, proto):
        # udev's usb_id builtin reads these to build ID_USB_INTERFACES
        descriptors = bytes([18, 1, 0, 2, 0, 0, 0, 64]) + bytes.fromhex(vendor)[::-1] + \
            bytes.fromhex(product)[::-1] + bytes([0, 1, 1, 2, 3, 1])
        descriptors += bytes([9, 2, 9 + 16 * len(interfaces), 0, len(interfaces), 1, 0, 0x80, 50])
        for number, (cls, sub, proto) in enumerate(interfaces):
            descriptors += bytes([9, 4, number, 0, 1, cls, sub, proto, 0])
            descriptors += bytes([7, 5, 0x81 + number, 2, 64, 0, 0])  # one bulk-in endpoint each
    return SysDevice(
        path=f"{USB_ROOT}/{port}",
        properties={"SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "DEVNAME": f"/dev/bus/usb/{bus:03d}/{dev:03d}",
                    "PRODUCT": f"{int(vendor, 16):x}/{int(product, 16):x}/100", "TYPE": "0/0/0",
                    "BUSNUM": f"{bus:03d}", "DEVNUM": f"{dev:03d}", "MAJOR": "189", "MINOR": str(dev)},
        attributes={"idVendor": vendor, "idProduct": product, "bDeviceClass": "00", "busnum": str(bus),
                    "devnum": str(dev), "dev": f"189:{dev}", "product": name, "manufacturer": "Test"},
        binary_attributes={"descriptors": descriptors} if descriptors else {},
        node=f"bus/usb/{bus:03d}/{dev:03d}")


def usb_interface(parent: SysDevice, number: int, cls: int, driver: str = "") -> SysDevice:
    port = parent.path.rsplit("/", 1)[1]
    props = {"SUBSYSTEM": "usb", "DEVTYPE": "usb_interface", "INTERFACE": f"{cls}/0/0"}
    if driver:
        props["DRIVER"] = driver
    return SysDevice(f"{parent.path}/{port}:1.{number}", props, {"bInterfaceClass": f"{cls:02x}",
                                                                   "bInterfaceNumber": f"{number:02x}"})


def chain(*devices: SysDevice) -> str:
    """umockdev text: the device first, then its parents."""
    return "\n".join(d.umockdev() for d in devices)


def missing_groups(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            grp.getgrnam(name)
        except KeyError:
            missing.append(name)
    return missing


def run_udev_test(rules: Path, description: str, device_path: str, workdir: Path,
                  groups: list[str], action: str = "add") -> UdevResult:
    """``udevadm test --action=ACTION`` on the first device of ``description`` with ``rules`` installed."""
    workdir.mkdir(parents=True, exist_ok=True)
    rules_dir = workdir / "rules.d"
    rules_dir.mkdir(exist_ok=True)
    installed = rules_dir / rules.name
    installed.write_text(rules.read_text())
    (workdir / "device.umockdev").write_text(description)
    hostdev = workdir / "hostdev"
    hostdev.mkdir(exist_ok=True)
    # udevadm test writes its database to /run/udev and symlinks under /dev: keep both private
    script = [f"mount --bind {shlex.quote(str(rules_dir))} /etc/udev/rules.d",
              "mount -t tmpfs tmpfs /run",
              f"mount --rbind /dev {shlex.quote(str(hostdev))}",
              "mount -t tmpfs tmpfs /dev",
              f"for n in null zero full random urandom tty; do touch /dev/$n && "
              f"mount --bind {shlex.quote(str(hostdev))}/$n /dev/$n; done",
              "mkdir /dev/pts && mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts",
              "ln -s pts/ptmx /dev/ptmx",
              "ln -s /proc/self/fd /dev/fd"]
    group_ids = {g.gr_name: str(g.gr_gid) for g in grp.getgrall()}
    extra = missing_groups(groups)
    if extra:
        group_file = workdir / "group"
        used = {g.gr_gid for g in grp.getgrall()}
        free = (gid for gid in range(900, 999) if gid not in used)
        added = {name: str(next(free)) for name in extra}
        group_ids.update(added)
        group_file.write_text(Path("/etc/group").read_text()
                              + "".join(f"{name}:x:{gid}:\n" for name, gid in added.items()))
        script.append(f"mount --bind {shlex.quote(str(group_file))} /etc/group")
    script.append(f"exec umockdev-run -d {shlex.quote(str(workdir / 'device.umockdev'))} -- "
                  f"udevadm test --action={action} {shlex.quote('/sys' + device_path)}")
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", " && ".join(script)],
                            capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    properties: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Za-z0-9_]+", key):
            properties[key] = value
    mine = re.escape(f"/etc/udev/rules.d/{rules.name}")
    assignments = [(m.group(1), m.group(2)) for m in
                   re.finditer(rf"{mine}:\d+ (GROUP|MODE|OWNER) (\S+)", output)]
    return UdevResult(output, properties, assignments, group_ids)


def rule_problems(output: str, rules_name: str) -> list[str]:
    """Lines where udev's rules parser complains about the file under test."""
    return [line for line in output.splitlines()
            if rules_name in line and re.search(r"invalid|unknown|error|ignoring", line, re.IGNORECASE)]
