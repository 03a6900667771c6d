"""Small documents to print, made on the fly."""

from __future__ import annotations

import io

import img2pdf
from PIL import Image


def one_page_pdf(marker: str = "") -> bytes:
    """A one-page A4 PDF (a small grey image scaled to the page)."""
    image = Image.new("L", (64, 90), 200)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    layout = img2pdf.get_layout_fun((img2pdf.mm_to_pt(210), img2pdf.mm_to_pt(297)))
    pdf: bytes = img2pdf.convert(buffer.getvalue(), layout_fun=layout)
    if marker:
        # a PDF comment after %%EOF is ignored by readers; it plants a canary in the bytes
        pdf += f"\n% {marker}\n".encode()
    return pdf


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()
