"""Print a one-page PDF to completion: the agent's IPP backend vs CUPS' ipptool.

Both print to the same ippeveprinter (fake print command, private D-Bus + avahi on lo)
and both follow the job with Get-Job-Attributes at the same interval until it ends.
Prints the median of each and their ratio (target <= 1.2x).

    .venv/bin/python bench/print_ipp.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.domain.printer import PrintDocument
from agent.drivers.printer.ipp_backend import IppBackend, IppPrinter
from tests.printer.context import PrinterTestContext
from tests.printer.documents import one_page_pdf
from tests.printer.peers import IppEvePrinter, MdnsStack, running

POLL = 0.05  # both sides ask for the job state this often

WAIT_TEST = f"""{{
  NAME "Print-Job"
  OPERATION Print-Job
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR language attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR name requesting-user-name $user
  ATTR mimeMediaType document-format application/pdf
  FILE $filename
  STATUS successful-ok
  EXPECT job-id
}}
{{
  NAME "Wait for the job"
  OPERATION Get-Job-Attributes
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR language attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR integer job-id $job-id
  STATUS successful-ok
  EXPECT job-state WITH-VALUE 9 REPEAT-NO-MATCH
  DELAY "0,{POLL}"
}}
"""


def ipptool_once(uri: str, pdf: Path, test: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(["ipptool", "-q", "-f", str(pdf), uri, str(test)], check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit("ipptool failed")
    return elapsed


async def agent_rounds(uri: str, pdf: bytes, rounds: int, workdir: Path) -> list[float]:
    ctx = PrinterTestContext(workdir)
    backend = IppBackend(ctx, {"uris": [uri], "browse": False})
    await backend.start()
    while not ctx.found:
        await asyncio.sleep(0.01)
    printer = ctx.found[0]
    assert isinstance(printer, IppPrinter)
    await printer.open()
    times = []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            # the whole path a client's print takes in the driver: submit, follow to the end
            job_id = await printer.submit(PrintDocument(pdf, "application/pdf", name="bench"))
            while True:
                await asyncio.sleep(POLL)
                status = await printer.job_status(job_id)
                if status.state.terminal:
                    break
            times.append(time.perf_counter() - start)
            if status.state.value != "completed":
                raise SystemExit(f"job ended {status.state}")
    finally:
        await backend.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mdns = MdnsStack(work / "mdns")
        with running(mdns):
            printer = IppEvePrinter(work / "ippeve", mdns.bus_address)
            with running(printer):
                pdf = one_page_pdf()
                pdf_path = work / "page.pdf"
                pdf_path.write_bytes(pdf)
                test = work / "print-and-wait.test"
                test.write_text(WAIT_TEST)
                ipptool_once(printer.uri, pdf_path, test)  # warm-up
                asyncio.run(agent_rounds(printer.uri, pdf, 1, work))
                tool, agent = [], []
                for _ in range(3):  # interleave so both see the same machine load
                    tool += [ipptool_once(printer.uri, pdf_path, test) for _ in range(args.rounds // 3)]
                    agent += asyncio.run(agent_rounds(printer.uri, pdf, args.rounds // 3, work))
    tool_median, agent_median = statistics.median(tool), statistics.median(agent)
    print(f"ipptool Print-Job + wait: median {tool_median * 1000:.1f} ms over {len(tool)}")
    print(f"agent IPP backend:        median {agent_median * 1000:.1f} ms over {len(agent)}")
    ratio = agent_median / tool_median
    print(f"ratio agent/ipptool: {ratio:.2f}x (target <= 1.2x) {'OK' if ratio <= 1.2 else 'OVER'}")


if __name__ == "__main__":
    main()
