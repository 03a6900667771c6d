"""Check results and the runner that collects them."""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


class Outcome(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    SKIP = "skip"  # not applicable here (no such device), not a failure
    WARN = "warn"  # works, but something needs attention


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.outcome is not Outcome.FAIL for r in self.results)

    def add(self, name: str, outcome: Outcome, detail: str = "", seconds: float = 0.0) -> CheckResult:
        result = CheckResult(name, outcome, detail, round(seconds, 3))
        self.results.append(result)
        return result

    async def run(self, name: str, check: Callable[[], Awaitable[tuple[Outcome, str]]]) -> CheckResult:
        """Run one check; an exception is a failure with the error's one-line description."""
        started = time.perf_counter()
        try:
            outcome, detail = await check()
        except Exception as exc:
            details = getattr(exc, "details", None)
            text = details() if callable(details) else str(exc)
            outcome, detail = Outcome.FAIL, f"{type(exc).__name__}: {text}".strip()
        return self.add(name, outcome, detail, time.perf_counter() - started)

    def as_json(self) -> dict[str, object]:
        return {"passed": self.passed,
                "checks": [{"name": r.name, "outcome": r.outcome.value, "detail": r.detail, "seconds": r.seconds}
                           for r in self.results]}
