"""Which config file a ``centre-agent`` subcommand reads: one rule for all of them.

1. ``--config FILE`` when given;
2. else ``$CENTRE_AGENT_CONFIG`` when set (empty: the built-in defaults, no file; tests
   set it so that a package installed on the machine never leaks into them);
3. else the installed config, ``/etc/centre-agent/agent.toml``, when it exists;
4. else the built-in defaults.

A file named by 1 or 2 must exist; the installed one is only used when it is there.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.config import AgentConfig, load_config

INSTALLED_CONFIG = Path("/etc/centre-agent/agent.toml")
CONFIG_ENV = "CENTRE_AGENT_CONFIG"
CONFIG_HELP = (f"TOML config file (default: ${CONFIG_ENV}, else {INSTALLED_CONFIG} when it exists, "
               "else built-in defaults)")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=CONFIG_HELP)


def config_path(explicit: str | None, environ: dict[str, str] | None = None,
                installed: Path = INSTALLED_CONFIG) -> str | None:
    """The file to read, or ``None`` for the built-in defaults."""
    if explicit is not None:
        return explicit
    env = os.environ if environ is None else environ
    if CONFIG_ENV in env:
        return env[CONFIG_ENV] or None
    return str(installed) if installed.exists() else None


def load_agent_config(explicit: str | None) -> AgentConfig:
    """Load the config the rule above names (``ConfigError`` with a one-line message on a bad file)."""
    return load_config(config_path(explicit))
