"""``centre-agent discover``: list the agents advertising on this LAN segment (installer's view).

Discovery shows who is there and who still needs enrolling; it never establishes trust.
"""

from __future__ import annotations

import argparse
import asyncio

from agent.cli.output import emit_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("discover", help="list centre agents on this LAN segment (mDNS _centre-agent._tcp)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to listen (default 3)")
    p.add_argument("--interface", action="append", default=[],
                   help="IPv4 address of an interface to browse on (repeatable; default all)")
    p.set_defaults(handler=cmd_discover)


def cmd_discover(args: argparse.Namespace) -> int:
    from agent.provisioning.discovery import browse

    adverts = asyncio.run(browse(max(0.2, args.timeout), list(args.interface)))
    if args.json:
        emit_json({"agents": [a.as_json() for a in adverts]})
        return 0
    print(f"{'HOST':<24} {'ADDRESS':<16} {'VERSION':<8} {'ENROLLED':<8} {'CENTRE':<14} AGENT")
    for a in adverts:
        print(f"{a.host[:24]:<24} {(a.addresses[0] if a.addresses else '-'):<16} {a.version:<8} "
              f"{'yes' if a.enrolled else 'no':<8} {a.centre or '-':<14} {a.agent_id or '-'}")
    print(f"{len(adverts)} agent(s) found")
    return 0
