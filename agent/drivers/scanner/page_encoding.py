"""Encoding of scanned frames into the page format a client asked for (in worker threads)."""

from __future__ import annotations

import io

from PIL import Image

from agent.documents.striped_jpeg import encode_jpeg
from agent.domain.scanner import PageFormat, ScannedPage
from agent.errors import DataFormatError

#: libjpeg's default, as scanimage uses: good for documents, 25 % smaller than 85.
JPEG_QUALITY = 75


def encode_frame(
    index: int,
    pixels: bytes | bytearray,
    width: int,
    height: int,
    mode: str,
    resolution: int,
    page_format: PageFormat,
    bilevel: bool = False,
) -> ScannedPage:
    """Encode one raw frame (PIL ``mode`` "L" or "RGB", 8 bits) as ``page_format``.

    ``bilevel`` frames (black-and-white scans, 0/255 values) become 1-bit PNGs.

    Blocking (Pillow encodes in C); call it through ``ctx.run_blocking``.
    """
    if (page_format == PageFormat.RAW_GRAY8 and mode == "L") or (page_format == PageFormat.RAW_RGB8 and mode == "RGB"):
        return ScannedPage(index, page_format, bytes(pixels), width, height, resolution)
    if page_format == PageFormat.JPEG:  # encoded in strips on every core (agent.documents.striped_jpeg)
        jpeg = encode_jpeg(pixels, width, height, mode, quality=JPEG_QUALITY, dpi=resolution)
        return ScannedPage(index, page_format, jpeg, width, height, resolution)
    img = Image.frombuffer(mode, (width, height), pixels, "raw", mode, 0, 1)
    if page_format == PageFormat.RAW_GRAY8:
        return ScannedPage(index, page_format, img.convert("L").tobytes(), width, height, resolution)
    if page_format == PageFormat.RAW_RGB8:
        return ScannedPage(index, page_format, img.convert("RGB").tobytes(), width, height, resolution)
    buf = io.BytesIO()
    if page_format == PageFormat.PNG:
        if bilevel:
            img = img.convert("1", dither=Image.Dither.NONE)
        img.save(buf, "PNG", dpi=(resolution, resolution), compress_level=1)
    else:
        raise DataFormatError(f"unknown page format {page_format}")
    return ScannedPage(index, page_format, buf.getvalue(), width, height, resolution)


def transcode_jpeg(index: int, jpeg: bytes, resolution: int, page_format: PageFormat) -> ScannedPage:
    """A JPEG from the device, passed through or decoded into another page format. Blocking."""
    try:
        with Image.open(io.BytesIO(jpeg)) as img:
            if img.format != "JPEG":
                raise DataFormatError("scanner sent a page that is not a JPEG")
            width, height = img.size
            if page_format == PageFormat.JPEG:
                return ScannedPage(index, page_format, jpeg, width, height, resolution)
            img.load()
            mode = "L" if img.mode in ("L", "1") else "RGB"
            converted = img.convert(mode)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataFormatError("scanner sent an unreadable page") from exc
    return encode_frame(index, converted.tobytes(), width, height, mode, resolution, page_format)
