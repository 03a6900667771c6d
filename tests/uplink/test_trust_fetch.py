"""The agent's copy of the gateway's trust bundle: kept across restarts, kept when the gateway
cannot be reached, used together with ``csca_dir``."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import grpc

from agent.domain.idcard import Verdict
from agent.drivers.idcard.trust_bundle import BUNDLE_FILE, DistributedTrust, TrustBundle
from agent.drivers.idcard.trust_store import TrustStore
from agent.drivers.idcard.verification import passive_authentication
from agent.simulator.emrtd import EmulatedEmrtd, sample_cccd
from agent.uplink.trust_fetch import TrustFetcher


def _passive(trust: TrustStore) -> Verdict:
    files = EmulatedEmrtd(sample_cccd()).issued.files
    return passive_authentication(files[0x011D], {1: files[0x0101]}, trust).verdict


def _card_csca() -> bytes:
    return EmulatedEmrtd(sample_cccd()).issued.pki.csca_der


def test_the_last_good_copy_survives_a_restart_and_joins_csca_dir(tmp_path: Path) -> None:
    first = DistributedTrust(tmp_path)
    first.replace(TrustBundle("1.aa", (_card_csca(),), (), 1000.0))
    saved = tmp_path / BUNDLE_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".trust-bundle-*"))  # no temporary left behind

    restarted = DistributedTrust(tmp_path)
    local = TrustStore()  # an empty csca_dir
    assert restarted.with_local(local) is local  # nothing loaded yet
    restarted.load()
    assert restarted.health(now=1060.0).version == "1.aa"
    assert restarted.health(now=1060.0).age_seconds == 60.0
    assert _passive(local) is Verdict.UNKNOWN_ISSUER
    union = restarted.with_local(local)
    assert _passive(union) is Verdict.VALID
    assert restarted.with_local(local) is union  # built once per version
    restarted.replace(TrustBundle("2.bb", (), (), 2000.0))
    assert _passive(restarted.with_local(local)) is Verdict.UNKNOWN_ISSUER


class _Credentials:
    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials()

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def certificate_not_after(self) -> int:
        return 0

    def generation(self) -> int:
        return 0


async def test_an_unreachable_gateway_keeps_the_copy_held(tmp_path: Path) -> None:
    trust = DistributedTrust(tmp_path)
    trust.replace(TrustBundle("1.aa", (_card_csca(),), (), 1000.0))
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{sock.getsockname()[1]}"
    fetcher = TrustFetcher(_Credentials(), target, trust, 3600.0)
    assert await fetcher.fetch_once() is False
    held = trust.current
    assert held is not None
    assert (held.version, held.fetched_at) == ("1.aa", 1000.0)
    assert _passive(trust.with_local(TrustStore())) is Verdict.VALID
