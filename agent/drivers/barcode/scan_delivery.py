"""What every barcode device does with a finished scan: emit it, count it, never log it."""

from __future__ import annotations

import time

from agent.domain.device import Capabilities, Condition, DeviceHealth, DeviceState, Severity
from agent.domain.events import EventKind
from agent.drivers.base import BarcodeScanner
from agent.drivers.idcard.qr import is_cccd_qr


class DeliveringScanner(BarcodeScanner):
    """Shared state of the barcode devices: health, counters and scan emission."""

    _state: DeviceState = DeviceState.PRESENT
    _last_error: str = ""

    def _init_delivery(self) -> None:
        self._counters: dict[str, int] = {"scans": 0, "dropped_scans": 0, "overflows": 0}
        self._conditions: tuple[str, ...] = ()

    def capabilities(self) -> Capabilities:
        return Capabilities(features=frozenset({"cccd_qr"}))

    def health(self) -> DeviceHealth:
        conditions = tuple(Condition(code, Severity.WARNING) for code in self._conditions)
        return DeviceHealth(state=self._state, conditions=conditions, counters=dict(self._counters),
                            last_error=self._last_error)

    def scans_seen(self) -> int:
        return self._counters["scans"]

    def _set_state(self, state: DeviceState, last_error: str = "") -> None:
        if (state, last_error) != (self._state, self._last_error):
            self._state, self._last_error = state, last_error
            self._ctx.health_changed(self)

    def _set_condition(self, code: str, on: bool) -> None:
        present = code in self._conditions
        if on == present:
            return
        kept = tuple(c for c in self._conditions if c != code)
        self._conditions = (*kept, code) if on else kept
        # a state change is logged once; the payload never is
        self._ctx.logger.warning("barcode scanner %s: %s %s", self.descriptor.stable_key, code,
                                 "raised" if on else "cleared")
        self._ctx.health_changed(self)

    def _deliver(self, text: str) -> None:
        self._counters["scans"] += 1
        cccd = "true" if is_cccd_qr(text) else "false"
        self._ctx.emit(self, EventKind.BARCODE_SCANNED,
                       {"symbology": "", "cccd_qr": cccd, "received_at": f"{time.time():.3f}"},
                       text.encode("utf-8"))
