"""The trust bundle distributed by the gateway, as this agent holds it.

The uplink fetches it (:mod:`agent.uplink.trust_fetch`) and hands each new copy to
:class:`DistributedTrust`, which keeps the last good one in the state directory
(``trust-bundle.json``, written atomically, mode 0600, owned like the directory) and builds
a :class:`TrustStore` from it once per version. ID-card backends use the union of that store
and their own ``csca_dir`` (:meth:`DistributedTrust.with_local`). Only public PKI data here:
CSCA certificates and CRLs.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.drivers.idcard.trust_store import TrustStore
from agent.errors import AgentError
from agent.state_files import write_state_json

log = logging.getLogger(__name__)

BUNDLE_FILE = "trust-bundle.json"


@dataclass(frozen=True, slots=True)
class TrustBundle:
    version: str
    certificates: tuple[bytes, ...]  # CSCA certificates, DER
    crls: tuple[bytes, ...]  # DS CRLs, DER
    fetched_at: float  # Unix time the gateway last confirmed this version

    def __repr__(self) -> str:
        return f"TrustBundle({self.version!r}, {len(self.certificates)} CSCA, {len(self.crls)} CRL)"


@dataclass(frozen=True, slots=True)
class TrustBundleHealth:
    """What health reports: the version held and how old its last confirmation is."""

    version: str  # "" when none
    age_seconds: float  # 0 when none


def _build_store(bundle: TrustBundle) -> TrustStore:
    store = TrustStore()
    for der in bundle.certificates:
        try:
            store.add_certificate(der)
        except AgentError:
            log.warning("trust bundle %s: a certificate does not parse; skipped", bundle.version)
    for der in bundle.crls:
        try:
            store.add_crl(der)
        except AgentError:
            log.warning("trust bundle %s: a CRL does not parse; skipped", bundle.version)
    return store


class DistributedTrust:
    """The current gateway bundle (or none), safe to read from any thread."""

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / BUNDLE_FILE if state_dir is not None else None
        self._lock = threading.Lock()
        self._bundle: TrustBundle | None = None
        self._store: TrustStore | None = None
        self._unions: dict[int, tuple[str, TrustStore, TrustStore]] = {}  # id(local) -> (version, local, union)

    def load(self) -> None:
        """Read the last good copy from the state directory (none, or a damaged file: no bundle)."""
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            bundle = TrustBundle(str(data["version"]), tuple(base64.b64decode(c) for c in data["certificates"]),
                                 tuple(base64.b64decode(c) for c in data["crls"]), float(data["fetched_at"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("trust bundle %s unreadable (%s): waiting for the gateway", self.path, type(exc).__name__)
            return
        self._swap(bundle, save=False)

    @property
    def current(self) -> TrustBundle | None:
        return self._bundle

    def health(self, now: float | None = None) -> TrustBundleHealth:
        bundle = self._bundle
        if bundle is None:
            return TrustBundleHealth("", 0.0)
        return TrustBundleHealth(bundle.version, max(0.0, (now or time.time()) - bundle.fetched_at))

    def replace(self, bundle: TrustBundle) -> None:
        """A new version from the gateway: saved first, then used."""
        self._swap(bundle, save=True)
        log.info("trust bundle %s: %d CSCA, %d CRL", bundle.version, len(bundle.certificates), len(bundle.crls))

    def confirmed(self, version: str, at: float) -> None:
        """The gateway answered "not modified" for ``version``."""
        bundle = self._bundle
        if bundle is not None and bundle.version == version:
            self._swap(TrustBundle(bundle.version, bundle.certificates, bundle.crls, at), save=True, rebuild=False)

    def _swap(self, bundle: TrustBundle, *, save: bool, rebuild: bool = True) -> None:
        if save:
            self._save(bundle)
        store = _build_store(bundle) if rebuild or self._store is None else self._store
        with self._lock:
            self._bundle, self._store = bundle, store
            if rebuild:
                self._unions.clear()

    def with_local(self, local: TrustStore) -> TrustStore:
        """``local`` (a backend's ``csca_dir``) plus the bundle's CSCAs and CRLs."""
        with self._lock:
            bundle, store = self._bundle, self._store
            if bundle is None or store is None:
                return local
            cached = self._unions.get(id(local))
            if cached is not None and cached[0] == bundle.version and cached[1] is local:
                return cached[2]
            union = TrustStore.union(local, store)
            self._unions[id(local)] = (bundle.version, local, union)
            return union

    def _save(self, bundle: TrustBundle) -> None:
        if self.path is None:
            return
        data = {"version": bundle.version, "fetched_at": bundle.fetched_at,
                "certificates": [base64.b64encode(c).decode() for c in bundle.certificates],
                "crls": [base64.b64encode(c).decode() for c in bundle.crls]}
        write_state_json(self.path, data)
