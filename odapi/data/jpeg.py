"""A JPEG's structure, checked without decoding it: what `odapi convert` does by default.

Decoding every image costs more than reading it, even at 1/8 scale. Walking the markers from
SOI to the first scan (SOS), and finding the end-of-image marker (EOI) after the scan, costs
microseconds and catches what breaks training in practice: files cut short, and headers whose
segments run past the end or lose their markers. Damage inside the compressed pixel data of an
otherwise complete file is only found by a full decode (`odapi convert --verify-pixels`).
"""

from __future__ import annotations

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0-7 carry no length field
_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-15; not DHT, JPG or DAC


def is_jpeg(data: bytes) -> bool:
    """Starts with the start-of-image marker: meant to be a JPEG, whether whole or not."""
    return data[:2] == b"\xff\xd8"


def _name(marker: int) -> str:
    names = {SOI: "SOI", EOI: "EOI", SOS: "SOS", 0xC4: "DHT", 0xDB: "DQT", 0xDD: "DRI",
             0xFE: "COM"}
    if marker in _FRAMES:
        return f"SOF{marker - 0xC0}"
    if 0xE0 <= marker <= 0xEF:
        return f"APP{marker - 0xE0}"
    return names.get(marker, f"0xFF{marker:02X}")


def jpeg_problem(data: bytes) -> str | None:
    """Why `data` is not a structurally complete JPEG, or None when it is one."""
    size = len(data)
    if data[:2] != b"\xff\xd8":
        return "it does not start with the JPEG start-of-image marker"
    pos, frame = 2, False
    while True:
        if pos >= size:
            return f"it ends after {size} bytes, before the image data (truncated)"
        if data[pos] != 0xFF:
            return f"byte {pos} should begin a marker but is {data[pos]:#04x}"
        while pos < size and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= size:
            return f"it ends after {size} bytes, before the image data (truncated)"
        marker, start = data[pos], pos - 1
        pos += 1
        if marker in _NO_LENGTH:
            continue
        if marker in (0x00, SOI, EOI):
            return f"marker {_name(marker)} at byte {start} comes before the image data"
        if pos + 2 > size:
            return f"it ends inside the {_name(marker)} segment at byte {start} (truncated)"
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2:
            return f"the {_name(marker)} segment at byte {start} has an impossible length"
        end = pos + length
        if end > size:
            return (f"the {_name(marker)} segment at byte {start} runs past the end of the "
                    "file (truncated)")
        frame = frame or marker in _FRAMES
        if marker == SOS:
            if not frame:
                return "its image data starts before any frame header (SOF)"
            if data.rfind(b"\xff\xd9", end) < 0:
                return "no end-of-image marker follows the image data (truncated)"
            return None
        pos = end
