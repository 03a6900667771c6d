"""Which config file a ``centre-gateway`` subcommand reads: one rule for all of them.

1. ``--config FILE`` when given;
2. else ``$CENTRE_GATEWAY_CONFIG`` when set (empty: the built-in defaults, no file; tests
   set it so that a package installed on the machine never leaks into them);
3. else the installed config, ``/etc/centre-gateway/gateway.toml``, when it exists;
4. else the built-in defaults.

So ``centre-gateway token create`` on the gateway host works on the database the running
gateway uses, with no ``--config``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

INSTALLED_CONFIG = Path("/etc/centre-gateway/gateway.toml")
CONFIG_ENV = "CENTRE_GATEWAY_CONFIG"
CONFIG_HELP = (f"TOML config file (default: ${CONFIG_ENV}, else {INSTALLED_CONFIG} when it exists, "
               "else built-in defaults)")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=CONFIG_HELP)


def config_path(explicit: Path | None, environ: dict[str, str] | None = None,
                installed: Path = INSTALLED_CONFIG) -> Path | None:
    """The file to read, or ``None`` for the built-in defaults."""
    if explicit is not None:
        return explicit
    env = os.environ if environ is None else environ
    if CONFIG_ENV in env:
        return Path(env[CONFIG_ENV]) if env[CONFIG_ENV] else None
    return installed if installed.exists() else None
