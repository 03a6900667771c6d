"""Logging straight to journald, with the audit fields as journal fields.

``agent.log_target = "journald"`` sends each record with ``MESSAGE``,
``PRIORITY``, ``LOGGER`` and, when the caller gave them (``extra={...}``), the
structured fields ``DEVICE_ID``, ``OPERATION``, ``CLIENT_ID`` and ``OUTCOME``,
so IT staff can ``journalctl -u centre-agent OUTCOME=failed DEVICE_ID=...``.

Only those fields are sent. The stock ``JournalHandler`` forwards every
attribute of the record, which would carry anything a caller put in ``extra``
(a payload, a template) past the redaction filter; here nothing but the listed
fields leaves the process, and their values go through the same redaction as
the message.
"""

from __future__ import annotations

import logging
from typing import Any

from systemd import journal

from agent.logs import RedactingFilter, redact

#: record attributes (``extra={...}``) sent as journal fields, upper-cased
STRUCTURED_FIELDS = ("device_id", "operation", "client_id", "outcome")


class StructuredJournalHandler(journal.JournalHandler):  # type: ignore[misc]  # systemd-python is untyped
    """A ``JournalHandler`` that sends a fixed set of fields, redacted."""

    def __init__(self, identifier: str, level: int = logging.NOTSET, sender: Any = None) -> None:
        kwargs: dict[str, Any] = {"SYSLOG_IDENTIFIER": identifier}
        if sender is not None:
            kwargs["sender_function"] = sender
        super().__init__(level, **kwargs)
        self.addFilter(RedactingFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = dict(self._extra)
            fields.update(
                PRIORITY=str(self.map_priority(record.levelno)),
                LOGGER=record.name,
                CODE_FILE=record.pathname,
                CODE_LINE=record.lineno,
                CODE_FUNC=record.funcName,
            )
            for name in STRUCTURED_FIELDS:
                value = getattr(record, name, None)
                if value is not None:
                    fields[name.upper()] = redact(str(value))
            if record.exc_text:
                fields["EXCEPTION_TEXT"] = record.exc_text  # already redacted by the filter
            self.send(self.format(record), **fields)
        except Exception:
            self.handleError(record)
