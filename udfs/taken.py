"""When a photo was taken, from its EXIF: DateTimeOriginal, and the offset from UTC the camera
wrote beside it (OffsetTimeOriginal) where there is one.

Only DateTimeOriginal says when the picture was taken: DateTimeDigitized is when a scanner read
an album page (decades later) and IFD0's DateTime when an editor last saved the file, so neither
is used. A camera writes local time without a zone unless it also writes the offset, so the time
is kept as the camera's clock showed it (a timestamp without zone) and the offset apart.
"""
from __future__ import annotations

import io
import re
from datetime import datetime

EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011
HEAD_BYTES = 256 * 1024  # EXIF sits in a JPEG's first segments (an APP1 is at most 64 KB)

_OFFSET = re.compile(r"^[+-](?:0\d|1[0-4]):[0-5]\d$")


def exif_taken_at(head: bytes | None) -> tuple[datetime | None, str | None]:
    """(local time the photo was taken, its offset such as '+02:00' or None) from the first bytes
    of a photo; (None, None) when they hold no usable DateTimeOriginal. Never raises: a photo
    without EXIF, or with EXIF a camera got wrong ('0000:00:00 00:00:00'), simply has no date."""
    if not head:
        return None, None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(head)) as image:
            exif = image.getexif().get_ifd(EXIF_IFD)
            written, offset = exif.get(DATE_TIME_ORIGINAL), exif.get(OFFSET_TIME_ORIGINAL)
    except Exception:  # noqa: BLE001 - a cut-off or broken header: no date, the embed job reports the photo
        return None, None
    taken = _exif_time(written)
    if taken is None:
        return None, None
    offset = offset.strip("\x00 ") if isinstance(offset, str) else None
    return taken, offset if offset and _OFFSET.match(offset) else None


def _exif_time(value) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ")
    for layout, width in (("%Y:%m:%d %H:%M:%S", 19), ("%Y-%m-%d %H:%M:%S", 19), ("%Y:%m:%d", 10)):
        try:
            taken = datetime.strptime(value[:width], layout)
        except ValueError:
            continue
        return taken if 1826 <= taken.year <= 2200 else None  # the first photograph; a clock never set
    return None
