"""``centre-agent enroll``: give this PC its identity with the gateway (idempotent).

    centre-agent enroll --gateway HOST:PORT (--token T | --token-file F) [--ca FILE] [--centre CODE]

The token is used once and never stored; a ``--token-file`` is overwritten and deleted
after a successful enrolment. Exit codes: 0 enrolled (or already), 1 refused or
unreachable (nothing written), 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from agent import __version__
from agent.cli.config_file import add_config_option, load_agent_config
from agent.errors import AgentError, ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("enroll", help="enrol this PC with the centre gateway (mTLS identity)")
    p.add_argument("--gateway", required=True, help="HOST:PORT of the gateway's enrolment port")
    p.add_argument("--token", help="enrolment token from `centre-gateway token create`")
    p.add_argument("--token-file", help="file holding the token (wiped after a successful enrolment)")
    p.add_argument("--ca", default="", help="PEM CA of the gateway (default: the system trust store)")
    p.add_argument("--centre", default="", help="centre code expected (refused if the token is for another)")
    add_config_option(p)
    p.add_argument("--state-dir", help="state directory (overrides agent.state_dir)")
    p.set_defaults(handler=cmd_enroll)


def _wipe(path: Path) -> None:
    try:
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
    except OSError as exc:
        print(f"centre-agent: warning: could not wipe {path}: {exc.strerror}", file=sys.stderr)


def cmd_enroll(args: argparse.Namespace) -> int:
    from agent.provisioning.enroll import enroll
    from agent.provisioning.identity import IdentityStore, machine_facts

    try:
        config = load_agent_config(args.config)
        state_dir = Path(args.state_dir or config.agent.state_dir)
        if bool(args.token) == bool(args.token_file):
            raise ConfigError("give exactly one of --token and --token-file")
        token = args.token or ""
        if args.token_file:
            try:
                token = Path(args.token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{args.token_file}: cannot read ({exc.strerror})") from None
        facts = machine_facts()
    except ConfigError as exc:
        print(f"centre-agent: {exc.message}", file=sys.stderr)
        return 2
    try:
        outcome = enroll(IdentityStore(state_dir), args.gateway, token, facts, ca_file=args.ca,
                         expected_centre=args.centre, version=__version__)
    except ConfigError as exc:
        print(f"centre-agent: {exc.message}", file=sys.stderr)
        return 2
    except AgentError as exc:
        print(f"centre-agent: enrolment failed: {exc.message} (nothing was written)", file=sys.stderr)
        return 1
    info = outcome.info
    if outcome.already:
        print(f"already enrolled as {info.agent_id} in centre {info.centre} ({info.province}); certificate valid"
              + (f" [{outcome.detail}]" if outcome.detail else ""))
    else:
        print(f"enrolled as {info.agent_id} in centre {info.centre} ({info.province}), status {info.status}"
              + (f" [{outcome.detail}]" if outcome.detail else ""))
        if info.status == "pending":
            print("this PC is not pre-registered: an operator must run `centre-gateway approve "
                  f"{info.agent_id}` before it reports")
    if args.token_file:
        _wipe(Path(args.token_file))
    return 0
