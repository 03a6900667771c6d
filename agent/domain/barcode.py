"""Barcode / QR scanners."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BarcodeScan:
    """One scan as the scanner delivered it. ``symbology`` is empty for keyboard-wedge devices."""

    text: str
    symbology: str = ""
    timestamp: float = 0.0

    def __repr__(self) -> str:
        return f"BarcodeScan(<{len(self.text)} chars redacted>)"


@dataclass(frozen=True, slots=True)
class CccdQrPayload:
    """Fields of the QR code on a CCCD chip ID card. Dates are ISO ``YYYY-MM-DD``."""

    id_number: str
    old_id_number: str
    full_name: str
    date_of_birth: str
    sex: str
    address: str
    issue_date: str
    extra: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return "CccdQrPayload(<redacted>)"
