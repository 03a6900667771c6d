"""Structured logging to stderr or journald (``agent.log_target``), with a redaction rule.

Drivers and the core never log personal data in the first place; the redaction
filter is the safety net: digit runs as long as an ID number, MRZ-like lines and
long binary-looking blobs are replaced before a record is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_PATTERNS = (
    re.compile(r"[A-Z0-9<]{2}[A-Z0-9<]{26,}"),  # MRZ lines (TD1 30, TD3 44 characters)
    re.compile(r"(?<![\w.])\d{9,}(?![\w.])"),  # ID and document numbers, phone numbers
    re.compile(r"\b\d{6}\b(?=.*\b\d{6}\b.*\b\d{6}\b)"),  # three YYMMDD dates together: a BAC key
    re.compile(r"(?:\\x[0-9a-f]{2}){8,}"),  # bytes reprs
    re.compile(r"\b[0-9a-fA-F]{64,}\b"),  # hex blobs
    re.compile(r"[A-Za-z0-9+/]{80,}={0,2}"),  # base64 blobs (images, templates)
)

REDACTED = "<redacted>"


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Render the message once, redact it, and drop the arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("device_id", "operation", "client_id", "outcome"):
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", target: str = "stderr",
                  identifier: str = "centre-agent") -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if target == "journald":
        from agent.journal import StructuredJournalHandler  # systemd-python only when asked for

        # journald records time, level and unit itself: no timestamp formatting here
        handler = StructuredJournalHandler(identifier)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(RedactingFilter())
        if fmt == "json":
            handler.setFormatter(JsonFormatter())
        else:
            formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            formatter.converter = time.gmtime
            handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("grpc", "asyncio", "zeroconf", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
