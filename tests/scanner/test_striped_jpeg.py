"""A page's JPEG encoded in strips on several cores and joined with restart markers
(agent.documents.striped_jpeg): one baseline JPEG that decodes exactly as the page encoded
in one piece."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image, ImageChops

from agent.documents import striped_jpeg
from agent.documents.striped_jpeg import _encode, encode_jpeg, join_strips


def _frame(width: int, height: int, mode: str) -> bytes:
    """A page-like frame: gradients, noise and hard black bars."""
    gradient = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 30).convert("L")
    grey = ImageChops.add(gradient, noise, scale=2)
    for top in range(0, height, 97):
        grey.paste(0, (0, top, width // 3, min(height, top + 9)))
    if mode == "L":
        return grey.tobytes()
    return Image.merge("RGB", (grey, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), noise)).tobytes()


def _decoded(jpeg: bytes) -> Image.Image:
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.format == "JPEG"
        img.load()
        return img.copy()


def _markers(jpeg: bytes) -> list[int]:
    """Every marker of the file (FFxx with xx not 00 and not a fill byte)."""
    return [jpeg[i + 1] for i in range(len(jpeg) - 1) if jpeg[i] == 0xFF and jpeg[i + 1] not in (0x00, 0xFF)]


@pytest.mark.parametrize(("width", "height", "mode", "workers"), [
    (1240, 1754, "RGB", 2),   # A4 at 150 dpi
    (1001, 1003, "RGB", 3),   # sizes not a whole number of MCUs
    (1500, 1700, "L", 2),
    (1000, 1000, "L", 12),    # more than eight strips: the RST numbers wrap around
])
def test_the_striped_jpeg_decodes_exactly_as_the_whole_one(width: int, height: int, mode: str,
                                                            workers: int) -> None:
    pixels = _frame(width, height, mode)
    whole = _encode(pixels, width, height, mode, 75, 300)
    striped = encode_jpeg(pixels, width, height, mode, quality=75, dpi=300, workers=workers)
    markers = _markers(striped)
    assert 0xDD in markers  # a restart interval is defined
    restarts = [m for m in markers if 0xD0 <= m <= 0xD7]
    assert len(restarts) >= workers - 1 >= 1
    assert restarts == [0xD0 + i % 8 for i in range(len(restarts))]
    ours, reference = _decoded(striped), _decoded(whole)
    assert ours.size == (width, height)
    assert ours.mode == reference.mode
    assert ImageChops.difference(ours, reference).getbbox() is None  # pixel for pixel
    assert ours.info.get("dpi") == reference.info.get("dpi")


def test_small_pages_and_one_core_are_encoded_in_one_piece() -> None:
    pixels = _frame(400, 300, "RGB")
    assert 0xDD not in _markers(encode_jpeg(pixels, 400, 300, "RGB", quality=75, dpi=300))
    big = _frame(1200, 1000, "L")
    assert 0xDD not in _markers(encode_jpeg(big, 1200, 1000, "L", quality=75, dpi=300, workers=1))


def test_a_wide_page_keeps_the_restart_interval_within_16_bits() -> None:
    """9000 px grey is 1125 MCUs a row: a strip may hold at most 58 MCU rows."""
    width, height = 9000, 1200
    pixels = _frame(width, height, "L")
    striped = encode_jpeg(pixels, width, height, "L", quality=75, dpi=300, workers=2)
    dri = striped.index(b"\xff\xdd")
    interval = int.from_bytes(striped[dri + 4:dri + 6], "big")
    assert 0 < interval <= 0xFFFF
    assert interval % 1125 == 0
    reference = _decoded(_encode(pixels, width, height, "L", 75, 300))
    assert ImageChops.difference(_decoded(striped), reference).getbbox() is None


def test_strips_that_differ_are_not_joined() -> None:
    pixels = _frame(800, 64, "RGB")
    top = _encode(pixels[:800 * 3 * 32], 800, 32, "RGB", 75, 300)
    bottom = _encode(pixels[800 * 3 * 32:], 800, 32, "RGB", 90, 300)  # other quantisation tables
    with pytest.raises(striped_jpeg._Unjoinable):
        join_strips([top, bottom], 64, 50 * 2)
    with pytest.raises(striped_jpeg._Unjoinable):
        join_strips([top, b"not a jpeg"], 64, 50 * 2)
    joined = join_strips([top, _encode(pixels[800 * 3 * 32:], 800, 32, "RGB", 75, 300)], 64, 50 * 2)
    assert _decoded(joined).size == (800, 64)


def test_a_page_is_never_written_anywhere(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """The strips are encoded into anonymous memory files: no path is ever opened (the
    memory files themselves are opened by descriptor)."""
    import builtins
    import io as io_module
    import os

    opened: list[object] = []
    def spy(real: Any) -> Any:
        def opening(target: object, *args: Any, **kwargs: Any) -> Any:
            opened.append(target)
            return real(target, *args, **kwargs)
        return opening

    for module, name in ((builtins, "open"), (io_module, "open"), (os, "open")):
        monkeypatch.setattr(module, name, spy(getattr(module, name)))
    pixels = _frame(1240, 1000, "RGB")
    encode_jpeg(pixels, 1240, 1000, "RGB", quality=75, dpi=300, workers=2)
    assert opened
    assert [target for target in opened if not isinstance(target, int)] == []


def test_without_memfd_the_page_is_still_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sandbox that refuses memfd_create (EPERM) gets the same JPEG, encoded through memory."""
    import os

    def refused(*_: object) -> int:
        raise PermissionError(1, "Operation not permitted")

    pixels = _frame(1240, 1000, "RGB")
    expected = encode_jpeg(pixels, 1240, 1000, "RGB", quality=75, dpi=300, workers=2)
    monkeypatch.setattr(os, "memfd_create", refused)
    assert encode_jpeg(pixels, 1240, 1000, "RGB", quality=75, dpi=300, workers=2) == expected
