"""DNS-SD discovery of IPP printers through avahi on lo and python-zeroconf on loopback."""

from __future__ import annotations

from pathlib import Path

from agent.drivers.printer.ipp_backend import IppBackend, IppPrinter
from tests.printer.context import PrinterTestContext
from tests.printer.peers import IppEvePrinter, MdnsStack


async def test_printer_found_by_dns_sd_and_lost_when_it_leaves(mdns: MdnsStack, tmp_path: Path,
                                                                ctx: PrinterTestContext) -> None:
    peer = IppEvePrinter(tmp_path / "announced", mdns.bus_address, name="CounterPrinter")
    peer.start()
    backend = IppBackend(ctx, {"poll_interval": 5})
    try:
        await backend.start()

        def ours() -> list[IppPrinter]:
            """The devices currently handed over for this printer (a later hand-over of the same
            stable key replaces the earlier object, as the driver contract says)."""
            latest: dict[str, IppPrinter] = {}
            for d in ctx.found:
                if isinstance(d, IppPrinter) and f":{peer.port}/" in d.uri:
                    latest[d.descriptor.stable_key] = d
            return list(latest.values())

        # plain ipp is preferred over ipps whichever record resolves first; IPv4 loopback address
        await ctx.wait_for(lambda: any(d.uri == peer.uri for d in ours()), timeout=20)
        device = ours()[0]
        assert device.uri == peer.uri
        assert device.descriptor.name == "CounterPrinter"
        assert device.descriptor.stable_key.startswith("urn:uuid:")
        assert device.descriptor.connection == "network"
        # both _ipp and _ipps records of the same printer make one device
        assert len(ours()) == 1
        await device.open()
        assert "application/pdf" in device.printer_capabilities().document_formats
        await device.close()
        peer.stop()
        await ctx.wait_for(lambda: ("ipp", device.descriptor.stable_key) in ctx.lost, timeout=20)
    finally:
        await backend.stop()
        peer.stop()
