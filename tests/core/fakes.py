"""Small in-process devices for core tests (the core is tested alone; drivers have real peers)."""

from __future__ import annotations

from agent.domain.device import Capabilities, DeviceDescriptor, DeviceFamily, DeviceHealth, DeviceState
from agent.domain.events import EventKind
from agent.domain.idcard import AccessKey, CardRead, ReadOptions
from agent.drivers.base import BarcodeScanner, DriverContext, IdCardReader
from agent.errors import NotSupportedError


class ProbeDevice(BarcodeScanner):
    """A device whose health the test sets; counts open/close calls."""

    def __init__(self, key: str, ctx: DriverContext, fail_open: bool = False) -> None:
        super().__init__(DeviceDescriptor(DeviceFamily.BARCODE, "probe", key, f"Probe {key}", serial=key), ctx)
        self.state = DeviceState.READY
        self.opened = 0
        self.closed = 0
        self.fail_open = fail_open

    def capabilities(self) -> Capabilities:
        return Capabilities(frozenset({"probe"}))

    def health(self) -> DeviceHealth:
        return DeviceHealth(self.state)

    async def open(self) -> None:
        self.opened += 1
        if self.fail_open:
            raise OSError("device refused")

    async def close(self) -> None:
        self.closed += 1

    def scans_seen(self) -> int:
        return 0

    def set_state(self, state: DeviceState) -> None:
        self.state = state
        self._ctx.health_changed(self)


class ProbeReader(IdCardReader):
    """An ID-card reader slot whose card the test puts on and takes off; it cannot read."""

    def __init__(self, name: str, ctx: DriverContext, *, sam: bool = False) -> None:
        super().__init__(DeviceDescriptor(DeviceFamily.IDCARD, "probe", name, name, connection="pcsc"), ctx)
        self.card = False
        self._features = frozenset({"sam_slot"}) if sam else frozenset()

    def capabilities(self) -> Capabilities:
        return Capabilities(self._features)

    def health(self) -> DeviceHealth:
        return DeviceHealth(DeviceState.READY)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def card_present(self) -> bool:
        return self.card

    async def read_card(self, key: AccessKey, options: ReadOptions) -> CardRead:
        raise NotSupportedError("a probe reader reads no card")

    def put_card(self, present: bool) -> None:
        """As a driver does: the card event, then the listed state follows."""
        self.card = present
        self._ctx.emit(self, EventKind.CARD_INSERTED if present else EventKind.CARD_REMOVED)
        self._ctx.health_changed(self)
