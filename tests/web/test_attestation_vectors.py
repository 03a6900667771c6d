"""The Python and TypeScript verifiers agree: both check the committed vectors, and Node checks a fresh
set the agent code makes now (tests/web/attestation_vectors.py)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.attestation_verify import verify_card_read
from agent.errors import AttestationRejectedError
from tests.web.attestation_vectors import COMMITTED, write
from tests.web.conftest import ROOT

JS = ROOT / "clients" / "js"


def _python_outcome(case: dict[str, Any]) -> str:
    def raw(text: str) -> bytes:
        return base64.b64decode(text)

    try:
        verify_card_read(raw(case["payload"]), raw(case["signature"]), [raw(c) for c in case["chain"]],
                         ca_certificate=case["ca_pem"].encode(), expected_challenge=raw(case["challenge"]),
                         expected_origin=case["origin"], max_age=dt.timedelta(milliseconds=case["max_age_ms"]),
                         now=dt.datetime.fromtimestamp(case["now_ms"] / 1000, dt.UTC),
                         trusted_self_signed=case["trusted_self_signed"],
                         face_jpeg=raw(case["face"]) if case["face"] is not None else None)
    except AttestationRejectedError as exc:
        return exc.reason
    return "ok"


CASES = json.loads(COMMITTED.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_verifier_on_the_committed_vectors(case: dict[str, Any]) -> None:
    assert _python_outcome(case) == case["expect"]


def _node(vectors: Path | None) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node is not None, "node is required (scripts/apt/web.txt)"
    assert (JS / "dist" / "attestation.js").is_file(), "run clients/js/install.sh first (builds dist/)"
    env = dict(os.environ)
    env.pop("ATTESTATION_VECTORS", None)
    if vectors is not None:
        env["ATTESTATION_VECTORS"] = str(vectors)
    return subprocess.run([node, "--test", "tests/attestation.test.mjs"], cwd=JS, capture_output=True, text=True,
                          env=env, timeout=120)


def test_typescript_verifier_on_the_committed_vectors() -> None:
    out = _node(None)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"# pass {len(CASES) + 1}" in out.stdout


def test_typescript_verifier_on_what_the_agent_signs_now(tmp_path: Path) -> None:
    fresh = tmp_path / "vectors.json"
    write(fresh)
    cases = json.loads(fresh.read_text(encoding="utf-8"))
    assert [_python_outcome(c) for c in cases] == [c["expect"] for c in cases]
    out = _node(fresh)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"# pass {len(cases) + 1}" in out.stdout
