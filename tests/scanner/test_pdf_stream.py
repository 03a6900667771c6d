"""The streaming PDF writer against img2pdf's output for the same pages, and pikepdf as the reader."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from decimal import Decimal

import img2pdf
import pikepdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from agent.documents.pdf_stream import PdfStreamWriter, read_jpeg_info, stream_pdf
from agent.domain.scanner import PageFormat, ScannedPage
from agent.errors import DataFormatError


def _jpeg(width: int, height: int, mode: str = "RGB", dpi: int = 300, colour: int = 90) -> bytes:
    img = Image.new(mode, (width, height), colour if mode == "L" else (colour, 20, 200))
    buf = io.BytesIO()
    img.save(buf, "JPEG", dpi=(dpi, dpi), quality=80)
    return buf.getvalue()


def _page(
    data: bytes,
    index: int = 0,
    dpi: int = 300,
    fmt: PageFormat = PageFormat.JPEG,
    width: int = 0,
    height: int = 0,
) -> ScannedPage:
    return ScannedPage(index=index, format=fmt, data=data, width=width, height=height, resolution=dpi)


def _write(pages: list[ScannedPage]) -> tuple[bytes, PdfStreamWriter]:
    writer = PdfStreamWriter()
    chunks = writer.begin()
    for page in pages:
        chunks += writer.add_page(page)
    chunks += writer.finish()
    return b"".join(chunks), writer


def _image(pdf: pikepdf.Pdf, index: int) -> pikepdf.PdfImage:
    stream = next(iter(pdf.pages[index].get_images().values()))
    assert isinstance(stream, pikepdf.Stream)
    return pikepdf.PdfImage(stream)


def _box(page: pikepdf.Page) -> list[Decimal]:
    return [Decimal(str(v)) for v in page.MediaBox]


def _assert_like_img2pdf(jpegs: list[bytes], dpi: int) -> None:
    ours, writer = _write([_page(j, i, dpi) for i, j in enumerate(jpegs)])
    theirs = img2pdf.convert(jpegs, layout_fun=img2pdf.get_fixed_dpi_layout_fun((dpi, dpi)))
    with pikepdf.open(io.BytesIO(ours)) as mine, pikepdf.open(io.BytesIO(theirs)) as ref:
        assert len(mine.pages) == len(ref.pages) == len(jpegs)
        for my_page, ref_page, jpeg in zip(mine.pages, ref.pages, jpegs, strict=True):
            for a, b in zip(_box(my_page), _box(ref_page), strict=True):
                assert abs(a - b) < Decimal("0.001")
            (my_image,) = my_page.get_images().values()
            (ref_image,) = ref_page.get_images().values()
            assert my_image.read_raw_bytes() == ref_image.read_raw_bytes() == jpeg
            for key in ("/Width", "/Height", "/ColorSpace", "/BitsPerComponent", "/Filter"):
                assert my_image.get(key) == ref_image.get(key)
    assert writer.sha256 == hashlib.sha256(ours).hexdigest()
    assert writer.size == len(ours)


def test_a4_300dpi_colour_page_matches_img2pdf() -> None:
    _assert_like_img2pdf([_jpeg(2480, 3507)], 300)


def test_multi_page_grey_and_colour_match_img2pdf() -> None:
    _assert_like_img2pdf([_jpeg(1240, 1754, "L"), _jpeg(1240, 1754), _jpeg(1754, 1240, "L")], 150)


def test_page_size_uses_the_real_dpi_not_96() -> None:
    data, _ = _write([_page(_jpeg(1200, 600), dpi=600)])
    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert _box(pdf.pages[0]) == [0, 0, Decimal("144"), Decimal("72")]


@settings(max_examples=25, deadline=None)
@given(width=st.integers(20, 600), height=st.integers(20, 600), dpi=st.integers(50, 480), grey=st.booleans())
def test_page_sizes_match_img2pdf(width: int, height: int, dpi: int, grey: bool) -> None:
    _assert_like_img2pdf([_jpeg(width, height, "L" if grey else "RGB")], dpi)


def test_raw_and_png_pages_are_lossless() -> None:
    rgb = bytes(range(256)) * 36  # 64 x 48 RGB
    grey_img = Image.frombytes("L", (32, 16), bytes(range(256)) * 2)
    png = io.BytesIO()
    grey_img.save(png, "PNG")
    data, _ = _write([_page(rgb, 0, 150, PageFormat.RAW_RGB8, 64, 48), _page(png.getvalue(), 1, 100, PageFormat.PNG)])
    with pikepdf.open(io.BytesIO(data)) as pdf:
        first = _image(pdf, 0)
        assert first.as_pil_image().tobytes() == rgb
        second = _image(pdf, 1)
        assert second.as_pil_image().tobytes() == grey_img.tobytes()
        assert _box(pdf.pages[1]) == [0, 0, Decimal("23.04"), Decimal("11.52")]


def test_bilevel_png_page() -> None:
    img = Image.new("1", (40, 10), 1)
    img.putpixel((3, 3), 0)
    png = io.BytesIO()
    img.save(png, "PNG")
    data, _ = _write([_page(png.getvalue(), dpi=300, fmt=PageFormat.PNG)])
    with pikepdf.open(io.BytesIO(data)) as pdf:
        image = _image(pdf, 0)
        assert image.bits_per_component == 1
        assert image.as_pil_image().convert("1").tobytes() == img.tobytes()


def test_bad_pages_raise_data_format_errors() -> None:
    writer = PdfStreamWriter()
    writer.begin()
    with pytest.raises(DataFormatError):
        writer.add_page(_page(b"not a jpeg"))
    with pytest.raises(DataFormatError):
        writer.add_page(_page(b"\x00" * 10, fmt=PageFormat.RAW_GRAY8, width=4, height=4))
    with pytest.raises(DataFormatError):
        writer.add_page(_page(b"png?", fmt=PageFormat.PNG))
    with pytest.raises(DataFormatError):
        writer.finish()  # no page
    with pytest.raises(DataFormatError):
        read_jpeg_info(b"\xff\xd8\xff\xda\x00\x02")


async def test_stream_emits_each_page_before_the_next_arrives() -> None:
    jpegs = [_jpeg(100 + i, 80, dpi=200) for i in range(3)]
    produced: list[int] = []

    async def pages() -> AsyncIterator[ScannedPage]:
        for i, jpeg in enumerate(jpegs):
            produced.append(i)
            yield _page(jpeg, i, 200)

    writer = PdfStreamWriter()
    received = b""
    seen_when: list[int] = []
    async for chunk in stream_pdf(pages(), writer):
        received += chunk
        for i, jpeg in enumerate(jpegs):
            if jpeg in received and len(seen_when) == i:
                seen_when.append(len(produced))
    assert seen_when == [1, 2, 3]  # page i was out before page i+1 was asked for
    assert writer.sha256 == hashlib.sha256(received).hexdigest()
    with pikepdf.open(io.BytesIO(received)) as pdf:
        assert [p.get_images()["/Im0"].Width for p in pdf.pages] == [100, 101, 102]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_any_bytes_are_a_page_or_a_data_format_error(data: bytes) -> None:
    for prefix in (b"", b"\xff\xd8", b"\xff\xd8\xff\xc0\x00\x11"):
        try:
            read_jpeg_info(prefix + data)
        except DataFormatError:
            continue
