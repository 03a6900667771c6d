"""``centre-agent`` command line: the daemon and the client subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from agent.cli import devices, doctor, families, pairing, run

#: one module per group of subcommands; each has ``register(subparsers)``
COMMAND_MODULES: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    run.register, devices.register, families.register, doctor.register, pairing.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centre-agent", description="Device agent for service-centre counters")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMAND_MODULES:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
