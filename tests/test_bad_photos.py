"""A corpus of bad and odd inputs through the real embed job: every file ends as a correct row,
none crashes the job, none is dropped."""
import numpy as np
import pandas as pd
import pytest

from facecluster.jobs import embed, ingest
from tests import photos

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# file name -> (status, faces, words the reason must contain)
EXPECTED = {
    "zero_bytes.jpg": ("error", 0, "empty file"),
    "truncated.jpg": ("error", 0, "truncated"),
    "diary_renamed.jpg": ("error", 0, "not a photo"),
    "bomb.png": ("error", 0, "decompression bomb"),
    "cmyk.jpg": ("ok", 1, None),
    "greyscale.jpg": ("ok", 1, None),
    "sixteen_bit.png": ("ok", 1, None),
    "alpha.png": ("ok", 1, None),
    "exif_rotated.jpg": ("ok", 1, None),
    "animated.gif": ("ok", 1, None),
    "phone.heic": ("ok", 1, None),
    "sixty_megapixels.jpg": ("ok", 1, None),
    "upright.jpg": ("ok", 1, None),
}


@pytest.fixture(scope="module")
def bad_run(spark, settings, tmp_path_factory):
    archive = tmp_path_factory.mktemp("bad") / "photos" / "scans"
    archive.mkdir(parents=True)
    contents = {
        "zero_bytes.jpg": b"",
        "truncated.jpg": photos.truncated_jpeg(),
        "diary_renamed.jpg": b"Dear diary, today I renamed this file to holiday.jpg",
        "bomb.png": photos.decompression_bomb(),
        "cmyk.jpg": photos.cmyk_jpeg(),
        "greyscale.jpg": photos.greyscale_jpeg(),
        "sixteen_bit.png": photos.sixteen_bit_png(),
        "alpha.png": photos.rgba_png(),
        "exif_rotated.jpg": photos.exif_rotated_jpeg(),
        "animated.gif": photos.animated_gif(),
        "phone.heic": photos.heic(),
        "sixty_megapixels.jpg": photos.sixty_megapixel_jpeg(),
        "upright.jpg": photos.PORTRAIT.read_bytes(),
    }
    for name, content in contents.items():
        (archive / name).write_bytes(content)
    out = archive.parent.parent / "out"
    ingest.ingest(spark, str(archive.parent), str(out))
    embed.embed(spark, str(out), settings["embed"], None)
    status = pd.read_parquet(out / "photo_status").merge(pd.read_parquet(out / "photos")[["photo_id", "path"]])
    status["name"] = status["path"].str.rsplit("/", n=1).str[-1]
    faces = pd.read_parquet(out / "faces")
    faces["name"] = faces["path"].str.rsplit("/", n=1).str[-1]
    return status.set_index("name"), faces


def test_photos_in_equal_photos_in_photo_status(bad_run):
    status, _ = bad_run
    assert sorted(status.index) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_input_ends_as_the_right_row(bad_run, name):
    status, faces = bad_run
    expected_status, expected_faces, reason = EXPECTED[name]
    row = status.loc[name]
    assert row["status"] == expected_status, row["error"]
    assert row["n_faces"] == expected_faces == (faces["name"] == name).sum()
    if reason:
        assert reason in row["error"]
    else:
        assert row["error"] is None


def test_faces_come_out_in_the_upright_frame_and_in_original_pixels(bad_run):
    _, faces = bad_run
    box = {name: np.asarray(face["box"]) for name, face in faces.set_index("name").iterrows()}
    upright = box["upright.jpg"]
    near = 0.05 * (upright[3] - upright[1])  # MTCNN's boxes move a little with colour and JPEG loss
    # Stored lying on its side with EXIF orientation 6: the box is in the rotated (viewed) frame.
    np.testing.assert_allclose(box["exif_rotated.jpg"], upright, atol=near)
    # The 60-megapixel frame holds the portrait 8x larger at (3000, 1000): its box is in full-size pixels.
    np.testing.assert_allclose(box["sixty_megapixels.jpg"], upright * 8 + [3000, 1000, 3000, 1000], atol=8 * near)
    for name in ("cmyk.jpg", "greyscale.jpg", "sixteen_bit.png", "alpha.png", "animated.gif", "phone.heic"):
        np.testing.assert_allclose(box[name], upright, atol=near, err_msg=name)
