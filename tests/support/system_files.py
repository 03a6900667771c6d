"""Every system file the tests use must come from a Debian package the scripts install.

A green run on a developer's machine can hide a missing install step: a program installed by
hand, a data file read from a sibling folder of the checkout. This module watches the test
process (a :func:`sys.addaudithook` hook: files opened, programs started, absolute paths passed
to them) and, at the end of the session, asks dpkg who owns each path outside the repository.

A path passes when it is
- inside the repository, the virtualenv, the Python installation running the tests (the
  machine's interpreter, which CI has too), a temporary directory, or a kernel/runtime file
  system (``/proc``, ``/sys``, ``/dev``, ``/run``);
- owned (``dpkg-query -S``) by a package that ``scripts/apt/*.txt`` lists, or that one of those
  depends on (``Depends``/``Pre-Depends``, recursively), or that every Debian system has
  (``Essential: yes`` or ``Priority: required``);
- a file under ``/etc`` that no package owns (``/etc/passwd``, ``/etc/hosts``: the system's own
  configuration, made at install time).

Anything else fails the session, naming the path, how it was used, the first test that used it
and, for a package-owned path, the package to add to ``scripts/apt/``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Kernel and runtime file systems, never from a package.
RUNTIME_ROOTS: tuple[str, ...] = ("/proc", "/sys", "/dev", "/run", "/var/run", "/tmp", "/var/tmp")

#: Absolute paths inside an argument (``-I/usr/include``, ``--config=/etc/x``, a plain path).
_PATH_IN_ARG = re.compile(r"(?:^(?:-[A-Za-z])?|[=:,\s])(/[^\s=:,;'\"]+)")


@dataclass(frozen=True)
class Use:
    """One path the tests used, the first time they used it."""

    path: str
    how: str  # "opened", "ran", "passed to a program"
    test: str  # node id of the test running at the time ("" = collection or session set-up)


@dataclass(frozen=True)
class Problem:
    use: Use
    reason: str

    def __str__(self) -> str:
        where = f" (first by {self.use.test})" if self.use.test else ""
        return f"{self.use.path}: {self.use.how}{where}: {self.reason}"


class UseRecorder:
    """Collects the paths the process opens and the programs it starts (audit events)."""

    def __init__(self) -> None:
        self.uses: dict[str, Use] = {}
        self.current_test = ""
        self.active = False

    def install(self) -> None:
        self.active = True
        sys.addaudithook(self._hook)  # audit hooks cannot be removed: ``active`` turns it off

    def _hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.active or _checking:
            return
        if event == "open":
            path = args[0]
            if isinstance(path, str | bytes):
                self._note(os.fsdecode(path), "opened")
        elif event == "subprocess.Popen":
            executable, argv, _cwd, env = args[0], args[1], args[2], args[3]
            self._note_program(executable, argv, env)
        elif event == "os.posix_spawn" or event == "os.exec":
            self._note_program(args[0], args[1], args[2] if len(args) > 2 else None)

    def _note_program(self, executable: object, argv: object, env: object) -> None:
        words = [os.fsdecode(a) for a in argv] if isinstance(argv, list | tuple) else \
            [os.fsdecode(argv)] if isinstance(argv, str | bytes) else []
        program = os.fsdecode(executable) if isinstance(executable, str | bytes | os.PathLike) else \
            (words[0] if words else "")
        if program:
            path_var = None
            if isinstance(env, Mapping):
                path_var = env.get("PATH") or env.get(b"PATH")
            resolved = _which(program, os.fsdecode(path_var) if path_var else None)
            if resolved:
                self._note(resolved, "ran")
        for word in words[1:]:
            for match in _PATH_IN_ARG.finditer(word):
                candidate = match.group(1)
                if os.path.exists(candidate):
                    self._note(candidate, "passed to a program")

    def _note(self, path: str, how: str) -> None:
        if not path.startswith("/"):
            path = os.path.abspath(path)
        if path not in self.uses:
            self.uses[path] = Use(path, how, self.current_test)


def _which(program: str, path_var: str | None) -> str | None:
    if "/" in program:
        return os.path.abspath(program)
    import shutil

    return shutil.which(program, path=path_var)


def listed_packages(repo: Path) -> set[str]:
    """The Debian packages ``scripts/apt/*.txt`` lists (``#`` starts a comment)."""
    names: set[str] = set()
    for listing in sorted((repo / "scripts" / "apt").glob("*.txt")):
        for line in listing.read_text(encoding="utf-8").splitlines():
            names.update(line.split("#", 1)[0].split())
    return names


def own_packages(repo: Path) -> set[str]:
    """The Debian packages this project builds (``packaging/debian/<name>/control``): CI installs them."""
    return {control.parent.name for control in (repo / "packaging" / "debian").glob("*/control")}


def allowed_packages(repo: Path) -> set[str]:
    """What a fresh machine has after the project's scripts ran: the closure of the listed packages,
    and the project's own packages."""
    return package_closure(listed_packages(repo)) | own_packages(repo)


def _dependency_names(field: str) -> Iterable[str]:
    for clause in field.split(","):
        for alternative in clause.split("|"):
            name = alternative.strip().split(" ", 1)[0].split(":", 1)[0]
            if name:
                yield name


def package_closure(listed: Iterable[str],
                    query: Callable[[list[str]], str] | None = None) -> set[str]:
    """``listed``, the base system, and everything they depend on, among installed packages."""
    run = query or _dpkg_query
    table = run(["-W", "-f=${Package}\t${db:Status-Abbrev}\t${Essential}\t${Priority}\t"
                 "${Depends}, ${Pre-Depends}\t${Provides}\n"])
    depends: dict[str, list[str]] = {}
    providers: dict[str, set[str]] = {}
    base: set[str] = set()
    for row in table.splitlines():
        parts = row.split("\t")
        if len(parts) < 6 or not parts[1].startswith("ii"):
            continue
        name, _status, essential, priority, deps, provides = parts[:6]
        depends[name] = list(_dependency_names(deps))
        for virtual in _dependency_names(provides):
            providers.setdefault(virtual, set()).add(name)
        if essential == "yes" or priority == "required":
            base.add(name)
    closure: set[str] = set()
    todo = [*listed, *base]
    while todo:
        name = todo.pop()
        for real in ({name} if name in depends else set()) | providers.get(name, set()):
            if real not in closure:
                closure.add(real)
                todo.extend(depends[real])
    return closure


#: True while this module asks dpkg: the paths it asks about are not uses of the tests.
_checking = False


def _dpkg_query(args: list[str]) -> str:
    global _checking
    _checking = True
    try:
        done = subprocess.run(["dpkg-query", *args], capture_output=True, text=True, check=False)
    finally:
        _checking = False
    return done.stdout


def _spellings(path: str) -> list[str]:
    """The names dpkg may know a path by: as given, resolved, and across the /usr merge."""
    names = [path]
    real = os.path.realpath(path)
    names.append(real)
    for name in list(names):
        for merged, split in (("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/"), ("/usr/lib/", "/lib/"),
                              ("/usr/lib64/", "/lib64/")):
            if name.startswith(merged):
                names.append(split + name[len(merged):])
            elif name.startswith(split):
                names.append(merged + name[len(split):])
    return list(dict.fromkeys(names))


def owners(paths: Iterable[str], query: Callable[[list[str]], str] | None = None) -> dict[str, set[str]]:
    """Packages owning each path (under any of its spellings); a path no package owns is absent."""
    run = query or _dpkg_query
    spelled = {path: _spellings(path) for path in paths}
    every = sorted({name for names in spelled.values() for name in names if not _has_glob(name)})
    found: dict[str, set[str]] = {}
    for start in range(0, len(every), 200):
        for line in run(["-S", *every[start:start + 200]]).splitlines():
            if line.startswith("diversion "):
                continue
            packages, sep, owned = line.rpartition(": ")
            if not sep:
                continue
            names = {p.strip().split(":", 1)[0] for p in packages.split(",") if p.strip()}
            found.setdefault(owned.strip(), set()).update(names)
    result: dict[str, set[str]] = {}
    for path, spellings in spelled.items():
        owning: set[str] = set().union(*(found.get(name, set()) for name in spellings))
        if owning:
            result[path] = owning
    return result


def _has_glob(path: str) -> bool:
    return any(c in path for c in "*?[]\\")


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def judge(uses: Iterable[Use], *, exempt_roots: Iterable[str], closure: set[str],
          query: Callable[[list[str]], str] | None = None) -> list[Problem]:
    """The uses that no listed package accounts for."""
    exempt = list(exempt_roots)
    todo = [u for u in uses if not _under(u.path, exempt) and u.path != "/"]
    owned = owners([u.path for u in todo], query)
    problems: list[Problem] = []
    for use in sorted(todo, key=lambda u: u.path):
        packages = owned.get(use.path)
        if packages is None:
            if _under(use.path, ["/etc"]):
                continue  # the system's own configuration (passwd, hosts, ld.so.cache...)
            problems.append(Problem(use, "outside the repository and from no Debian package"))
        elif not packages & closure:
            problems.append(Problem(use, f"from the Debian package {', '.join(sorted(packages))}, which no "
                                         "scripts/apt/*.txt lists (nor anything they depend on)"))
    return problems


def exempt_roots(repo: Path) -> list[str]:
    """Where the tests may read freely: the checkout, the virtualenv, the interpreter, temp dirs."""
    import tempfile

    home = Path.home()
    roots = {str(repo), sys.prefix, sys.base_prefix, sys.exec_prefix, tempfile.gettempdir(), *RUNTIME_ROOTS,
             *(str(home / name) for name in (".cache", ".npm", ".config/chromium"))}
    return sorted(r for r in roots if r and r != "/")
