"""Fingerprint sensors: captures, templates and match results (returned to callers, never kept)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TemplateFormat(enum.StrEnum):
    """How a template's bytes are to be read.

    ``libfprint`` is FpPrint's own serialisation; ``iso19794_2`` the ISO/IEC 19794-2
    minutiae record; ``zfm`` a ZFM module's character file; vendors may add theirs.
    """

    LIBFPRINT = "libfprint"
    ISO19794_2 = "iso19794_2"
    ZFM = "zfm"
    VENDOR = "vendor"


@dataclass(frozen=True, slots=True)
class FingerprintTemplate:
    format: TemplateFormat
    data: bytes
    finger: str = ""  # "right-index", ...; empty when unknown

    def __repr__(self) -> str:
        return f"FingerprintTemplate({self.format}, <{len(self.data)} bytes redacted>)"


@dataclass(frozen=True, slots=True)
class FingerprintImage:
    """8-bit greyscale image, row-major. ``quality`` 0-100 (NFIQ-like), -1 when unknown."""

    width: int
    height: int
    pixels: bytes
    resolution_dpi: int = 500
    quality: int = -1

    def __repr__(self) -> str:
        return f"FingerprintImage({self.width}x{self.height}, <redacted>)"


@dataclass(frozen=True, slots=True)
class EnrollProgress:
    """One step of an enrolment: ``stage`` of ``stages`` done; ``retry_reason`` if it was not taken."""

    stage: int
    stages: int
    retry_reason: str = ""  # "TOO_SHORT", "CENTER_FINGER", "REMOVE_AND_RETRY", "POOR_QUALITY"


@dataclass(frozen=True, slots=True)
class MatchResult:
    matched: bool
    score: int = -1  # backend's score when it has one


@dataclass(frozen=True, slots=True)
class IdentifyResult:
    """``index`` is the position of the matching template in the caller's list, -1 for none."""

    index: int
    score: int = -1


@dataclass(frozen=True, slots=True)
class FingerprintCapabilities:
    """What a sensor backend can do. ``enroll_stages`` is how many presses an enrolment takes."""

    template_formats: tuple[TemplateFormat, ...]
    enroll_stages: int
    can_capture_image: bool
    can_identify: bool
    max_identify_templates: int = 0
    image_width: int = 0
    image_height: int = 0
