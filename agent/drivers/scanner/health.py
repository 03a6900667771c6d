"""Health of one scanner: state, last error, pages scanned (a counter for the uplink)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.domain.device import Condition, DeviceHealth, DeviceState, Severity
from agent.errors import AgentError, DeviceBusyError, DeviceStateError, DeviceUnavailableError

#: Fault reasons that leave the device needing attention (shown as a condition).
_ATTENTION = {"PAPER_JAM": "media-jam", "COVER_OPEN": "cover-open"}


class ScannerHealth:
    """Tracks one scanner's health from what its jobs report; never does I/O.

    ``notify`` is called whenever the reported health changes. A change of state is
    logged once; error texts never hold page content (they come from agent errors).
    """

    def __init__(self, name: str, logger: logging.Logger, notify: Callable[[], None]) -> None:
        self._name = name
        self._log = logger
        self._notify = notify
        self._state = DeviceState.READY
        self._condition: Condition | None = None
        self._last_error = ""
        self._pages = 0

    @property
    def pages_scanned(self) -> int:
        return self._pages

    def snapshot(self) -> DeviceHealth:
        return DeviceHealth(
            state=self._state,
            conditions=(self._condition,) if self._condition else (),
            counters={"pages_scanned": self._pages},
            last_error=self._last_error,
        )

    def _set(self, state: DeviceState, condition: Condition | None = None) -> None:
        changed = state != self._state or condition != self._condition
        if state != self._state:
            # ready <-> busy happens every job: only a change into or out of error is news
            level = logging.INFO if DeviceState.ERROR in (state, self._state) else logging.DEBUG
            self._log.log(level, "scanner %s: %s -> %s", self._name, self._state, state)
        self._state, self._condition = state, condition
        if changed:
            self._notify()

    def job_started(self) -> None:
        self._set(DeviceState.BUSY)

    def page_scanned(self) -> None:
        self._pages += 1
        self._notify()

    def job_finished(self) -> None:
        self._set(DeviceState.READY)

    def job_failed(self, error: AgentError) -> None:
        self._last_error = f"{error.reason}: {error.message}"
        if isinstance(error, DeviceStateError) and error.reason in _ATTENTION:
            self._set(DeviceState.ERROR, Condition(_ATTENTION[error.reason], Severity.ERROR, error.message))
        elif isinstance(error, DeviceUnavailableError):
            self._set(DeviceState.ERROR, Condition("offline", Severity.ERROR, error.message))
        elif isinstance(error, DeviceBusyError | DeviceStateError):
            # busy or feeder empty: the device itself is fine
            self._set(DeviceState.READY)
        else:
            self._set(DeviceState.ERROR, Condition("error", Severity.WARNING, error.message))
        self._notify()

    def observed(self, reachable: bool, fault: AgentError | None = None) -> None:
        """What an idle status poll saw: the device answered (with a jam or an open cover
        pending, as ``fault``) or it did not. Ignored while a job runs: the job reports."""
        if self._state == DeviceState.BUSY:
            return
        if not reachable:
            self._set(DeviceState.ERROR, Condition("offline", Severity.ERROR, "the scanner does not answer"))
        elif fault is not None and fault.reason in _ATTENTION:
            self._set(DeviceState.ERROR, Condition(_ATTENTION[fault.reason], Severity.ERROR, fault.message))
        elif self._state == DeviceState.ERROR:
            self._set(DeviceState.READY)  # the jam was cleared, the cover closed, it is back
