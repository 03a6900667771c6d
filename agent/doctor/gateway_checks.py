"""Checks of the PC's standing with the gateway: certificate, reachability, clock skew;
and the hand-over of the doctor's result (names and outcomes only) to the gateway."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from grpc import aio

from agent.doctor.checks import Outcome, Report
from agent.drivers.idcard.trust_bundle import DistributedTrust
from agent.provisioning.credentials import ClientCertificateCredentials
from agent.provisioning.identity import IdentityStore, renew_at
from centre.gateway.v1 import enrollment_pb2, enrollment_pb2_grpc

#: clock skew limits: beyond WARN the logs disagree; beyond FAIL certificates and renewals break
SKEW_WARN_S = 5.0
SKEW_FAIL_S = 120.0


@dataclass
class GatewayFacts:
    endpoint: str = ""
    skew_s: float | None = None


def _channel(store: IdentityStore, endpoint: str) -> aio.Channel:
    creds = ClientCertificateCredentials(store).channel_credentials()
    assert creds is not None
    return aio.secure_channel(endpoint, creds)


def trust_bundle_check(state_dir: Path, max_age_days: float, *, simulate: bool = False,
                       now: float | None = None) -> tuple[Outcome, str]:
    """The gateway's trust bundle as this PC holds it (``<state_dir>/trust-bundle.json``): FAIL
    when the gateway last confirmed it more than ``max_age_days`` ago, or when there is none
    (WARN with ``--simulate``: the doctor's private agent has no uplink to fetch one)."""
    trust = DistributedTrust(state_dir)
    trust.load()
    bundle, health = trust.current, trust.health(now)
    if bundle is None:
        return (Outcome.WARN if simulate else Outcome.FAIL), (
            f"none in {state_dir} (the running agent fetches it from the gateway; is it running?)")
    days = health.age_seconds / 86400
    detail = (f"version {health.version}: {len(bundle.certificates)} CSCA, {len(bundle.crls)} CRL, "
              f"confirmed {days:.1f} days ago")
    if days > max_age_days:
        return Outcome.FAIL, f"{detail}, older than {max_age_days:g} days ([doctor] max_trust_age_days)"
    return Outcome.PASS, detail


async def run_gateway_checks(report: Report, state_dir: Path, *, endpoint: str = "", simulate: bool = False,
                             timeout: float = 10.0, max_trust_age_days: float = 7.0) -> GatewayFacts:
    store = IdentityStore(state_dir)
    facts = GatewayFacts()
    if not store.present:
        outcome = Outcome.SKIP if simulate else Outcome.FAIL
        for name in ("certificate valid", "gateway reachable", "clock skew"):
            report.add(name, outcome, "not enrolled: run `centre-agent enroll`")
        return facts
    info = store.info()
    facts.endpoint = endpoint or info.report_endpoint

    async def certificate() -> tuple[Outcome, str]:
        problem = store.check()
        if problem:
            return Outcome.FAIL, problem + " (the agent renews within the grace window; else enrol again)"
        cert = store.certificate()
        now = dt.datetime.now(dt.UTC)
        days = (cert.not_valid_after_utc - now).total_seconds() / 86400
        detail = f"{info.agent_id} ({info.centre}), chain ok, expires in {days:.1f} days"
        if now - renew_at(cert) > dt.timedelta(days=1):
            return Outcome.WARN, detail + "; renewal overdue (is the agent running?)"
        return Outcome.PASS, detail

    async def reachable() -> tuple[Outcome, str]:
        async with _channel(store, facts.endpoint) as channel:
            sent = time.time()
            reply = await enrollment_pb2_grpc.AgentCheckStub(channel).Ping(enrollment_pb2.PingRequest(),
                                                                            timeout=timeout)
            back = time.time()
        facts.skew_s = (sent + back) / 2 - reply.server_time_ms / 1000
        if reply.agent_id != info.agent_id:
            return Outcome.FAIL, f"gateway knows this certificate as {reply.agent_id}, not {info.agent_id}"
        return Outcome.PASS, f"{facts.endpoint}: accepted as {reply.agent_id}"

    async def skew() -> tuple[Outcome, str]:
        if facts.skew_s is None:
            return Outcome.FAIL, "unknown (gateway not reachable)"
        text = f"{facts.skew_s:+.1f} s against the gateway"
        if abs(facts.skew_s) > SKEW_FAIL_S:
            return Outcome.FAIL, text + " (fix NTP: certificates and renewal need the right time)"
        return (Outcome.WARN if abs(facts.skew_s) > SKEW_WARN_S else Outcome.PASS), text

    await report.run("certificate valid", certificate)
    await report.run("gateway reachable", reachable)
    await report.run("clock skew", skew)

    async def trust_bundle() -> tuple[Outcome, str]:
        return trust_bundle_check(state_dir, max_trust_age_days, simulate=simulate)

    await report.run("trust bundle", trust_bundle)
    return facts


async def send_report(report: Report, state_dir: Path, endpoint: str, timeout: float = 10.0) -> None:
    """Send pass/fail per check (no details: they may name local paths or devices) to the gateway."""
    store = IdentityStore(state_dir)

    async def send() -> tuple[Outcome, str]:
        checks = [enrollment_pb2.DoctorCheck(name=r.name[:120], outcome=r.outcome.value) for r in report.results]
        async with _channel(store, endpoint) as channel:
            await enrollment_pb2_grpc.AgentCheckStub(channel).ReportDoctor(
                enrollment_pb2.DoctorReport(checks=checks, passed=report.passed,
                                            agent_time_ms=int(time.time() * 1000)), timeout=timeout)
        return Outcome.PASS, f"{len(checks)} results"

    await report.run("result sent to the gateway", send)
