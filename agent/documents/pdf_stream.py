"""A streaming PDF writer for scanned documents.

Why not img2pdf: it needs every page in memory at once, and a 50-page feeder job
must keep the agent's memory flat while pages never touch the disk. This writer
emits the PDF incrementally: the header first, then for each page its image
XObject, content stream and page object as soon as the page arrives, and at the
end the page tree, catalog, cross-reference table and trailer.

* JPEG pages are embedded as they are (``/DCTDecode``), never re-encoded.
* PNG and raw pages are embedded losslessly with ``/FlateDecode``.
* The page size comes from the pixel size and the page's real resolution
  (img2pdf's trap: without the dpi it assumes 96 and the page is the wrong size).
* The SHA-256 of the document is computed over the bytes as they are emitted.

Object numbers: 1 is the catalog and 2 the page tree; both are written last (a
PDF's objects may appear in any order, the xref table says where each one is).
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from PIL import Image

from agent.domain.scanner import PageFormat, ScannedPage
from agent.errors import DataFormatError

_CATALOG = 1
_PAGES = 2
_FIRST_FREE = 3
#: Raw pixels are compressed in slices of this size so no second full copy is held.
_FLATE_SLICE = 1 << 20


@dataclass(frozen=True, slots=True)
class JpegInfo:
    """What the PDF needs from a JPEG's frame header."""

    width: int
    height: int
    components: int
    adobe_inverted: bool  # Adobe APP14 CMYK JPEGs store inverted values


def read_jpeg_info(data: bytes) -> JpegInfo:
    """Walk the JPEG markers up to the first SOF segment (no decoding)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise DataFormatError("page is not a JPEG image (no SOI marker)")
    pos = 2
    adobe = False
    size = len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            raise DataFormatError("malformed JPEG page (marker expected)")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > size:
            raise DataFormatError("malformed JPEG page (segment length)")
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xEE and segment.startswith(b"Adobe"):
            adobe = True
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if len(segment) < 6:
                raise DataFormatError("malformed JPEG page (frame header)")
            height = int.from_bytes(segment[1:3], "big")
            width = int.from_bytes(segment[3:5], "big")
            components = segment[5]
            if width == 0 or height == 0 or components not in (1, 3, 4):
                raise DataFormatError("unsupported JPEG page (size or components)")
            return JpegInfo(width, height, components, adobe and components == 4)
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise DataFormatError("malformed JPEG page (no frame header)")


def _num(value: float) -> str:
    """A PDF real: short, no exponent, no trailing zeros."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


@dataclass(frozen=True, slots=True)
class _Image:
    """An image XObject ready to emit: dictionary entries and its encoded stream."""

    entries: str
    stream: tuple[bytes | bytearray | memoryview, ...]
    width: int
    height: int


def _flate(data: bytes | bytearray | memoryview) -> tuple[bytes, ...]:
    compressor = zlib.compressobj(6)
    view = memoryview(data)
    parts = [compressor.compress(view[i : i + _FLATE_SLICE]) for i in range(0, len(view), _FLATE_SLICE)]
    parts.append(compressor.flush())
    return tuple(part for part in parts if part)


def _image_for(page: ScannedPage) -> _Image:
    if page.format == PageFormat.JPEG:
        info = read_jpeg_info(page.data)
        space = {1: "/DeviceGray", 3: "/DeviceRGB", 4: "/DeviceCMYK"}[info.components]
        decode = " /Decode [1 0 1 0 1 0 1 0]" if info.adobe_inverted else ""
        entries = (
            f"/Width {info.width} /Height {info.height} /ColorSpace {space}"
            f" /BitsPerComponent 8 /Filter /DCTDecode{decode}"
        )
        return _Image(entries, (page.data,), info.width, info.height)
    if page.format in (PageFormat.RAW_GRAY8, PageFormat.RAW_RGB8):
        channels = 1 if page.format == PageFormat.RAW_GRAY8 else 3
        if page.width <= 0 or page.height <= 0 or len(page.data) != page.width * page.height * channels:
            raise DataFormatError("raw page size does not match its width and height")
        space = "/DeviceGray" if channels == 1 else "/DeviceRGB"
        entries = (
            f"/Width {page.width} /Height {page.height} /ColorSpace {space} /BitsPerComponent 8 /Filter /FlateDecode"
        )
        return _Image(entries, _flate(page.data), page.width, page.height)
    if page.format == PageFormat.PNG:
        try:
            with Image.open(io.BytesIO(page.data)) as opened:
                opened.load()
                img: Image.Image = opened
                if img.mode not in ("1", "L", "RGB"):
                    img = img.convert("RGB")  # palettes, alpha: flatten
                mode = img.mode
                width, height = img.size
                pixels = img.tobytes()
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataFormatError("page is not a readable PNG image") from exc
        bits, space = {"1": (1, "/DeviceGray"), "L": (8, "/DeviceGray"), "RGB": (8, "/DeviceRGB")}[mode]
        entries = f"/Width {width} /Height {height} /ColorSpace {space} /BitsPerComponent {bits} /Filter /FlateDecode"
        return _Image(entries, _flate(pixels), width, height)
    raise DataFormatError(f"page format {page.format} cannot go into a PDF")


class PdfStreamWriter:
    """Builds one PDF document incrementally; every method returns the chunks to send on.

    Use: ``begin()``, then ``add_page(page)`` per page, then ``finish()``. After
    ``finish()``, :attr:`sha256` and :attr:`size` describe the whole document.
    """

    def __init__(self) -> None:
        self._offset = 0
        self._hash = hashlib.sha256()
        self._offsets: dict[int, int] = {}
        self._next_object = _FIRST_FREE
        self._page_objects: list[int] = []
        self._begun = False
        self._finished = False

    @property
    def pages(self) -> int:
        return len(self._page_objects)

    @property
    def size(self) -> int:
        """Bytes emitted so far."""
        return self._offset

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the finished document."""
        if not self._finished:
            raise RuntimeError("the PDF is not finished yet")
        return self._hash.hexdigest()

    def _emit(self, out: list[bytes], chunk: bytes | bytearray | memoryview) -> None:
        data = bytes(chunk) if not isinstance(chunk, bytes) else chunk
        self._hash.update(data)
        self._offset += len(data)
        out.append(data)

    def _object(self, out: list[bytes], number: int, body: str) -> None:
        self._offsets[number] = self._offset
        self._emit(out, f"{number} 0 obj\n{body}\nendobj\n".encode("ascii"))

    def _stream_object(
        self, out: list[bytes], number: int, entries: str, parts: tuple[bytes | bytearray | memoryview, ...]
    ) -> None:
        length = sum(len(part) for part in parts)
        self._offsets[number] = self._offset
        self._emit(out, f"{number} 0 obj\n<< {entries} /Length {length} >>\nstream\n".encode("ascii"))
        for part in parts:
            self._emit(out, part)
        self._emit(out, b"\nendstream\nendobj\n")

    def begin(self) -> list[bytes]:
        """The file header."""
        if self._begun:
            raise RuntimeError("begin() was already called")
        self._begun = True
        out: list[bytes] = []
        # The binary comment line tells transfer tools the file is binary.
        self._emit(out, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        return out

    def add_page(self, page: ScannedPage) -> list[bytes]:
        """Emit one page: image, content stream, page object. ``page.resolution`` is its dpi."""
        if not self._begun or self._finished:
            raise RuntimeError("add_page() outside begin()/finish()")
        if page.resolution <= 0:
            raise DataFormatError("page resolution must be positive")
        image = _image_for(page)
        width_pt = image.width * 72.0 / page.resolution
        height_pt = image.height * 72.0 / page.resolution
        image_no, content_no, page_no = self._next_object, self._next_object + 1, self._next_object + 2
        self._next_object += 3
        out: list[bytes] = []
        self._stream_object(out, image_no, f"/Type /XObject /Subtype /Image {image.entries}", image.stream)
        content = f"q\n{_num(width_pt)} 0 0 {_num(height_pt)} 0 0 cm\n/Im0 Do\nQ".encode("ascii")
        self._stream_object(out, content_no, "", (content,))
        self._object(
            out,
            page_no,
            f"<< /Type /Page /Parent {_PAGES} 0 R"
            f" /MediaBox [0 0 {_num(width_pt)} {_num(height_pt)}]"
            f" /Resources << /XObject << /Im0 {image_no} 0 R >> >>"
            f" /Contents {content_no} 0 R >>",
        )
        self._page_objects.append(page_no)
        return out

    def finish(self) -> list[bytes]:
        """Emit the page tree, catalog, xref table and trailer. At least one page is needed."""
        if not self._begun or self._finished:
            raise RuntimeError("finish() outside begin()")
        if not self._page_objects:
            raise DataFormatError("a PDF needs at least one page")
        out: list[bytes] = []
        kids = " ".join(f"{n} 0 R" for n in self._page_objects)
        self._object(out, _PAGES, f"<< /Type /Pages /Kids [{kids}] /Count {len(self._page_objects)} >>")
        self._object(out, _CATALOG, f"<< /Type /Catalog /Pages {_PAGES} 0 R >>")
        xref_at = self._offset
        count = self._next_object
        lines = [f"xref\n0 {count}\n", "0000000000 65535 f \n"]
        lines.extend(f"{self._offsets[n]:010d} 00000 n \n" for n in range(1, count))
        lines.append(f"trailer\n<< /Size {count} /Root {_CATALOG} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n")
        self._emit(out, "".join(lines).encode("ascii"))
        self._finished = True
        return out


async def stream_pdf(pages: AsyncIterator[ScannedPage], writer: PdfStreamWriter | None = None) -> AsyncIterator[bytes]:
    """Turn a page stream into PDF chunks as the pages arrive.

    Pass a ``writer`` to read its :attr:`~PdfStreamWriter.sha256` after the stream ends.
    """
    pdf = writer if writer is not None else PdfStreamWriter()
    for chunk in pdf.begin():
        yield chunk
    async for page in pages:
        for chunk in pdf.add_page(page):
            yield chunk
    for chunk in pdf.finish():
        yield chunk
