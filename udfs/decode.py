"""Photo bytes -> an upright RGB array, or a reason a person understands.

Archives hold everything: truncated uploads, text files named .jpg, CMYK scans, 16-bit
PNGs, HEIC from phones, animated GIFs and the odd decompression bomb. Each of those must
end as a photo_status row, never as a crashed task, so every failure here becomes a
PhotoError whose message goes straight into that row.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF as phones write them; optional so a bare install still reads JPEG/PNG/WebP
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is in requirements.txt
    pass

# We enforce our own pixel limit (embed.max_pixels) before decoding; Pillow's warning-only
# default would otherwise either pass a bomb or raise with a message users cannot act on.
Image.MAX_IMAGE_PIXELS = None


class PhotoError(Exception):
    """The photo cannot be used; str(error) is the reason stored in photo_status.error."""


@dataclass
class Photo:
    pixels: np.ndarray  # H x W x 3 uint8, upright (EXIF orientation applied)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits; convert('RGB') would clip most values to white.
        wide = np.asarray(image, dtype=np.float64)
        top = wide.max() if wide.size and wide.max() > 255 else 255.0
        grey = np.clip(wide * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels often hide black: put the photo on white as a viewer shows it.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def decode_photo(content: bytes | None, max_pixels: int) -> Photo:
    """Decode photo bytes into an upright RGB array; raise PhotoError with the reason."""
    if content is None or len(content) == 0:
        raise PhotoError("empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(content))
    except UnidentifiedImageError:
        raise PhotoError("not a photo in a readable format (JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC)") from None
    except OSError as exc:
        raise PhotoError(f"damaged or truncated file: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is this photo's problem only
        raise PhotoError(f"cannot open photo: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise PhotoError(
            f"photo declares {width}x{height} = {width * height / 1e6:.0f} megapixels, over the "
            f"limit of {max_pixels / 1e6:.0f} (embed.max_pixels); refused as a possible decompression bomb")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": still a usable photo
            if getattr(image, "is_animated", False):
                image.seek(0)  # an animated GIF/WebP: its first frame stands for the photo
            image.load()
            image = ImageOps.exif_transpose(image) or image
            image = _to_rgb(image)
            pixels = np.asarray(image, dtype=np.uint8)
    except OSError as exc:
        raise PhotoError(f"damaged or truncated file: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise PhotoError(f"cannot decode photo: {exc}") from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise PhotoError(f"decoded to an unusable shape {pixels.shape}")
    return Photo(np.ascontiguousarray(pixels))


def downscale(pixels: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longest side is at most max_side, and the factor back to the original."""
    height, width = pixels.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return pixels, 1.0
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(small), longest / max_side


def jpeg_bytes(pixels: np.ndarray, max_side: int, quality: int = 85) -> bytes:
    image = Image.fromarray(pixels)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
