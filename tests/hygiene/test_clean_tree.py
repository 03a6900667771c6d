"""The tree works on any machine: nothing tracked points at one developer's machine."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Paths that exist on one machine only: a workspace, a home folder, a user's tool installs.
#: (Written in pieces so this file does not match itself.)
MACHINE_PATHS = re.compile("|".join([
    r"(?<![\w.-])/" + "work/",
    r"(?<![\w.-])/" + r"home/[a-z_][\w.-]*/",
    r"(?<![\w.-])/" + "Users/",
    r"(?<![\w.-])/" + r"root/\.(?:pyenv|cache|local|npm|nvm|cargo)",
    r"(?<![\w.-])/" + r"opt/pypi",
    r"[A-Za-z]:\\" + r"Users\\",
]))


def tracked(*, mode: str | None = None) -> list[tuple[str, str]]:
    """``(mode, path)`` of every file git tracks."""
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-s", "-z"], check=True, capture_output=True).stdout
    rows = []
    for entry in out.decode().split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        rows.append((meta.split()[0], path))
    return [r for r in rows if mode is None or r[0] == mode]


def outside_links(repo: Path, links: list[str]) -> list[str]:
    """Tracked symlinks whose target is absolute or leaves the repository."""
    bad = []
    for path in links:
        target = os.readlink(repo / path)
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
        if os.path.isabs(target) or resolved == ".." or resolved.startswith("../"):
            bad.append(f"{path} -> {target}")
    return bad


def machine_paths(repo: Path, paths: list[str]) -> list[str]:
    """``file:line: text`` of every tracked text line naming a machine-specific path."""
    hits = []
    for path in paths:
        file = repo / path
        if file.is_symlink() or not file.is_file():
            continue
        data = file.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (images, fonts)
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if MACHINE_PATHS.search(line):
                hits.append(f"{path}:{number}: {line.strip()[:120]}")
    return hits


def test_no_tracked_symlink_points_outside_the_tree() -> None:
    links = [p for _, p in tracked(mode="120000")]
    assert outside_links(REPO, links) == []


def test_no_tracked_file_names_a_machine_specific_path() -> None:
    assert machine_paths(REPO, [p for _, p in tracked()]) == []


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The two checks above on a tree that has both faults (the .venv symlink this repository once
    tracked, a benchmark docstring naming one machine's virtualenv)."""
    (tmp_path / "inside").mkdir()
    (tmp_path / ".venv").symlink_to("/" + "work/venv")
    (tmp_path / "up").symlink_to("../elsewhere")
    (tmp_path / "ok").symlink_to("inside")
    (tmp_path / "bench.py").write_text('"""Run: /' + 'work/venv/bin/python bench.py"""\n', encoding="utf-8")
    (tmp_path / "readme.md").write_text("echo token > /root/token\n/usr/share/doc\n", encoding="utf-8")
    assert outside_links(tmp_path, [".venv", "up", "ok"]) == [".venv -> /" + "work/venv", "up -> ../elsewhere"]
    assert machine_paths(tmp_path, ["bench.py", "readme.md"]) == [
        'bench.py:1: """Run: /' + 'work/venv/bin/python bench.py"""']


def test_gitignore_ignores_a_virtualenv_link_as_well_as_a_folder() -> None:
    """``.venv/`` matches a folder only: a ``.venv`` symlink was committed that way once."""
    out = subprocess.run(["git", "-C", str(REPO), "check-ignore", "--no-index", "-q", ".venv"], check=False)
    assert out.returncode == 0
