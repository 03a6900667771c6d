"""eSCL over HTTPS with a scanner's self-signed certificate (the usual case on a LAN): trust on
first use (the default), CA verification, no check; a changed certificate is refused. The
peer is the eSCL emulator process serving HTTPS (announcing ``_uscans`` on loopback)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.domain.scanner import ScanSettings
from agent.drivers.scanner.escl_discovery import EsclBackend, probe_escl
from agent.drivers.scanner.tls_pins import PINS_FILE, CertificatePins, TlsPolicy
from agent.errors import ConfigError, DeviceUnavailableError
from tests.scanner.conftest import EmulatorProcess
from tests.support.context import RecordingContext


def self_signed(directory: Path, name: str) -> tuple[Path, Path, str]:
    """A scanner's self-signed certificate for 127.0.0.1: (cert PEM, key PEM, SHA-256 of the DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def https_url(emulator: EmulatorProcess) -> str:
    return f"https://127.0.0.1:{emulator.port}/eSCL"


@pytest.fixture
def tls_emulator(tmp_path: Path, emulator_factory: Callable[..., EmulatorProcess]
                 ) -> Callable[[str], tuple[EmulatorProcess, str]]:
    def start(name: str) -> tuple[EmulatorProcess, str]:
        cert, key, fingerprint = self_signed(tmp_path / "certs", name)
        return emulator_factory("--no-zeroconf", "--tls-cert", str(cert), "--tls-key", str(key)), fingerprint

    return start


async def test_first_use_pins_the_certificate_and_a_scan_runs_over_https(
        ctx: RecordingContext, tls_emulator: Callable[[str], tuple[EmulatorProcess, str]]) -> None:
    emulator, fingerprint = tls_emulator("scanner-a")
    pins = CertificatePins(ctx.state_dir / PINS_FILE)
    scanner = await probe_escl(ctx, https_url(emulator), backend="escl", tls=TlsPolicy.PIN, pins=pins)
    try:
        pages = [page async for page in scanner.scan(ScanSettings(resolution=75))]
        assert len(pages) == 1
        assert pages[0].data[:2] == b"\xff\xd8"
    finally:
        await scanner.close()
    assert json.loads((ctx.state_dir / PINS_FILE).read_text()) == {https_url(emulator): fingerprint}
    # The pin file is not personal data and holds nothing but fingerprints.
    assert os.stat(ctx.state_dir / PINS_FILE).st_size < 200


async def test_another_certificate_for_a_pinned_scanner_is_refused(
        ctx: RecordingContext, tls_emulator: Callable[[str], tuple[EmulatorProcess, str]]) -> None:
    pins = CertificatePins(ctx.state_dir / PINS_FILE)
    first, _ = tls_emulator("genuine")
    scanner = await probe_escl(ctx, https_url(first), backend="escl", stable_key="uuid-1", tls=TlsPolicy.PIN,
                               pins=pins)
    await scanner.close()
    impostor, _ = tls_emulator("impostor")  # same scanner identity, another certificate
    reloaded = CertificatePins(ctx.state_dir / PINS_FILE)  # as after an agent restart
    with pytest.raises(DeviceUnavailableError) as caught:
        await probe_escl(ctx, https_url(impostor), backend="escl", stable_key="uuid-1", tls=TlsPolicy.PIN,
                         pins=reloaded)
    assert caught.value.reason == "TLS_CERTIFICATE_CHANGED"
    assert str(ctx.state_dir / PINS_FILE) in caught.value.message
    # another scanner (another key) is pinned on its own first use
    other = await probe_escl(ctx, https_url(impostor), backend="escl", stable_key="uuid-2", tls=TlsPolicy.PIN,
                             pins=reloaded)
    await other.close()


async def test_verify_refuses_a_self_signed_scanner_and_off_accepts_it(
        ctx: RecordingContext, tls_emulator: Callable[[str], tuple[EmulatorProcess, str]]) -> None:
    emulator, _ = tls_emulator("scanner-b")
    with pytest.raises(DeviceUnavailableError) as caught:
        await probe_escl(ctx, https_url(emulator), backend="escl", tls=TlsPolicy.VERIFY)
    assert caught.value.reason == "TLS_UNTRUSTED"
    scanner = await probe_escl(ctx, https_url(emulator), backend="escl", tls=TlsPolicy.OFF)
    assert scanner.scanner_capabilities().resolutions
    await scanner.close()
    assert not (ctx.state_dir / PINS_FILE).exists()


async def test_the_backend_pins_by_default_and_keeps_pins_across_restarts(
        ctx: RecordingContext, tls_emulator: Callable[[str], tuple[EmulatorProcess, str]]) -> None:
    emulator, fingerprint = tls_emulator("scanner-c")
    for _ in range(2):
        backend = EsclBackend(ctx, {"urls": [https_url(emulator)], "zeroconf": False})
        await backend.start()
        try:
            await ctx.wait_for(lambda: any(d.descriptor.address == https_url(emulator) for d in ctx.devices.values()))
        finally:
            await backend.stop()
        ctx.devices.clear()
    assert json.loads((ctx.state_dir / PINS_FILE).read_text()) == {https_url(emulator): fingerprint}


async def test_bad_tls_options_and_pin_files_are_config_errors(ctx: RecordingContext) -> None:
    with pytest.raises(ConfigError):
        EsclBackend(ctx, {"tls": "maybe"})
    (ctx.state_dir / PINS_FILE).write_text("[1, 2]")
    backend = EsclBackend(ctx, {"zeroconf": False})
    with pytest.raises(ConfigError):
        await backend.start()


async def test_a_uscans_scanner_is_discovered_and_pinned_by_its_uuid(
        ctx: RecordingContext, tmp_path: Path, emulator_factory: Callable[..., EmulatorProcess]) -> None:
    import httpx

    from agent.drivers.scanner.escl import parse_xml

    cert, key, fingerprint = self_signed(tmp_path / "certs", "announced")
    announced = emulator_factory("--tls-cert", str(cert), "--tls-key", str(key))  # announces _uscans on loopback
    async with httpx.AsyncClient(verify=False) as http:  # noqa: S501 - reading the emulator's UUID
        caps = (await http.get(f"{https_url(announced)}/ScannerCapabilities")).content
    uuid = str(parse_xml(caps).findtext("{http://schemas.hp.com/imaging/escl/2011/05/03}UUID"))
    backend = EsclBackend(ctx, {"zeroconf": True})
    await backend.start()
    try:
        await ctx.wait_for(lambda: uuid in ctx.devices)
        assert ctx.devices[uuid].descriptor.address == https_url(announced)
    finally:
        await backend.stop()
    assert json.loads((ctx.state_dir / PINS_FILE).read_text()) == {uuid: fingerprint}
