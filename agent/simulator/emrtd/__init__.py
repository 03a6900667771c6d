"""An eMRTD (ICAO 9303) chip card emulator that answers APDUs, in process.

API (stable; the PC/SC testbed and ``--simulate`` code against it)::

    from agent.simulator.emrtd import EmulatedEmrtd, CardFaults, sample_cccd, sample_passport

    card = EmulatedEmrtd(sample_cccd(), faults=CardFaults())
    atr = card.power_on()           # bytes; resets the card state
    rapdu = card.transmit(apdu)     # bytes: data + SW1 SW2; synchronous, no I/O
    card.power_off()

:class:`EmulatedTransport` wraps a card as an :class:`agent.drivers.idcard.transport.CardTransport`.
"""
