"""DG2 face (ICAO 9303 Part 10; CBEFF biometric information templates carrying an
ISO/IEC 19794-5 facial record). JPEG is handed on as is; JPEG 2000 becomes JPEG."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image

from agent.domain.idcard import FaceImage
from agent.drivers.idcard import tlv
from agent.errors import DataFormatError

TAG_DG2 = 0x75
TAG_BIT_GROUP = 0x7F61
TAG_BIT = 0x7F60
BIOMETRIC_DATA_TAGS = (0x5F2E, 0x7F2E)
_HEADER_SIZE = 14  # 'FAC\0', version, record length (4), image count (2)
_FACE_HEADER = 20
_IMAGE_INFO = 12
_MAX_PIXELS = 16_000_000

JPEG_MAGIC = b"\xff\xd8\xff"
JP2_MAGIC = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
J2K_MAGIC = b"\xff\x4f\xff\x51"


@dataclass(frozen=True, slots=True)
class FacialRecord:
    image_data_type: int  # 0 JPEG, 1 JPEG 2000
    width: int
    height: int
    image: bytes

    def __repr__(self) -> str:
        return f"FacialRecord(type={self.image_data_type}, {self.width}x{self.height})"


def parse_facial_record(data: bytes) -> FacialRecord:
    """The first facial image of an ISO/IEC 19794-5 record."""
    if len(data) < _HEADER_SIZE or data[:4] != b"FAC\x00":
        raise DataFormatError("DG2 biometric data is not an ISO 19794-5 facial record")
    record_length, count = struct.unpack(">IH", data[8:14])
    if count < 1 or record_length > len(data) or record_length < _HEADER_SIZE:
        raise DataFormatError("DG2 facial record header is inconsistent")
    offset = _HEADER_SIZE
    if offset + _FACE_HEADER > record_length:
        raise DataFormatError("DG2 facial record is truncated")
    block_length, points = struct.unpack(">IH", data[offset:offset + 6])
    image_info = offset + _FACE_HEADER + 8 * points
    image_start = image_info + _IMAGE_INFO
    block_end = offset + block_length
    if block_end > record_length or image_start > block_end:
        raise DataFormatError("DG2 facial record block is inconsistent")
    image_type = data[image_info + 1]
    width, height = struct.unpack(">HH", data[image_info + 2:image_info + 6])
    image = data[image_start:block_end]
    if image_type not in (0, 1):
        raise DataFormatError("DG2 image data type is neither JPEG nor JPEG 2000")
    if not image:
        raise DataFormatError("DG2 facial record carries no image")
    return FacialRecord(image_type, width, height, bytes(image))


def extract_record(dg2: bytes) -> bytes:
    """The biometric data block of the first biometric information template in DG2."""
    outer = tlv.parse_single(dg2, TAG_DG2).children()
    group = tlv.require(outer, TAG_BIT_GROUP).children()
    bit = tlv.require(group, TAG_BIT).children()
    for tag in BIOMETRIC_DATA_TAGS:
        item = tlv.find(bit, tag)
        if item is not None:
            return item.value
    raise DataFormatError("DG2 template carries no biometric data")


def _to_jpeg(image: bytes) -> tuple[bytes, int, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as img:
                if img.width * img.height > _MAX_PIXELS:
                    raise DataFormatError("DG2 face image is implausibly large")
                img.load()
                rgb = img.convert("RGB") if img.mode not in ("RGB", "L") else img
                out = io.BytesIO()
                rgb.save(out, format="JPEG", quality=90)
                return out.getvalue(), img.width, img.height
    except DataFormatError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt images
        raise DataFormatError("DG2 face image does not decode") from exc


def _jpeg_size(image: bytes) -> tuple[int, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as img:
                if img.format != "JPEG":
                    raise DataFormatError("DG2 image claims JPEG but is not")
                return img.width, img.height
    except DataFormatError:
        raise
    except Exception as exc:
        raise DataFormatError("DG2 face image does not decode") from exc


def parse_dg2(dg2: bytes) -> FaceImage:
    """The face of DG2, always as JPEG for the browser."""
    record = parse_facial_record(extract_record(dg2))
    image = record.image
    if image.startswith(JPEG_MAGIC):
        width, height = _jpeg_size(image)
        return FaceImage(image, "image/jpeg", width, height)
    if image.startswith(JP2_MAGIC) or image.startswith(J2K_MAGIC):
        jpeg, width, height = _to_jpeg(image)
        return FaceImage(jpeg, "image/jp2", width, height)
    raise DataFormatError("DG2 image is neither JPEG nor JPEG 2000")


def build_dg2(image: bytes, width: int, height: int, *, jpeg2000: bool) -> bytes:
    """Encode a DG2 with one face (used by the card emulator)."""
    info = struct.pack(">BBHHBBHH", 1, 1 if jpeg2000 else 0, width, height, 1, 2, 0, 0)
    face_header = struct.pack(">IHBBB3sH3s3s", _FACE_HEADER + _IMAGE_INFO + len(image), 0, 1, 1, 1,
                              b"\x00\x00\x00", 0, b"\x00\x00\x00", b"\x00\x00\x00")
    block = face_header + info + image
    record = b"FAC\x00" + b"010\x00" + struct.pack(">IH", _HEADER_SIZE + len(block), 1) + block
    header = tlv.encode(0xA1, tlv.encode(0x80, b"\x01\x01") + tlv.encode(0x81, b"\x02")
                        + tlv.encode(0x87, b"\x01\x01") + tlv.encode(0x88, b"\x00\x08"))
    bit = tlv.encode(TAG_BIT, header + tlv.encode(0x5F2E, record))
    return tlv.encode(TAG_DG2, tlv.encode(TAG_BIT_GROUP, tlv.encode(0x02, b"\x01") + bit))
