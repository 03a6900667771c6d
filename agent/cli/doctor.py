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
from agent.config import AgentConfig, UplinkSection
from agent.doctor.checks import Outcome, Report
from agent.doctor.device_checks import DoctorOptions, run_device_checks
from agent.doctor.expectations import expected_families
from agent.drivers.options import DriverTable, PcscOptions, SimBarcodeOptions
from agent.drivers.registry import SIMULATED_BACKENDS
from agent.errors import ConfigError

#: seconds between the simulated barcode scanner's own scans (``--simulate``)
SIMULATED_SCAN_INTERVAL_S = 0.5

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
    p.add_argument("--no-barcode", action="store_true", help="do not ask for a barcode scan")
    p.add_argument("--wait", type=float, metavar="SECONDS",
                   help="how long each prompt waits for the installer (default: [doctor] wait_seconds, 60)")
    p.add_argument("--state-dir", help="agent state dir holding the enrolled identity (default: agent.state_dir)")
    p.add_argument("--no-gateway", action="store_true", help="skip the gateway checks and do not send the result")
    p.set_defaults(handler=cmd_doctor)


def _options(args: argparse.Namespace, socket: str, config: AgentConfig) -> DoctorOptions:
    mrz = (args.doc_number, args.birth_date, args.expiry_date) \
        if args.doc_number and args.birth_date and args.expiry_date else None
    pcsc = config.backend_options("pcsc")
    csca_dir = (pcsc.csca_dir if isinstance(pcsc, PcscOptions) else "") or config.idcard.csca_dir
    return DoctorOptions(socket=socket, card_mrz=mrz, card_can=args.can, print_test_page=not args.no_print,
                         scan_test_page=not args.no_scan, capture_finger=not args.no_finger,
                         scan_barcode=not args.no_barcode, expect=expected_families(config, simulate=args.simulate),
                         wait_s=args.wait or config.doctor.wait_seconds, csca_dir=csca_dir)


async def _doctor(args: argparse.Namespace) -> Report:
    report = Report()
    config = load_agent_config(args.config)
    await _devices(args, report, config)
    if not args.no_gateway:
        from pathlib import Path

        from agent.doctor.gateway_checks import run_gateway_checks, send_report

        state_dir = Path(args.state_dir or config.agent.state_dir)
        facts = await run_gateway_checks(report, state_dir, endpoint=config.uplink.gateway, simulate=args.simulate,
                                         max_trust_age_days=config.doctor.max_trust_age_days)
        if facts.endpoint:
            await send_report(report, state_dir, facts.endpoint)
    return report


def _simulated(config: AgentConfig, tmp: str) -> AgentConfig:
    """The private agent of ``--simulate``: simulated devices only (the config's options for them kept),
    its own socket and state, no listener but the socket; the barcode scanner scans by itself."""
    drivers = {name: table for name, table in config.drivers.items() if name in SIMULATED_BACKENDS}
    barcode = drivers.get("sim-barcode", DriverTable(True, SimBarcodeOptions()))
    scans = barcode.options
    if isinstance(scans, SimBarcodeOptions):
        scans = dataclasses.replace(scans, demo_scans=scans.demo_scans or ["centre-doctor test scan"],
                                    demo_interval=scans.demo_interval or SIMULATED_SCAN_INTERVAL_S)
    drivers["sim-barcode"] = dataclasses.replace(barcode, options=scans)
    return dataclasses.replace(
        config, agent=dataclasses.replace(config.agent, socket=f"{tmp}/agent.sock", state_dir=f"{tmp}/state", tcp=""),
        metrics=dataclasses.replace(config.metrics, listen=""), web=dataclasses.replace(config.web, listen=""),
        uplink=UplinkSection(), discovery=dataclasses.replace(config.discovery, advertise=False), drivers=drivers)


async def _devices(args: argparse.Namespace, report: Report, config: AgentConfig) -> Report:
    if args.simulate:
        from agent.daemon import start_agent
        from agent.simulator.idcard import sample_access_key

        with tempfile.TemporaryDirectory(prefix="centre-doctor-") as tmp:
            private = _simulated(config, tmp)
            agent = await start_agent(private, simulate=True)
            try:
                await asyncio.sleep(0.5)  # let the simulated devices open
                options = _options(args, private.agent.socket, config)
                if options.card_mrz is None and not options.card_can:
                    key = sample_access_key()
                    options = dataclasses.replace(options, card_mrz=(key.document_number, key.date_of_birth,
                                                                     key.date_of_expiry))
                async with AgentClient.connect(private.agent.socket, "centre-doctor") as client:
                    await run_device_checks(report, client, options)
            finally:
                await agent.stop()
        return report
    target = args.socket or default_target()
    async with AgentClient.connect(target, "centre-doctor") as client:
        await run_device_checks(report, client, _options(args, target, config))
    return report


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.wait is not None and args.wait <= 0:
        print("centre-agent: --wait must be a positive number of seconds", file=sys.stderr)
        return 2
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
