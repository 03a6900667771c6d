"""Document scanners: capabilities, settings, pages, documents."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ScanSource(enum.StrEnum):
    FLATBED = "flatbed"
    ADF = "adf"
    ADF_DUPLEX = "adf-duplex"


class ColorMode(enum.StrEnum):
    COLOR = "color"
    GRAY = "gray"
    BW = "bw"


class PageFormat(enum.StrEnum):
    """Encoding of one scanned page as it leaves the driver."""

    JPEG = "image/jpeg"
    PNG = "image/png"
    RAW_GRAY8 = "image/x-raw-gray8"
    RAW_RGB8 = "image/x-raw-rgb8"


@dataclass(frozen=True, slots=True)
class ScannerCapabilities:
    sources: tuple[ScanSource, ...]
    resolutions: tuple[int, ...]
    color_modes: tuple[ColorMode, ...]
    max_width_mm: float
    max_height_mm: float
    formats: tuple[PageFormat, ...] = (PageFormat.JPEG,)


@dataclass(frozen=True, slots=True)
class ScanSettings:
    source: ScanSource = ScanSource.FLATBED
    resolution: int = 300
    color_mode: ColorMode = ColorMode.COLOR
    width_mm: float = 210.0
    height_mm: float = 297.0
    page_format: PageFormat = PageFormat.JPEG  # what the client wants per page


@dataclass(frozen=True, slots=True)
class ScannedPage:
    """One page. ``data`` is encoded per ``format``; raw formats carry width/height/dpi."""

    index: int
    format: PageFormat
    data: bytes
    width: int
    height: int
    resolution: int

    def __repr__(self) -> str:
        return f"ScannedPage(#{self.index}, {self.format}, {self.width}x{self.height}, <redacted>)"
