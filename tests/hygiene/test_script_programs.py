"""The programs the project's shell scripts run (install, build, CI, maintainer scripts) come from
Debian packages that ``scripts/apt/*.txt`` lists, so a tool installed by hand on one machine
cannot hide a missing install step. (What the tests themselves run and read is checked at the end
of every session: ``tests/support/system_files.py``.)

The scripts are read, not run: every command word of every line, after ``|``, ``;``, ``&&``,
``$(``, ``then``, ``do`` and the like, that names a program on ``PATH``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.support import system_files
from tests.support.system_files import Use

REPO = Path(__file__).resolve().parents[2]

_SEPARATORS = re.compile(r"\|\||&&|\$\(|[|;&(`{}]|(?:^|\s)(?:then|do|else|elif|if|while|until|!)(?=\s)")
_WORD = re.compile(r"[a-z][a-z0-9._+-]*")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_FUNCTION = re.compile(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)")
#: Words that run the next word as the command.
_PREFIXES = frozenset({"sudo", "$SUDO", "exec", "command", "nohup", "time", "builtin"})


def shell_scripts() -> list[Path]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], check=True, capture_output=True).stdout
    scripts = []
    for name in out.decode().split("\0"):
        path = REPO / name
        if not name or path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as f:
            first = f.readline()
        if re.match(rb"#!\s*\S*(?:/| )(?:ba|da)?sh\b", first):
            scripts.append(path)
    return scripts


def _builtins() -> set[str]:
    out = subprocess.run(["bash", "-c", "compgen -b -k"], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def command_words(text: str) -> list[tuple[int, str]]:
    """``(line number, word)`` for each word in command position, heredoc bodies and comments left out."""
    found: list[tuple[int, str]] = []
    functions = {m.group(1) for line in text.splitlines() if (m := _FUNCTION.match(line))}
    heredoc_end = ""
    for number, line in enumerate(text.splitlines(), 1):
        if heredoc_end:
            if line.strip() == heredoc_end:
                heredoc_end = ""
            continue
        if (doc := _HEREDOC.search(line)) is not None:
            heredoc_end = doc.group(2)
        code = line.split(" #", 1)[0]
        if code.lstrip().startswith("#"):
            continue
        for part in _SEPARATORS.split(code):
            words = part.split()
            while words and (("=" in words[0] and not words[0].startswith("=")) or words[0] in _PREFIXES):
                words.pop(0)  # VAR=value assignments and prefixes before the command
            if words and _WORD.fullmatch(words[0]) and words[0] not in functions:
                found.append((number, words[0]))
    return found


def script_uses(scripts: list[Path]) -> list[Use]:
    builtins = _builtins()
    uses: dict[str, Use] = {}
    for script in scripts:
        relative = script.relative_to(REPO)
        for number, word in command_words(script.read_text(encoding="utf-8", errors="replace")):
            if word in builtins:
                continue
            program = shutil.which(word)
            if program and program not in uses:
                uses[program] = Use(program, "run", f"{relative}:{number}")
    return list(uses.values())


def test_the_shell_scripts_run_only_programs_from_listed_packages() -> None:
    scripts = shell_scripts()
    assert REPO / "scripts" / "install.sh" in scripts
    assert REPO / "clients" / "js" / "generate.sh" in scripts
    uses = script_uses(scripts)
    assert any(u.path.endswith("/dpkg-deb") for u in uses)  # the build is read
    closure = system_files.allowed_packages(REPO)
    problems = system_files.judge(uses, exempt_roots=system_files.exempt_roots(REPO), closure=closure)
    assert [str(p) for p in problems] == []


def test_command_words_are_found_where_a_shell_runs_them() -> None:
    text = (
        "#!/bin/sh\n"
        "set -e  # comment naming pcscd\n"
        "helper() { true; }\n"
        "FOO=1 protoc -I x | grep -q y && $SUDO apt-get update\n"
        "out=$(dpkg-query -W foo) ; if udevadm info; then exec socat a b; fi\n"
        "cat <<'EOF'\n"
        "ippeveprinter inside a heredoc\n"
        "EOF\n"
        "helper\n"
    )
    assert command_words(text) == [
        (2, "set"), (3, "true"), (4, "protoc"), (4, "grep"), (4, "apt-get"), (5, "dpkg-query"),
        (5, "udevadm"), (5, "socat"), (5, "fi"), (6, "cat")]
