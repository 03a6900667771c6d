"""One baseline JPEG encoded on several cores: horizontal strips joined with restart markers.

libjpeg (through Pillow) encodes an image on one core; an A4 page at 300 dpi is 8.7
megapixels and takes it some 50 ms. A baseline JPEG may carry restart markers (ITU-T T.81,
B.2.4.4 and F.1.2.3): with a restart interval of R MCUs, the entropy-coded data is cut every R
MCUs by ``RSTn``, and at each one the decoder resets its DC predictions and starts on a byte
boundary. That is exactly what an independent encoder produces at the start of a file, so:

* the page is cut into strips whose height is a whole number of MCU rows, every strip but
  the last the same height (so each holds exactly R MCUs);
* each strip is encoded by Pillow in its own thread (Pillow releases the GIL while encoding);
  with the same quality, subsampling and Pillow's standard Huffman tables, every strip's
  headers are the same but for the image height;
* the first strip's headers, its height set to the page's and a DRI segment (R) added,
  are followed by each strip's scan data, with ``RST0``...``RST7`` between them, then ``EOI``.

The result is one ordinary baseline JPEG every decoder reads. Should the strips' headers
differ after all, or a file not have the expected layout, the page is encoded in one piece.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from PIL import Image

#: Below this many pixels one core is quick enough that handing out strips does not pay.
MIN_STRIPED_PIXELS = 1_000_000
#: A restart interval is a 16-bit count of MCUs.
MAX_RESTART_INTERVAL = 0xFFFF

WORKERS = max(1, min(4, os.cpu_count() or 1))
_POOL = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="jpeg-strip")

_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
_SOS = 0xDA
#: Start-of-frame markers of the DCT processes (not DHT C4, JPG C8, DAC CC).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


class _Unjoinable(Exception):
    """A strip's JPEG is not laid out as joining needs: encode the page in one piece."""


def encode_jpeg(pixels: bytes | bytearray | memoryview, width: int, height: int, mode: str, *, quality: int,
                dpi: int, workers: int = WORKERS) -> bytes:
    """``pixels`` (8-bit ``mode`` "L" or "RGB", rows top to bottom, no padding) as one
    baseline JPEG, encoded in strips on up to ``workers`` cores. Blocking."""
    mcu = 16 if mode == "RGB" else 8  # 4:2:0 colour: 16x16 MCUs; grey: 8x8
    mcus_per_row = -(-width // mcu)
    mcu_rows = -(-height // mcu)
    rows_per_strip = min(-(-mcu_rows // max(1, workers)), MAX_RESTART_INTERVAL // mcus_per_row)
    if workers < 2 or width * height < MIN_STRIPED_PIXELS or not 0 < rows_per_strip < mcu_rows:
        return _encode(pixels, width, height, mode, quality, dpi)
    strip_height = rows_per_strip * mcu
    stride = width * len(mode)
    view = memoryview(pixels).cast("B")
    strips = [(view[top * stride:min(top + strip_height, height) * stride], min(strip_height, height - top))
              for top in range(0, height, strip_height)]
    parts = list(_POOL.map(lambda strip: _encode(strip[0], width, strip[1], mode, quality, dpi), strips))
    try:
        return join_strips(parts, height, rows_per_strip * mcus_per_row)
    except _Unjoinable:
        return _encode(pixels, width, height, mode, quality, dpi)


def _encode(pixels: bytes | bytearray | memoryview, width: int, height: int, mode: str, quality: int,
            dpi: int) -> bytes:
    # A memoryview is taken as it is (no copy), though Pillow's annotations do not say so.
    img = Image.frombuffer(mode, (width, height), cast(bytes, pixels), "raw", mode, 0, 1)
    options: dict[str, object] = {"quality": quality, "dpi": (dpi, dpi), "optimize": False, "progressive": False}
    if mode == "RGB":
        options["subsampling"] = "4:2:0"
    # Pillow encodes into a file descriptor with the GIL released (into a BytesIO it holds
    # it), so strips encode in parallel. An anonymous memory file (memfd): nothing touches a
    # disk or has a path. Where a sandbox refuses memfd_create, a BytesIO does the same, serially.
    try:
        memory_file = os.memfd_create("centre-jpeg", os.MFD_CLOEXEC)
    except OSError:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", **options)
        return buffer.getvalue()
    with os.fdopen(memory_file, "w+b") as out:
        img.save(out, "JPEG", **options)
        out.seek(0)
        return out.read()


def _split(jpeg: bytes) -> tuple[bytes, int, bytes]:
    """(headers up to SOS, offset of the SOF height field in them, SOS segment + scan data)."""
    if not (jpeg.startswith(_SOI) and jpeg.endswith(_EOI)):
        raise _Unjoinable
    offset = 2
    height_at = -1
    while offset + 4 <= len(jpeg):
        if jpeg[offset] != 0xFF:
            raise _Unjoinable
        marker = jpeg[offset + 1]
        length = int.from_bytes(jpeg[offset + 2:offset + 4], "big")
        if marker in _SOF:
            height_at = offset + 5
        elif marker == _SOS:
            if height_at < 0:
                raise _Unjoinable
            return jpeg[:offset], height_at, jpeg[offset:-2]
        offset += 2 + length
    raise _Unjoinable


def join_strips(parts: list[bytes], height: int, restart_interval: int) -> bytes:
    """Join JPEG strips (see the module docstring) into one JPEG ``height`` rows high whose
    restart interval is ``restart_interval`` MCUs. Raises _Unjoinable when the strips'
    headers differ in anything but their height."""
    if not 0 < restart_interval <= MAX_RESTART_INTERVAL or not parts:
        raise _Unjoinable
    split = [_split(part) for part in parts]
    headers, height_at, _ = split[0]

    def masked(header: bytes, at: int) -> bytes:
        return header[:at] + header[at + 2:]

    reference = masked(headers, height_at)
    if any(masked(h, at) != reference for h, at, _ in split[1:]):
        raise _Unjoinable
    out = bytearray(headers)
    out[height_at:height_at + 2] = height.to_bytes(2, "big")
    out += b"\xff\xdd\x00\x04" + restart_interval.to_bytes(2, "big")  # DRI
    out += split[0][2]
    for index, (_, _, scan) in enumerate(split[1:]):
        # a later strip's SOS segment is the first's: only its scan data is kept
        sos_length = int.from_bytes(scan[2:4], "big")
        out += bytes((0xFF, 0xD0 + index % 8))  # RST0...RST7, in turn
        out += scan[2 + sos_length:]
    out += _EOI
    return bytes(out)
