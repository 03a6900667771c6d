"""``centre-agent devices`` and ``centre-agent watch``."""

from __future__ import annotations

import argparse

from agent.cli.output import device_json, emit_json, event_json, run_client
from agent.client import AgentClient
from centre.agent.v1 import agent_pb2 as apb
from centre.agent.v1 import devices_pb2 as dpb


def add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--socket", help="agent socket (default: $CENTRE_AGENT_SOCKET or /run/centre-agent/agent.sock)")
    p.add_argument("--client-id", default="centre-agent-cli", help="client id for leases and audit")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("devices", help="list devices of the running agent")
    add_client_options(p)
    p.add_argument("--all", action="store_true", help="include devices that are gone")
    p.set_defaults(handler=cmd_devices)
    w = sub.add_parser("watch", help="print the agent's events as they happen")
    add_client_options(w)
    w.set_defaults(handler=cmd_watch)


def cmd_devices(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with AgentClient.connect(args.socket, args.client_id) as client:
            reply = await client.devices.ListDevices(dpb.ListDevicesRequest(include_gone=args.all), timeout=10)
            health = None if reply.devices or args.json else await client.agent.GetHealth(
                apb.GetHealthRequest(), timeout=10)
        rows = [device_json(d) for d in reply.devices]
        if args.json:
            emit_json(rows)
        elif health is not None:
            print(no_devices_line(health))
        else:
            for r in rows:
                card = "  card on the reader" if r.get("card_present") else ""
                holder = f"  leased by {r['lease_holder']}" if r["lease_holder"] else ""
                print(f"{r['id']:<26} {r['family']:<12} {r['state']:<8} {r['name']}{card}{holder}")
        return 0
    return run_client(go)


def no_devices_line(health: apb.AgentHealth) -> str:
    """What ``devices`` says when the agent has found nothing: which backends look, and what next."""
    if health.backends:
        running = f"backends running: {', '.join(health.backends)}"
    else:
        running = "no driver backend is running (enable them in [drivers.*] of the agent's config)"
    failed = f"; failed to start: {'; '.join(health.backend_errors)}" if health.backend_errors else ""
    return (f"no device found ({running}{failed}); "
            "check cables and power, then run `centre-agent doctor`")


def cmd_watch(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with AgentClient.connect(args.socket, args.client_id) as client:
            stream = client.devices.WatchEvents(dpb.WatchEventsRequest(initial_snapshot=True))
            async for event in stream:
                row = event_json(event)
                if row["kind"] == "heartbeat":
                    continue
                if args.json:
                    emit_json(row)
                else:
                    dev = row.get("device", {})
                    print(f"{row['time']} #{row['seq']} {row['kind']:<22} {row['device_id']} "
                          f"{dev.get('state', '')} {dev.get('name', '')}", flush=True)
        return 0
    return run_client(go)
