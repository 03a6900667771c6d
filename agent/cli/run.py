"""``centre-agent run``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from agent.cli.config_file import add_config_option, load_agent_config
from agent.errors import ConfigError
from agent.logs import setup_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the agent daemon")
    add_config_option(p)
    p.add_argument("--socket", help="unix socket path (overrides agent.socket)")
    p.add_argument("--tcp", help="also listen on this loopback HOST:PORT (overrides agent.tcp)")
    p.add_argument("--state-dir", help="state directory (overrides agent.state_dir)")
    p.add_argument("--metrics", help="metrics HOST:PORT, '' to disable (overrides metrics.listen)")
    p.add_argument("--web", help="browser listener HOST:PORT, '' to disable (overrides web.listen)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="add a portal origin to web.allowed_origins (repeatable)")
    p.add_argument("--csca", help="directory of trusted CSCA certificates (overrides idcard.csca_dir)")
    p.add_argument("--simulate", action="store_true", help="load an emulated device of every family")
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from agent.daemon import run_agent

    try:
        config = load_agent_config(args.config)
        agent_section = config.agent
        if args.socket is not None:
            agent_section = dataclasses.replace(agent_section, socket=args.socket)
        if args.tcp is not None:
            agent_section = dataclasses.replace(agent_section, tcp=args.tcp)
        if args.state_dir is not None:
            agent_section = dataclasses.replace(agent_section, state_dir=args.state_dir)
        config = dataclasses.replace(config, agent=agent_section)
        if args.metrics is not None:
            config = dataclasses.replace(config, metrics=dataclasses.replace(config.metrics, listen=args.metrics))
        if args.web is not None or args.allow_origin:
            web = config.web
            if args.web is not None:
                web = dataclasses.replace(web, listen=args.web)
            web = dataclasses.replace(web, allowed_origins=[*web.allowed_origins, *args.allow_origin])
            config = dataclasses.replace(config, web=web)
        if args.csca is not None:
            config = dataclasses.replace(config, idcard=dataclasses.replace(config.idcard, csca_dir=args.csca))
        from agent.config import validate_semantics

        validate_semantics(config)
        setup_logging(config.agent.log_level, config.agent.log_format, config.agent.log_target)
        asyncio.run(run_agent(config, simulate=args.simulate))
    except ConfigError as exc:
        print(f"centre-agent: {exc.message}", file=sys.stderr)
        return 2
    return 0
