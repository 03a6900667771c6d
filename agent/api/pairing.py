"""Pairing tokens: one secret per portal origin, issued by ``centre-agent pair --origin URL``.

The agent keeps only a SHA-256 of each token (tokens are 256-bit random, so a
plain hash is enough: there is nothing to brute-force) in ``pairings.json`` in
its state directory, mode 0600. The running agent re-reads the file when it
changes, so ``centre-agent pair --revoke ORIGIN`` takes effect on the next call
without a restart. Tokens are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from agent.config import normalize_origin
from agent.errors import ConfigError, InvalidRequestError
from agent.state_files import write_state_json

PAIRINGS_FILE = "pairings.json"
TOKEN_PREFIX = "cdp_"  # noqa: S105 - a prefix that makes leaked tokens greppable, not a secret


@dataclass(frozen=True, slots=True)
class Pairing:
    origin: str
    token_sha256: str
    created_at: float

    def __repr__(self) -> str:
        return f"Pairing(origin={self.origin!r}, created_at={self.created_at})"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class PairingStore:
    """The pairings of one agent, backed by ``<state_dir>/pairings.json``."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / PAIRINGS_FILE
        self._stamp: tuple[int, int, int] | None = None
        self._pairings: dict[str, Pairing] = {}

    # -- reading ------------------------------------------------------------------------------------

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> dict[str, Pairing]:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return self._pairings
        pairings: dict[str, Pairing] = {}
        if stamp is not None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                for origin, entry in data.get("pairings", {}).items():
                    pairings[origin] = Pairing(origin, str(entry["token_sha256"]), float(entry["created_at"]))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{self.path}: unreadable pairing file ({type(exc).__name__})") from None
        self._stamp = stamp
        self._pairings = pairings
        return pairings

    def list(self) -> list[Pairing]:
        return sorted(self._load().values(), key=lambda p: p.origin)

    def verify(self, origin: str, token: str) -> bool:
        """True when ``token`` is the current token of ``origin`` (constant-time comparison)."""
        pairing = self._load().get(origin)
        # compare against a dummy digest when the origin is unknown, so timing does not tell
        expected = pairing.token_sha256 if pairing is not None else "0" * 64
        ok = hmac.compare_digest(token_digest(token), expected)
        return ok and pairing is not None

    # -- writing ------------------------------------------------------------------------------------

    def _save(self, pairings: dict[str, Pairing]) -> None:
        data = {"version": 1, "pairings": {
            p.origin: {"token_sha256": p.token_sha256, "created_at": p.created_at}
            for p in sorted(pairings.values(), key=lambda p: p.origin)}}
        write_state_json(self.path, data, indent=2)
        self._stamp = None

    def issue(self, origin: str) -> str:
        """A new token for ``origin`` (replacing any earlier one); returned once, stored hashed."""
        normal = normalize_origin(origin)
        if not normal:
            raise InvalidRequestError("origin must be scheme://host[:port], e.g. https://portal.example.gov.vn")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        pairings = dict(self._load())
        pairings[normal] = Pairing(normal, token_digest(token), time.time())
        self._save(pairings)
        return token

    def revoke(self, origin: str) -> bool:
        normal = normalize_origin(origin) or origin
        pairings = dict(self._load())
        if pairings.pop(normal, None) is None:
            return False
        self._save(pairings)
        return True
