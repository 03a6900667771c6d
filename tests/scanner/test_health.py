"""Scanner health: state, last error, pages counter; a change into or out of error is logged once."""

from __future__ import annotations

import logging

import pytest

from agent.domain.device import DeviceState
from agent.drivers.scanner.health import ScannerHealth
from agent.errors import DeviceBusyError, DeviceGoneError, DeviceStateError


def test_health_transitions_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="scanner-health-test")
    notified: list[int] = []
    health = ScannerHealth("Desk scanner", logging.getLogger("scanner-health-test"), lambda: notified.append(1))
    for _ in range(3):
        health.job_started()
        health.page_scanned()
        health.job_finished()
    assert health.snapshot().counters == {"pages_scanned": 3}
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []

    for _ in range(2):  # a jam, then a retry that jams again: each change logged once
        health.job_started()
        health.job_failed(DeviceStateError("paper jam in the document feeder", reason="PAPER_JAM"))
    snapshot = health.snapshot()
    assert snapshot.state == DeviceState.ERROR
    assert [c.code for c in snapshot.conditions] == ["media-jam"]
    assert snapshot.last_error == "PAPER_JAM: paper jam in the document feeder"

    health.job_started()
    health.job_failed(DeviceBusyError("the scanner is busy"))
    assert health.snapshot().state == DeviceState.READY  # busy is not a fault of the device
    health.job_failed(DeviceGoneError("gone"))
    assert [c.code for c in health.snapshot().conditions] == ["offline"]
    health.observed(reachable=True)
    assert health.snapshot().state == DeviceState.READY
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert info == [
        "scanner Desk scanner: busy -> error",
        "scanner Desk scanner: error -> busy",
        "scanner Desk scanner: busy -> error",
        "scanner Desk scanner: error -> busy",
        "scanner Desk scanner: ready -> error",
        "scanner Desk scanner: error -> ready",
    ]
    assert len(notified) > 10
