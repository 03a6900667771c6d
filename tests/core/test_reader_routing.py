"""Card presence in the registry, and a read that names no reader going to the one holding a card.

The core alone, with probe readers; the same behaviour through pcscd and vpcd is tested in
``tests/idcard/test_pcsc_routing.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.domain.device import DeviceFamily
from agent.domain.events import EventKind
from agent.errors import DeviceStateError
from tests.core.fakes import ProbeReader
from tests.core.test_registry import Harness


async def readers(h: Harness, *names: str, sam: str = "") -> list[ProbeReader]:
    found = [ProbeReader(name, h.ctx, sam=name == sam) for name in names]
    for reader in found:
        h.ctx.device_found(reader)
    await h.settle()
    return found


async def test_card_presence_is_listed_and_follows_the_card(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    (reader,) = await readers(h, "Reader A 00 00")
    dev_id = h.registry.device_id_of(reader)
    assert h.registry.info(dev_id).card_present is False
    before = len(h.events)
    reader.put_card(True)
    inserted, changed = h.events[before:]
    assert inserted.kind is EventKind.CARD_INSERTED
    assert inserted.device is not None
    assert inserted.device.card_present is True
    assert changed.kind is EventKind.DEVICE_STATE_CHANGED  # a client keeping a device table sees it too
    assert changed.device is not None
    assert changed.device.card_present is True
    assert [i.card_present for i in h.registry.list()] == [True]
    reader.put_card(False)
    assert h.registry.info(dev_id).card_present is False
    assert h.events[-1].kind is EventKind.DEVICE_STATE_CHANGED
    await h.registry.close()


async def test_read_without_a_device_goes_to_the_reader_holding_the_card(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    contact, contactless = await readers(h, "Dual Reader ICC 00 00", "Dual Reader PICC 00 01")
    contactless.put_card(True)
    assert h.registry.resolve("", DeviceFamily.IDCARD) == h.registry.device_id_of(contactless)
    contactless.put_card(False)
    contact.put_card(True)
    assert h.registry.resolve("", DeviceFamily.IDCARD) == h.registry.device_id_of(contact)
    # Naming a reader still wins, card or not.
    named = h.registry.device_id_of(contactless)
    assert h.registry.resolve(named, DeviceFamily.IDCARD) == named
    await h.registry.close()


async def test_cards_on_several_readers_is_an_error_naming_them(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    found = await readers(h, "Reader A 00 00", "Reader B 00 01", "Reader C 00 02")
    found[0].put_card(True)
    found[2].put_card(True)
    with pytest.raises(DeviceStateError) as caught:
        h.registry.resolve("", DeviceFamily.IDCARD)
    assert caught.value.reason == "SEVERAL_CARDS"
    message = str(caught.value)
    for reader in (found[0], found[2]):
        assert f'"{reader.descriptor.name}" ({h.registry.device_id_of(reader)})' in message
    assert "Reader B" not in message
    await h.registry.close()


async def test_no_card_on_several_readers_is_an_error_naming_them(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    found = await readers(h, "Reader A 00 00", "Reader B 00 01")
    with pytest.raises(DeviceStateError) as caught:
        h.registry.resolve("", DeviceFamily.IDCARD)
    assert caught.value.reason == "NO_CARD"
    for reader in found:
        assert f'"{reader.descriptor.name}" ({h.registry.device_id_of(reader)})' in str(caught.value)
    await h.registry.close()


async def test_one_reader_without_a_card_is_still_the_target(tmp_path: Path) -> None:
    """A single reader is chosen as before: its own read then says NO_CARD."""
    h = Harness(tmp_path)
    (reader,) = await readers(h, "Reader A 00 00")
    assert h.registry.resolve("", DeviceFamily.IDCARD) == h.registry.device_id_of(reader)
    await h.registry.close()


async def test_the_sam_slot_is_never_chosen_by_itself(tmp_path: Path) -> None:
    """A dual-interface reader's SAM slot always holds its module: it is no citizen's card."""
    h = Harness(tmp_path)
    sam_name = "Dual Reader [SAM] 00 02"
    _contact, contactless, sam = await readers(h, "Dual Reader [ICC] 00 00", "Dual Reader [PICC] 00 01",
                                               sam_name, sam=sam_name)
    sam.put_card(True)
    contactless.put_card(True)
    assert h.registry.resolve("", DeviceFamily.IDCARD) == h.registry.device_id_of(contactless)
    contactless.put_card(False)
    with pytest.raises(DeviceStateError) as caught:
        h.registry.resolve("", DeviceFamily.IDCARD)
    assert caught.value.reason == "NO_CARD"
    assert "SAM" not in str(caught.value)
    assert h.registry.resolve(h.registry.device_id_of(sam), DeviceFamily.IDCARD) == h.registry.device_id_of(sam)
    await h.registry.close()
