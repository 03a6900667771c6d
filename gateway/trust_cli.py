"""``centre-gateway trust``: the trust bundle served to agents (on the gateway's storage).

    centre-gateway trust import FILE        a CSCA certificate, an ICAO master list or a DS CRL
    centre-gateway trust list [--json]      what is served: subject, country, serial, validity, source
    centre-gateway trust remove SELECTOR    by fingerprint (8+ hex digits) or serial
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agent.errors import InvalidRequestError
from gateway.config import GatewayConfig
from gateway.config_file import add_config_option
from gateway.provision_cli import give_to_service
from gateway.store import open_store
from gateway.store.trust import TrustRegistry
from gateway.trust import TrustEntry, entries_from_file

COMMANDS = ("trust",)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trust = sub.add_parser("trust", help="trust bundle for passive authentication (CSCAs, master lists, CRLs)")
    actions = trust.add_subparsers(dest="action", required=True)
    imp = actions.add_parser("import", help="add a CSCA certificate, an ICAO master list or a DS CRL")
    imp.add_argument("file", type=Path)
    listing = actions.add_parser("list", help="what the gateway serves to agents")
    listing.add_argument("--json", action="store_true")
    remove = actions.add_parser("remove", help="remove entries by fingerprint (8+ hex digits) or serial")
    remove.add_argument("selector")
    for p in (imp, listing, remove):
        add_config_option(p)


async def _with_trust(config: GatewayConfig, work: Callable[[TrustRegistry], Awaitable[Any]]) -> Any:
    store = open_store(config.storage_backend, path=config.storage_path, dsn=config.storage_dsn, pool_size=1)
    await store.open()
    try:
        return await work(TrustRegistry(store))
    finally:
        await store.close()
        if config.storage_backend == "sqlite":
            give_to_service(Path(config.storage_path))


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d") if ms else "-"


def run(args: argparse.Namespace, config: GatewayConfig) -> int:
    now_ms = int(time.time() * 1000)
    if args.action == "import":
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise InvalidRequestError(f"{args.file}: {exc.strerror}") from exc

        async def add(registry: TrustRegistry) -> tuple[list[TrustEntry], int, str]:
            bundle = await registry.bundle()
            entries = entries_from_file(data, args.file.name, list(bundle.entries))
            added = await registry.add(entries, now_ms)
            return entries, added, (await registry.bundle()).version

        entries, added, version = asyncio.run(_with_trust(config, add))
        print(f"{args.file.name}: {len(entries)} {entries[0].kind} entr{'y' if len(entries) == 1 else 'ies'}, "
              f"{added} new; bundle version {version}")
    elif args.action == "remove":
        removed = asyncio.run(_with_trust(config, lambda r: r.remove(args.selector, now_ms)))
        for entry in removed:
            print(f"removed {entry.kind} {entry.subject} (serial {entry.serial})")
    else:
        bundle = asyncio.run(_with_trust(config, lambda r: r.bundle()))
        _print(bundle.version, list(bundle.entries), args.json)
    return 0


def _print(version: str, entries: list[TrustEntry], as_json: bool) -> None:
    items = [{"kind": e.kind, "subject": e.subject, "country": e.country, "serial": e.serial,
              "not_before": _day(e.not_before_ms), "not_after": _day(e.not_after_ms), "source": e.source,
              "fingerprint": e.fingerprint} for e in entries]
    if as_json:
        print(json.dumps({"version": version, "entries": items}, indent=2))
        return
    print(f"bundle version {version}: {len(items)} entries")
    for i in items:
        print(f"{i['kind']:<5} {i['country']:<3} {i['serial'][:20]:<20} {i['not_before']} .. {i['not_after']}  "
              f"{i['fingerprint'][:16]}  {i['subject']}  [{i['source']}]")
