from __future__ import annotations

import io
import logging

from agent.logs import JsonFormatter, RedactingFilter, redact


def test_redaction_removes_card_like_data() -> None:
    mrz = "IDVNM2030045671001090004567<<8"
    text = redact(f"read card 001090004567 doc 203004567 mrz {mrz} key 900115 300115 201231 ok")
    for secret in ("001090004567", "203004567", mrz, "900115"):
        assert secret not in text
    assert "read card" in text
    assert redact(repr(b"\xff\xd8\xff\xe0" * 10)).count("<redacted>") >= 1
    assert redact("device printer-7d43c8507dba state ready") == "device printer-7d43c8507dba state ready"


def test_filter_redacts_arguments_and_exceptions() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("card %s read", "001090004567")
        try:
            raise ValueError("bad id 001090004567")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "001090004567" not in out
    assert '"level": "warning"' in out
