"""``centre-agent doctor``: pass/fail line per check, non-zero exit on any failure."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile

from agent.cli.config_file import add_config_option, load_agent_config
from agent.cli.output import emit_json
from agent.client import AgentClient, default_target
from agent.doctor.checks import Outcome, Report
from agent.doctor.device_checks import DoctorOptions, run_device_checks

MARKS = {Outcome.PASS: "PASS", Outcome.FAIL: "FAIL", Outcome.SKIP: "skip", Outcome.WARN: "WARN"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="acceptance check of this PC: agent, devices, gateway")
    p.add_argument("--socket", help="agent socket (default: $CENTRE_AGENT_SOCKET or /run/centre-agent/agent.sock)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--simulate", action="store_true",
                   help="check an agent started here with simulated devices (no hardware needed)")
    add_config_option(p)
    p.add_argument("--can", default="", help="CAN of a test card to read")
    p.add_argument("--doc-number", help="MRZ document number of a test card")
    p.add_argument("--birth-date", help="MRZ birth date YYMMDD of a test card")
    p.add_argument("--expiry-date", help="MRZ expiry date YYMMDD of a test card")
    p.add_argument("--no-print", action="store_true", help="do not print a test page")
    p.add_argument("--no-scan", action="store_true", help="do not scan a test page")
    p.add_argument("--no-finger", action="store_true", help="do not ask for a finger")
    p.add_argument("--state-dir", help="agent state dir holding the enrolled identity (default: agent.state_dir)")
    p.add_argument("--no-gateway", action="store_true", help="skip the gateway checks and do not send the result")
    p.set_defaults(handler=cmd_doctor)


def _options(args: argparse.Namespace, socket: str) -> DoctorOptions:
    mrz = (args.doc_number, args.birth_date, args.expiry_date) \
        if args.doc_number and args.birth_date and args.expiry_date else None
    return DoctorOptions(socket=socket, card_mrz=mrz, card_can=args.can, print_test_page=not args.no_print,
                         scan_test_page=not args.no_scan, capture_finger=not args.no_finger)


async def _doctor(args: argparse.Namespace) -> Report:
    report = Report()
    await _devices(args, report)
    if not args.no_gateway:
        from pathlib import Path

        from agent.doctor.gateway_checks import run_gateway_checks, send_report

        config = load_agent_config(args.config)
        state_dir = Path(args.state_dir or config.agent.state_dir)
        facts = await run_gateway_checks(report, state_dir, endpoint=config.uplink.gateway, simulate=args.simulate)
        if facts.endpoint:
            await send_report(report, state_dir, facts.endpoint)
    return report


async def _devices(args: argparse.Namespace, report: Report) -> Report:
    if args.simulate:
        from agent.daemon import start_agent
        from agent.simulator.idcard import sample_access_key

        with tempfile.TemporaryDirectory(prefix="centre-doctor-") as tmp:
            config = load_agent_config(args.config)
            config = dataclasses.replace(config, agent=dataclasses.replace(
                config.agent, socket=f"{tmp}/agent.sock", state_dir=f"{tmp}/state", tcp=""),
                metrics=dataclasses.replace(config.metrics, listen=""))
            agent = await start_agent(config, simulate=True)
            try:
                await asyncio.sleep(0.5)  # let the simulated devices open
                options = _options(args, config.agent.socket)
                if options.card_mrz is None and not options.card_can:
                    key = sample_access_key()
                    options = dataclasses.replace(options, card_mrz=(key.document_number, key.date_of_birth,
                                                                     key.date_of_expiry))
                async with AgentClient.connect(config.agent.socket, "centre-doctor") as client:
                    await run_device_checks(report, client, options)
            finally:
                await agent.stop()
        return report
    target = args.socket or default_target()
    async with AgentClient.connect(target, "centre-doctor") as client:
        await run_device_checks(report, client, _options(args, target))
    return report


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent.errors import ConfigError

    try:
        report = asyncio.run(_doctor(args))
    except ConfigError as exc:
        print(f"centre-agent: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        emit_json(report.as_json())
    else:
        for r in report.results:
            print(f"{MARKS[r.outcome]:<4}  {r.name}" + (f": {r.detail}" if r.detail else ""))
        print("doctor: all checks passed" if report.passed else "doctor: some checks FAILED")
    return 0 if report.passed else 1



