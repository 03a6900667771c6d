"""Operator commands for provisioning; they work on the gateway's storage directly.

    centre-gateway centre add CODE --name N --province P
    centre-gateway token create --centre CODE --uses N --ttl 8h     (prints the token once)
    centre-gateway token revoke TOKEN_ID
    centre-gateway pc add --centre CODE --serial SERIAL             (pre-registration)
    centre-gateway agents [--pending] [--json]
    centre-gateway approve AGENT
    centre-gateway revoke AGENT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agent.errors import InvalidRequestError
from gateway.config import GatewayConfig
from gateway.config_file import add_config_option
from gateway.store import open_store
from gateway.store.identity import ACTIVE, REVOKED, IdentityRegistry

COMMANDS = ("centre", "token", "pc", "agents", "approve", "revoke")
_TTL = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    match = _TTL.match(text)
    if not match or int(match.group(1)) == 0:
        raise InvalidRequestError(f"--ttl {text!r}: expected e.g. 30m, 8h, 2d")
    return int(match.group(1)) * _UNIT[match.group(2)]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add_config_option(p)
        return p

    centre = sub.add_parser("centre", help="centre registry")
    centre_sub = centre.add_subparsers(dest="action", required=True)
    add = common(centre_sub.add_parser("add", help="register a centre"))
    add.add_argument("code")
    add.add_argument("--name", required=True)
    add.add_argument("--province", required=True)
    common(centre_sub.add_parser("list", help="list centres"))
    token = sub.add_parser("token", help="enrolment tokens")
    token_sub = token.add_subparsers(dest="action", required=True)
    create = common(token_sub.add_parser("create", help="create a token (printed once, stored hashed)"))
    create.add_argument("--centre", required=True)
    create.add_argument("--uses", type=int, default=1)
    create.add_argument("--ttl", default="8h", help="lifetime, e.g. 30m, 8h, 2d")
    revoke_token = common(token_sub.add_parser("revoke", help="revoke a token by its id"))
    revoke_token.add_argument("token_id")
    pc = sub.add_parser("pc", help="pre-registration of PCs by serial")
    pc_sub = pc.add_subparsers(dest="action", required=True)
    pc_add = common(pc_sub.add_parser("add", help="pre-register a PC serial for a centre"))
    pc_add.add_argument("--centre", required=True)
    pc_add.add_argument("--serial", required=True)
    agents = common(sub.add_parser("agents", help="enrolled agents (certificate, status, doctor result)"))
    agents.add_argument("--pending", action="store_true", help="only agents awaiting approval")
    agents.add_argument("--json", action="store_true")
    for name in ("approve", "revoke"):
        p = common(sub.add_parser(name, help=f"{name} an enrolled agent"))
        p.add_argument("agent")


async def _with_registry(config: GatewayConfig, work: Callable[[IdentityRegistry], Awaitable[Any]]) -> Any:
    store = open_store(config.storage_backend, path=config.storage_path, dsn=config.storage_dsn, pool_size=1)
    await store.open()
    try:
        return await work(IdentityRegistry(store))
    finally:
        await store.close()
        if config.storage_backend == "sqlite":
            give_to_service(Path(config.storage_path))


def give_to_service(db: Path) -> None:
    """These commands run as root on the gateway host, the gateway as the owner of the database's
    directory (centre-gateway): a database file SQLite just created as root goes to that owner, or
    the service could not write it."""
    if os.geteuid() != 0:
        return
    owner = db.parent.stat()
    if (owner.st_uid, owner.st_gid) == (0, 0):
        return
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == 0:
            os.chown(path, owner.st_uid, owner.st_gid)


def run(args: argparse.Namespace, config: GatewayConfig) -> int:
    now_ms = int(time.time() * 1000)
    command = args.command
    if command == "centre" and args.action == "add":
        asyncio.run(_with_registry(config, lambda r: r.add_centre(args.code, args.name, args.province, now_ms)))
        print(f"centre {args.code} added")
    elif command == "centre":
        for code, name, province in asyncio.run(_with_registry(config, lambda r: r.centres())):
            print(f"{code:<16} {province:<6} {name}")
    elif command == "token" and args.action == "create":
        ttl = parse_ttl(args.ttl)
        token, token_id = asyncio.run(_with_registry(
            config, lambda r: r.create_token(args.centre, args.uses, now_ms + ttl * 1000, now_ms)))
        print(token)
        print(f"token id {token_id}: centre {args.centre}, {args.uses} use(s), expires in {args.ttl}; "
              "shown once, not stored in clear")
    elif command == "token":
        asyncio.run(_with_registry(config, lambda r: r.revoke_token(args.token_id)))
        print(f"token {args.token_id} revoked")
    elif command == "pc":
        asyncio.run(_with_registry(config, lambda r: r.preregister(args.serial, args.centre, now_ms)))
        print(f"PC {args.serial} pre-registered for {args.centre}")
    elif command in ("approve", "revoke"):
        status = ACTIVE if command == "approve" else REVOKED
        asyncio.run(_with_registry(config, lambda r: r.set_status(args.agent, status)))
        print(f"{args.agent}: {status}")
    else:
        _print_agents(asyncio.run(_with_registry(config, lambda r: r.enrolments(pending_only=args.pending))),
                      args.json)
    return 0


def _print_agents(rows: list[Any], as_json: bool) -> None:
    items = [{"agent_id": r.agent_id, "centre": r.centre, "province": r.province, "status": r.status,
              "flags": list(r.flags), "machine_id": r.machine.machine_id, "hostname": r.machine.hostname,
              "serial": r.machine.serial, "enrolled_ms": r.enrolled_ms, "renewed_ms": r.renewed_ms,
              "certificate_not_after_ms": r.not_after_ms, "doctor": r.doctor or None, "doctor_ms": r.doctor_ms}
             for r in rows]
    if as_json:
        print(json.dumps({"agents": items}, indent=2))
        return
    print(f"{'AGENT':<24} {'CENTRE':<14} {'STATUS':<8} {'HOST':<20} {'DOCTOR':<7} FLAGS")
    for i in items:
        doctor = "-" if not i["doctor"] else ("pass" if i["doctor"]["passed"] else "FAIL")
        print(f"{i['agent_id']:<24} {i['centre']:<14} {i['status']:<8} {i['hostname'][:20]:<20} {doctor:<7} "
              f"{','.join(i['flags'])}")
