"""Printers: capabilities, documents, jobs, live status."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.domain.device import Condition, SupplyLevel


class PrinterState(enum.StrEnum):
    IDLE = "idle"
    PROCESSING = "processing"
    STOPPED = "stopped"
    OFFLINE = "offline"


class PrintJobState(enum.StrEnum):
    """IPP job states (RFC 8011 4.3.7) plus the agent's own ``queued`` before submission."""

    QUEUED = "queued"
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    ABORTED = "aborted"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (PrintJobState.COMPLETED, PrintJobState.ABORTED, PrintJobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class PrinterCapabilities:
    document_formats: tuple[str, ...]  # MIME types the printer takes
    color: bool = False
    duplex: bool = False
    media: tuple[str, ...] = ()
    max_copies: int = 1


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    state: PrinterState
    conditions: tuple[Condition, ...] = ()  # printer-state-reasons, suffix stripped into severity
    supplies: tuple[SupplyLevel, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class PrintDocument:
    data: bytes
    mime_type: str
    name: str = "document"
    copies: int = 1
    duplex: bool = False
    media: str = ""

    def __repr__(self) -> str:
        return f"PrintDocument({self.mime_type}, <{len(self.data)} bytes>)"


@dataclass(frozen=True, slots=True)
class PrintJobStatus:
    """Status of a job at the printer. ``printer_job_id`` is the printer's own id."""

    state: PrintJobState
    printer_job_id: str = ""
    reasons: tuple[str, ...] = ()
    pages_printed: int = 0
    message: str = ""
