"""TLS to network scanners (``_uscans``, ``https`` eSCL URLs).

Scanners on a centre's LAN nearly always present a self-signed certificate, which no CA
check accepts. The ``escl`` backend's ``tls`` option chooses:

``pin`` (default)
    Trust on first use, as CUPS does for IPPS printers: the SHA-256 fingerprint of the
    certificate a scanner presents the first time is kept in the agent's state directory
    (``escl-pins.json``, keyed by the scanner's eSCL UUID or, for a configured URL, the URL)
    and every later connection must present the same certificate. A different one fails
    with ``TLS_CERTIFICATE_CHANGED``: a replaced scanner (or a man in the middle). After a
    genuine replacement, the installer deletes that scanner's line from the file.
``verify``
    The certificate must chain to a trusted CA and name the host (``TLS_UNTRUSTED`` if not).
``off``
    Encryption without any check of the scanner's identity.
"""

from __future__ import annotations

import enum
import hmac
import json
from pathlib import Path

from agent.errors import ConfigError
from agent.state_files import write_state_json

PINS_FILE = "escl-pins.json"


class TlsPolicy(enum.StrEnum):
    PIN = "pin"
    VERIFY = "verify"
    OFF = "off"

    @classmethod
    def parse(cls, value: object) -> TlsPolicy:
        try:
            return cls(str(value))
        except ValueError:
            raise ConfigError(f"drivers.escl.tls must be pin, verify or off, not {value!r}") from None


class CertificatePins:
    """Pinned certificate fingerprints (hex SHA-256) by scanner key, kept in ``path`` (None:
    in memory only). Used from the event loop only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._pins: dict[str, str] = {}
        if path is not None:
            self._pins = self._load(path)

    @staticmethod
    def _load(path: Path) -> dict[str, str]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"{path} is not a readable pin file: delete it to pin scanners anew") from exc
        try:
            loaded = json.loads(text)
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise ConfigError(f"{path} is not a pin file: delete it to pin scanners anew")
        return dict(loaded)

    def check(self, key: str, fingerprint: str) -> bool:
        """True when ``fingerprint`` is the one pinned for ``key``, or was just pinned (first
        use); False when another one is pinned."""
        known = self._pins.get(key)
        if known is None:
            self._pins[key] = fingerprint
            self._save()
            return True
        return hmac.compare_digest(known, fingerprint)

    def _save(self) -> None:
        if self.path is None:
            return
        write_state_json(self.path, self._pins, indent=1, sort_keys=True)
