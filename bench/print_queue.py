"""100 print jobs queued at once from 5 clients against ``centre-agent run --simulate``
(emulated IPP printer, real IPP backend, the core's per-printer queue).

Checks: all complete, in order per client (the printer's job ids rise in each client's
submission order), none lost. Prints the time per job through the agent (the emulated
printer takes 0.05 s per job; the IPP backend polls a running job every 0.1 s).

    .venv/bin/python bench/print_queue.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.client import AgentClient
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import printer_pb2 as ppb
from tests.printer.documents import one_page_pdf
from tests.support.agent_process import start_agent

CLIENTS, PER_CLIENT = 5, 20


async def one_client(socket: Path, index: int, pdf: bytes) -> list[ppb.PrintJob]:
    async with AgentClient.connect(str(socket), f"bench-client-{index}") as client:
        submitted = []
        for n in range(PER_CLIENT):
            request = ppb.PrintRequest(device=cpb.DeviceRef(device_id=""), document=pdf,
                                       mime_type="application/pdf", name=f"c{index}-{n}",
                                       request_id=uuid.uuid4().hex)
            submitted.append(await client.printer.Print(request, timeout=60))
        finished = []
        for job in submitted:
            last = job
            async for update in client.printer.WatchPrintJob(ppb.WatchPrintJobRequest(job_id=job.job_id)):
                last = update
            finished.append(last)
        return finished


async def run(socket: Path) -> tuple[float, list[list[ppb.PrintJob]]]:
    pdf = one_page_pdf()
    start = time.perf_counter()
    results = await asyncio.gather(*(one_client(socket, i, pdf) for i in range(CLIENTS)))
    return time.perf_counter() - start, list(results)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        agent = start_agent(Path(tmp))
        try:
            elapsed, results = asyncio.run(run(agent.socket))
        finally:
            agent.stop()
    jobs = [job for per_client in results for job in per_client]
    completed = [j for j in jobs if j.state == ppb.PRINT_JOB_STATE_COMPLETED]
    in_order = all(
        [int(j.printer_job_id) for j in per_client] == sorted(int(j.printer_job_id) for j in per_client)
        for per_client in results)
    distinct = len({j.printer_job_id for j in jobs})
    print(f"{len(jobs)} jobs from {CLIENTS} clients: {len(completed)} completed, "
          f"{distinct} distinct printer jobs, in order per client: {in_order}")
    print(f"all done in {elapsed:.2f} s, {elapsed / len(jobs) * 1000:.1f} ms per job")
    ok = len(completed) == CLIENTS * PER_CLIENT == distinct and in_order
    print("OK" if ok else "FAILED")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
