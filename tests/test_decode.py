import numpy as np
import pytest

from tests import photos
from facecluster.udfs.decode import PhotoError, decode_photo, downscale

LIMIT = 120_000_000


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"Dear diary, today I renamed this file to holiday.jpg", "not a photo"),
    (photos.truncated_jpeg(), "truncated"),
    (photos.decompression_bomb(), "decompression bomb"),
])
def test_unusable_photos_raise_a_readable_reason(content, reason):
    with pytest.raises(PhotoError, match=reason):
        decode_photo(content, LIMIT)


@pytest.mark.parametrize("make", [
    lambda: photos.encode(photos.portrait().convert("CMYK"), "JPEG"),
    lambda: photos.encode(photos.portrait().convert("L"), "JPEG"),
    lambda: photos.encode(photos.portrait(), "WEBP"),
    photos.sixteen_bit_png,
    photos.rgba_png,
    photos.animated_gif,
], ids=["cmyk-jpeg", "greyscale-jpeg", "webp", "16-bit-png", "rgba-png", "animated-gif"])
def test_odd_but_valid_photos_decode_to_rgb(make):
    photo = decode_photo(make(), LIMIT)
    assert photo.pixels.dtype == np.uint8 and photo.pixels.shape == (512, 330, 3)
    # Content survives the conversion: not a blank (all white / all black) image.
    assert 30 < photo.pixels.mean() < 230 and photo.pixels.std() > 20


def test_exif_orientation_is_applied():
    photo = decode_photo(photos.exif_rotated_jpeg(), LIMIT)
    assert (photo.width, photo.height) == (330, 512)  # upright again, not the stored 512x330
    upright = np.asarray(photos.portrait(), dtype=np.float64)
    assert np.abs(photo.pixels.astype(np.float64) - upright).mean() < 6  # only JPEG loss


def test_16_bit_png_keeps_its_tones():
    photo = decode_photo(photos.sixteen_bit_png(), LIMIT)
    grey = np.asarray(photos.portrait().convert("L"), dtype=np.float64)
    assert np.abs(photo.pixels[..., 0] - grey).mean() < 2


def test_transparent_pixels_become_white():
    photo = decode_photo(photos.rgba_png(), LIMIT)
    assert (photo.pixels[:20] == 255).all()


def test_downscale_bounds_the_longest_side_and_reports_the_factor():
    pixels = np.zeros((3000, 1200, 3), dtype=np.uint8)
    small, factor = downscale(pixels, 1000)
    assert small.shape == (1000, 400, 3)
    assert factor == pytest.approx(3.0)
    same, one = downscale(pixels[:500, :500], 1000)
    assert same.shape == (500, 500, 3) and one == 1.0
