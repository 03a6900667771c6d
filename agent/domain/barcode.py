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

