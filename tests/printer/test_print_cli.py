"""End to end: ``centre-agent print FILE --json`` against ``centre-agent run --simulate``, whose
printer is the emulated IPP printer driven by the real IPP backend through the core's queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.printer.documents import one_page_pdf
from tests.support.agent_process import AgentProcess, start_agent


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = start_agent(tmp_path_factory.mktemp("print-agent"))
    try:
        yield process
    finally:
        process.stop()


def test_print_a_pdf_to_completion(agent: AgentProcess, tmp_path: Path) -> None:
    pdf = tmp_path / "receipt.pdf"
    pdf.write_bytes(one_page_pdf("CANARY-CLI-PRINT-4242"))
    result = agent.cli("print", str(pdf), "--json", "--copies", "2")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["state"] == "completed"
    assert job["job_id"]
    assert job["printer_job_id"]
    assert isinstance(job["reasons"], list)
    assert "CANARY-CLI-PRINT-4242" not in agent.log()


def test_unsupported_format_is_refused(agent: AgentProcess, tmp_path: Path) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("plain text")
    result = agent.cli("print", str(doc), "--json")
    assert result.returncode != 0
    assert "text/plain" in result.stderr
