"""``centre-agent pair``: issue, list and revoke the pairing tokens of portal origins.

Works on the state directory directly (the running agent notices changes on
its next call), so it needs the same file permissions as the agent, not a
running agent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from agent.api.pairing import PairingStore
from agent.cli.config_file import add_config_option, load_agent_config
from agent.config import normalize_origin
from agent.errors import AgentError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pair", help="pair a portal origin with this agent (issue, list, revoke tokens)")
    add_config_option(p)
    p.add_argument("--state-dir", help="state directory (overrides agent.state_dir)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--origin", metavar="URL",
                       help="issue a new token for this portal origin (replaces any old one)")
    group.add_argument("--list", action="store_true", help="list paired origins")
    group.add_argument("--revoke", metavar="ORIGIN", help="revoke the token of this origin")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    p.set_defaults(handler=cmd_pair)


def cmd_pair(args: argparse.Namespace) -> int:
    try:
        state_dir = args.state_dir or load_agent_config(args.config).agent.state_dir
        store = PairingStore(state_dir)
        if args.origin:
            token = store.issue(args.origin)
            origin = normalize_origin(args.origin)
            if args.json:
                print(json.dumps({"origin": origin, "token": token}))
            else:
                print(f"paired {origin}\ntoken: {token}\n"
                      "Give this token to the portal (it is shown once; the agent stores only its hash). "
                      "The origin must also be listed in [web] allowed_origins.")
            return 0
        if args.list:
            rows = [{"origin": p.origin, "created_at": dt.datetime.fromtimestamp(p.created_at, dt.UTC).isoformat()}
                    for p in store.list()]
            if args.json:
                print(json.dumps(rows))
            else:
                for row in rows:
                    print(f"{row['origin']}  paired {row['created_at']}")
            return 0
        if store.revoke(args.revoke):
            print(f"revoked {args.revoke}")
            return 0
        print(f"centre-agent: {args.revoke} is not paired", file=sys.stderr)
        return 1
    except AgentError as exc:
        print(f"centre-agent: {exc.message}", file=sys.stderr)
        return 2
