"""``centre-gateway``: run the gateway, or query a running one.

    centre-gateway run [--config FILE]       (every subcommand: default config per gateway/config_file.py)
    centre-gateway fleet [--json] [--config FILE] [--gateway HOST:PORT]
    centre-gateway devices --problem [--json] [--config FILE] [--gateway HOST:PORT]
    centre-gateway centre|token|pc|agents|approve|revoke ...   (provisioning, gateway/provision_cli.py)
    centre-gateway trust import|list|remove ...                (trust bundle, gateway/trust_cli.py)

Exit codes: 0 ok, 1 the gateway could not be reached or failed, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from agent.errors import AgentError, ConfigError
from agent.systemd_notify import notify_service_manager
from centre.gateway.v1 import fleet_pb2, fleet_pb2_grpc, reporting_pb2
from gateway import provision_cli, trust_cli
from gateway.config import GatewayConfig, load_config
from gateway.config_file import add_config_option, config_path

_SEVERITY = {reporting_pb2.SEVERITY_INFO: "info", reporting_pb2.SEVERITY_WARNING: "warning",
             reporting_pb2.SEVERITY_ERROR: "error"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centre-gateway", description="Central fleet-health gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the gateway")
    add_config_option(run)
    run.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)  # internal: extra worker index
    run.add_argument("--grpc-port", type=int, default=None, help=argparse.SUPPRESS)
    for name, helptext in (("fleet", "fleet summary by province and centre"),
                           ("devices", "devices (with --problem: current problems)")):
        query = sub.add_parser(name, help=helptext)
        add_config_option(query)
        query.add_argument("--gateway", help="HOST:PORT of the gateway (default: server.grpc_listen)")
        query.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "devices":
            query.add_argument("--problem", action="store_true", required=True,
                               help="list current problems, worst and oldest first")
    provision_cli.register(sub)
    trust_cli.register(sub)
    return parser


def _start_workers(config_path: Path | None, count: int, grpc_port: int) -> list[subprocess.Popen[bytes]]:
    """Extra worker processes on the same gRPC port (SO_REUSEPORT): one event loop per core."""
    workers = []
    for index in range(1, count):
        args = [sys.executable, "-m", "gateway.cli", "run", "--worker", str(index), "--grpc-port", str(grpc_port)]
        if config_path is not None:
            args += ["--config", str(config_path)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        proc.stdout.close()
        if not line.startswith(b"centre-gateway: ready"):
            raise ConfigError(f"worker {index} did not start (exit {proc.wait()})")
        workers.append(proc)
    return workers


async def _serve(config: GatewayConfig, config_path: Path | None, worker: int, grpc_port: int | None) -> None:
    from gateway.server import Gateway
    gateway = Gateway(config, worker=worker, grpc_port=grpc_port)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        if worker == 0 and config.workers > 1:
            workers = await asyncio.to_thread(_start_workers, config_path, config.workers, gateway.grpc_port)
        host = config.grpc_listen.rpartition(":")[0]
        http_host = config.http_listen.rpartition(":")[0]
        enroll = f" enroll={config.enroll_listen.rpartition(':')[0]}:{gateway.enroll_port}" \
            if gateway.enroll_port else ""
        print(f"centre-gateway: ready grpc={host}:{gateway.grpc_port} http={http_host}:{gateway.http_port} "
              f"storage={gateway.store.name} workers={config.workers}{enroll}", flush=True)
        # READY/WATCHDOG/STOPPING for systemd (Type=notify); workers inherit NOTIFY_SOCKET but only the
        # main process may talk to systemd (NotifyAccess=main)
        async with notify_service_manager(f"serving grpc={host}:{gateway.grpc_port} workers={config.workers}",
                                          environ=None if worker == 0 else {}):
            await stop.wait()
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            await asyncio.to_thread(proc.wait)
        await gateway.stop()


def _admin_token(config: GatewayConfig) -> str:
    token = os.environ.get("CENTRE_GATEWAY_TOKEN", "")
    if not token and config.admin_tokens:
        token = config.admin_tokens[0]
    return token


def _admin_channel(config: GatewayConfig, target: str) -> grpc.Channel:
    """Plain gRPC to grpc_listen; with [identity] enabled, server TLS to the enrolment port
    (the reporting port only admits agents with client certificates)."""
    if not config.identity_enabled:
        return grpc.insecure_channel(target)
    ca = Path(config.ca_cert) if config.ca_cert else Path(config.state_dir) / "ca" / "ca.pem"
    try:
        roots = ca.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{ca}: cannot read the gateway CA ({exc.strerror})") from None
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(roots))


def _query(config: GatewayConfig, target: str, command: str) -> Any:
    token = _admin_token(config)
    metadata = (("authorization", f"Bearer {token}"),)
    with _admin_channel(config, target) as channel:
        stub = fleet_pb2_grpc.FleetQueryStub(channel)
        if command == "fleet":
            return stub.GetFleetSummary(fleet_pb2.GetFleetSummaryRequest(), metadata=metadata, timeout=10)
        return stub.ListProblems(fleet_pb2.ListProblemsRequest(), metadata=metadata, timeout=10)


def _print_fleet(reply: fleet_pb2.GetFleetSummaryResponse, as_json: bool) -> None:
    rows = [{"province": c.province, "centre": c.centre, "agents_online": c.agents_online,
             "agents_offline": c.agents_offline, "agents_missing": c.agents_missing,
             "devices_total": c.devices_total, "devices_with_problems": c.devices_with_problems}
            for c in reply.centres]
    if as_json:
        print(json.dumps({"centres": rows}, indent=2))
        return
    print(f"{'PROVINCE':<10} {'CENTRE':<16} {'ONLINE':>6} {'OFFLINE':>7} {'MISSING':>7} {'DEVICES':>7} {'PROBLEMS':>8}")
    for r in rows:
        print(f"{r['province']:<10} {r['centre']:<16} {r['agents_online']:>6} {r['agents_offline']:>7} "
              f"{r['agents_missing']:>7} {r['devices_total']:>7} {r['devices_with_problems']:>8}")


def _print_problems(reply: fleet_pb2.ListProblemsResponse, as_json: bool) -> None:
    rows: list[dict[str, Any]] = [{"severity": _SEVERITY.get(p.severity, "unknown"), "since_ms": p.since_ms,
             "province": p.agent.province, "centre": p.agent.centre, "agent_id": p.agent.agent_id,
             "device_id": p.device_id, "kind": p.kind, "code": p.code, "detail": p.detail}
            for p in reply.problems]
    if as_json:
        print(json.dumps({"problems": rows}, indent=2))
        return
    now = time.time() * 1000
    print(f"{'SEVERITY':<8} {'AGE':>7} {'CENTRE':<16} {'PC':<24} {'DEVICE':<24} PROBLEM")
    for r in rows:
        minutes = max(0, int((now - r["since_ms"]) / 60000))
        print(f"{r['severity']:<8} {minutes:>5}m  {r['centre']:<16} {r['agent_id']:<24} {r['device_id']:<24} "
              f"{r['code']}: {r['detail']}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"centre-gateway: config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            asyncio.run(_serve(config, path, args.worker, args.grpc_port))
        except ConfigError as exc:
            print(f"centre-gateway: config error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command in provision_cli.COMMANDS or args.command in trust_cli.COMMANDS:
        try:
            if args.command in trust_cli.COMMANDS:
                return trust_cli.run(args, config)
            return provision_cli.run(args, config)
        except AgentError as exc:
            print(f"centre-gateway: {exc.message}", file=sys.stderr)
            return 1
    target = args.gateway or (config.enroll_listen if config.identity_enabled else config.grpc_listen)
    if config.identity_enabled and target.startswith("0.0.0.0:"):
        target = "127.0.0.1:" + target.rpartition(":")[2]
    try:
        reply = _query(config, target, args.command)
    except ConfigError as exc:
        print(f"centre-gateway: config error: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        print(f"centre-gateway: {target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    if args.command == "fleet":
        _print_fleet(reply, args.json)
    else:
        _print_problems(reply, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
