"""The doctor's "trust bundle" check on the copy an enrolled agent keeps in its state directory."""

from __future__ import annotations

import time
from pathlib import Path

from agent.doctor.checks import Outcome
from agent.doctor.gateway_checks import trust_bundle_check
from agent.drivers.idcard.trust_bundle import DistributedTrust, TrustBundle

DAY = 86400.0


def _held(state: Path, fetched_at: float) -> None:
    DistributedTrust(state).replace(TrustBundle("3.abc", (), (), fetched_at))


def test_no_bundle_fails(tmp_path: Path) -> None:
    outcome, detail = trust_bundle_check(tmp_path, 7.0)
    assert outcome is Outcome.FAIL
    assert "none in" in detail
    assert trust_bundle_check(tmp_path, 7.0, simulate=True)[0] is Outcome.WARN


def test_a_fresh_bundle_passes_and_an_old_one_fails(tmp_path: Path) -> None:
    now = time.time()
    _held(tmp_path, now - 6 * DAY)
    outcome, detail = trust_bundle_check(tmp_path, 7.0, now=now)
    assert outcome is Outcome.PASS, detail
    assert "version 3.abc" in detail
    outcome, detail = trust_bundle_check(tmp_path, 7.0, now=now + 2 * DAY)
    assert outcome is Outcome.FAIL
    assert "max_trust_age_days" in detail
    # "not modified" from the gateway makes the same version young again
    trust = DistributedTrust(tmp_path)
    trust.load()
    trust.confirmed("3.abc", now + 2 * DAY)
    assert trust_bundle_check(tmp_path, 7.0, now=now + 2 * DAY)[0] is Outcome.PASS


def test_a_damaged_copy_counts_as_none(tmp_path: Path) -> None:
    (tmp_path / "trust-bundle.json").write_text("{not json")
    assert trust_bundle_check(tmp_path, 7.0)[0] is Outcome.FAIL
