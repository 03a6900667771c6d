"""What a counter must have: the families the doctor expects, and the inventory checks.

A centre states them in ``[doctor] expect``; without it, every family whose backend is on is
expected. A missing expected family is a failure, and so is a PC with no device at all: the
doctor is the installer's acceptance test, so "nothing there" never passes.
"""

from __future__ import annotations

from collections import Counter

from agent.config import AgentConfig
from agent.doctor.checks import Outcome, Report
from agent.domain.device import DeviceFamily
from agent.drivers.registry import BACKEND_FAMILY, SIMULATED_BACKENDS


def expected_families(config: AgentConfig, *, simulate: bool = False) -> tuple[str, ...]:
    """``[doctor] expect``, else the families of the backends that are on (all five with ``--simulate``)."""
    if config.doctor.expect:
        wanted = set(config.doctor.expect)
    else:
        backends = [*config.enabled_backends(), *(SIMULATED_BACKENDS if simulate else ())]
        wanted = {BACKEND_FAMILY[name].value for name in backends if name in BACKEND_FAMILY}
    return tuple(f.value for f in DeviceFamily if f.value in wanted)


def _backends_of(family: str, running: list[str]) -> list[str]:
    return [name for name in running if name in BACKEND_FAMILY and BACKEND_FAMILY[name].value == family]


def check_inventory(report: Report, found: list[str], expected: tuple[str, ...], running: list[str]) -> None:
    """One check for the devices found at all, then one per family: FAIL when expected and absent.

    ``found`` holds the family of every device the agent lists; ``running`` the backends running.
    """
    counts = Counter(found)
    if not found:
        report.add("devices found", Outcome.FAIL,
                   "no device found: are the devices plugged in and powered, is a backend on for each "
                   f"([drivers.*] in the config; running: {', '.join(running) or 'none'}), and did the udev "
                   "rules give them to the agent (udevadm trigger --dry-run --verbose --tag-match=centre-agent)?")
    else:
        report.add("devices found", Outcome.PASS, ", ".join(f"{n} {f}" for f, n in sorted(counts.items())))
    for family in (f.value for f in DeviceFamily):
        name = f"{family}: found"
        backends = _backends_of(family, running)
        if counts[family]:
            report.add(name, Outcome.PASS, f"{counts[family]} device(s)")
        elif family in expected:
            hint = (f"check it is plugged in and its backend sees it (running: {', '.join(backends)})" if backends
                    else "no backend of this family is running: turn one on with [drivers.<backend>] "
                         "and check the agent's log")
            report.add(name, Outcome.FAIL, f"no {family} device found, and this counter must have one "
                                           f"([doctor] expect): {hint}")
        else:
            report.add(name, Outcome.SKIP, "none, and not expected at this counter")
