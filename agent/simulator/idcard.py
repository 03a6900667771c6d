"""Simulated ID-card reader with a sample citizen's card always on it.

Replaced by the eMRTD emulator driven through the real ICAO 9303 code (issue 2).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io

from agent.domain.device import DeviceDescriptor, DeviceFamily
from agent.domain.events import EventKind
from agent.domain.idcard import (
    AccessKey,
    CardRead,
    FaceImage,
    MrzKey,
    PersonalData,
    ReadOptions,
    Verdict,
    Verification,
)
from agent.drivers.base import Device, IdCardReader
from agent.errors import AccessDeniedError
from agent.simulator.base import SimulatedDeviceMixin, SingleDeviceBackend

SAMPLE_KEY = MrzKey(document_number="203004567", date_of_birth="900115", date_of_expiry="300115")


def sample_access_key() -> MrzKey:
    """The MRZ key of the simulated citizen's card (for demos and ``doctor --simulate``)."""
    return SAMPLE_KEY


def _face_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (120, 160), (200, 170, 150)).save(buf, "JPEG")
    return buf.getvalue()


class SimulatedIdCardReader(SimulatedDeviceMixin, IdCardReader):
    features = frozenset({"bac", "pace"})

    def __init__(self, descriptor: DeviceDescriptor, ctx: object) -> None:
        super().__init__(descriptor, ctx)  # type: ignore[arg-type]
        self._counters = {"reads": 0}
        self._present = False

    def card_present(self) -> bool:
        return self._present

    async def open(self) -> None:
        await super().open()
        self.insert_card()

    def insert_card(self) -> None:
        self._present = True
        self._ctx.emit(self, EventKind.CARD_INSERTED, {"reader": self.descriptor.name})

    def remove_card(self) -> None:
        self._present = False
        self._ctx.emit(self, EventKind.CARD_REMOVED, {"reader": self.descriptor.name})

    async def read_card(self, key: AccessKey, options: ReadOptions) -> CardRead:
        await asyncio.sleep(0.01)
        if key != SAMPLE_KEY:
            raise AccessDeniedError("the card refused the access key", device_id=None)
        self._counters["reads"] += 1
        personal = PersonalData(
            document_type="ID", issuing_state="VNM", document_number="203004567", id_number="001090004567",
            full_name="NGUYEN VAN MAU", date_of_birth=dt.date(1990, 1, 15), sex="M", nationality="VNM",
            date_of_expiry=dt.date(2030, 1, 15), place_of_origin="Xa Mau, Tinh Mau",
            place_of_residence="So 1 Duong Mau, Phuong Mau, Tinh Mau")
        face = FaceImage(jpeg=_face_jpeg(), original_mime_type="image/jpeg", width=120, height=160) \
            if options.include_face else None
        return CardRead(personal=personal, face=face,
                        verification=Verification(Verdict.UNKNOWN_ISSUER, Verdict.NOT_SUPPORTED,
                                                  Verdict.NOT_SUPPORTED),
                        data_groups_read=(1, 2, 13) if face else (1, 13), access_protocol="BAC")


class SimulatedIdCardBackend(SingleDeviceBackend):
    name = "sim-idcard"
    family = DeviceFamily.IDCARD
    device_name = "Simulated ID-card reader"

    def make_device(self, descriptor: DeviceDescriptor) -> Device:
        return SimulatedIdCardReader(descriptor, self._ctx)
