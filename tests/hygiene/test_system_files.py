"""The check that every system file the tests use comes from a listed Debian package
(``tests/support/system_files.py``, run at the end of every session by ``tests/conftest.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import system_files
from tests.support.system_files import Use

REPO = Path(__file__).resolve().parents[2]


def test_listed_packages_read_every_apt_list_without_comments() -> None:
    listed = system_files.listed_packages(REPO)
    assert {"pcscd", "vsmartcard-vpcd", "libprotobuf-dev", "sane-utils"} <= listed
    assert not any(name.startswith("#") for name in listed)


def test_a_listed_package_and_its_dependencies_pass(tmp_path: Path) -> None:
    closure = system_files.package_closure(["pcscd"])
    assert "pcscd" in closure
    assert "libpcsclite1" in closure  # pcscd depends on it
    assert "coreutils" in closure  # essential: on every Debian system
    uses = [Use("/usr/sbin/pcscd", "ran", "t"), Use("/bin/ls", "ran", "t"), Use("/etc/hostname", "opened", "t")]
    assert system_files.judge(uses, exempt_roots=[str(tmp_path)], closure=closure) == []


def test_a_package_no_list_names_is_reported_with_its_name(tmp_path: Path) -> None:
    closure = system_files.package_closure(["coreutils"])
    problems = system_files.judge([Use("/usr/sbin/pcscd", "ran", "tests/x.py::t")],
                                  exempt_roots=[str(tmp_path)], closure=closure)
    assert [str(p) for p in problems] == [
        "/usr/sbin/pcscd: ran (first by tests/x.py::t): from the Debian package pcscd, which no "
        "scripts/apt/*.txt lists (nor anything they depend on)"]


def test_the_well_known_protos_need_their_package() -> None:
    """The JS SDK generator's protoc reads google/protobuf/*.proto, which plain protobuf-compiler lacks."""
    owned = system_files.owners(["/usr/include/google/protobuf/timestamp.proto"])
    assert owned == {"/usr/include/google/protobuf/timestamp.proto": {"libprotobuf-dev"}}
    assert "libprotobuf-dev" not in system_files.package_closure(["protobuf-compiler"])


def test_a_file_outside_the_repository_and_every_package_is_reported(tmp_path: Path) -> None:
    """Like the sample fingerprints once read from a sibling folder of the checkout."""
    sibling = tmp_path / "shared" / "data" / "loop-right.png"
    sibling.parent.mkdir(parents=True)
    sibling.write_bytes(b"\x89PNG")
    recorder = system_files.UseRecorder()
    recorder.install()
    try:
        sibling.read_bytes()
        subprocess.run(["true", f"--input={sibling}"], check=True)
    finally:
        recorder.active = False
    assert recorder.uses[str(sibling)].how == "opened"
    closure = system_files.package_closure(system_files.listed_packages(REPO))
    problems = system_files.judge(recorder.uses.values(), exempt_roots=[str(REPO), sys.prefix], closure=closure)
    assert [p.use.path for p in problems] == [str(sibling)]
    assert problems[0].reason == "outside the repository and from no Debian package"


def test_programs_and_path_arguments_are_recorded(tmp_path: Path) -> None:
    recorder = system_files.UseRecorder()
    recorder.install()
    try:
        subprocess.run(["env", "-i", "true"], check=True)
        subprocess.run(["true", "-I/usr/include", "--config=/etc/hostname", "/no/such/file"], check=True)
    finally:
        recorder.active = False
    how = {path: use.how for path, use in recorder.uses.items()}
    assert [how[p] for p in how if p.endswith("/env")] == ["ran"]
    assert how["/usr/include"] == "passed to a program"
    assert how["/etc/hostname"] == "passed to a program"
    assert "/no/such/file" not in how


def test_the_paths_the_check_asks_dpkg_about_are_not_uses() -> None:
    recorder = system_files.UseRecorder()
    recorder.install()
    try:
        system_files.owners(["/usr/sbin/pcscd"])
    finally:
        recorder.active = False
    assert "/usr/sbin/pcscd" not in recorder.uses
    assert not any(path.endswith("/dpkg-query") for path in recorder.uses)
