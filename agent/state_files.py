"""Writing a file of the agent's state directory: whole or not at all, readable only by the agent.

Every state file (pairings, known devices, pinned scanner certificates, the trust bundle) is
written to a temporary file in the same directory, made 0600, flushed to disk and renamed over
the old one, so a crash or a full disk never leaves half a file. When root writes it (the CLI's
``pair`` run by an installer), the file is given to the owner of the directory: the service user
must still read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_state_json(path: Path, data: Any, *, indent: int | None = None, sort_keys: bool = False) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically, mode 0600, owned like its directory."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        owner = directory.stat()
        if os.geteuid() == 0 and (owner.st_uid, owner.st_gid) != (0, 0):
            os.fchown(fd, owner.st_uid, owner.st_gid)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=indent, sort_keys=sort_keys)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
