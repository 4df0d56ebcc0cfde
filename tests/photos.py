"""Photos made by the tests themselves: a real sample portrait re-encoded in the many ways
archives hold photos, and broken files."""
import io

import numpy as np
from PIL import Image

from tests.conftest import ARCHIVE

PORTRAIT = ARCHIVE / "2019_birthday" / "img5.jpg"  # one face, 330x512


def portrait() -> Image.Image:
    return Image.open(PORTRAIT).convert("RGB")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """The portrait stored lying on its side with EXIF orientation 6 (rotate 90° clockwise to view),
    as phones write portraits taken in landscape sensor orientation."""
    lying = portrait().transpose(Image.Transpose.ROTATE_90)  # stored pixels: rotated 90° counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(lying, "JPEG", exif=exif, quality=92)


def sixteen_bit_png() -> bytes:
    grey = np.asarray(portrait().convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey.astype("<u2")), "PNG")


def rgba_png() -> bytes:
    image = portrait().convert("RGBA")
    alpha = np.full(image.size[::-1], 255, dtype=np.uint8)
    alpha[:20, :] = 0  # a transparent band, as cut-out photos have
    image.putalpha(Image.fromarray(alpha))
    return encode(image, "PNG")


def animated_gif() -> bytes:
    frames = [portrait(), portrait().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)


def decompression_bomb() -> bytes:
    """A small PNG whose header declares 100000 x 100000 pixels (10 gigapixels)."""
    import struct
    import zlib

    png = bytearray(encode(Image.new("RGB", (64, 64)), "PNG"))
    # IHDR's data starts at byte 16: width, height (big-endian), then its CRC at byte 29.
    png[16:24] = struct.pack(">II", 100_000, 100_000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def truncated_jpeg() -> bytes:
    whole = PORTRAIT.read_bytes()
    return whole[: len(whole) // 3]


def cmyk_jpeg() -> bytes:
    return encode(portrait().convert("CMYK"), "JPEG", quality=92)


def greyscale_jpeg() -> bytes:
    return encode(portrait().convert("L"), "JPEG", quality=92)


def heic() -> bytes:
    """HEIC as phones write it (HEVC in a HEIF container), encoded by pillow-heif's libheif."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encode(portrait(), "HEIF", quality=90)


def sixty_megapixel_jpeg() -> bytes:
    """The portrait placed in a 9,504 x 6,336 frame (60.2 megapixels), as a medium-format scan."""
    frame = Image.new("RGB", (9504, 6336), (120, 130, 140))
    frame.paste(portrait().resize((330 * 8, 512 * 8), Image.Resampling.BICUBIC), (3000, 1000))
    return encode(frame, "JPEG", quality=85)
