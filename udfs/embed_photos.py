"""The executor side of the embed job: a batch of photos in, one result row per photo out.

Each result row carries the photo's status and its faces as a nested list, so a photo's
outcome is written whole: there is no state in which some of a photo's faces exist and its
status does not. The embed job splits these rows into the `faces` and `photo_status` tables.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from facecluster.udfs.decode import Photo, PhotoError, decode_photo, jpeg_bytes
from facecluster.udfs.detector import DetectedFace
from facecluster.udfs.failpoints import hold_for_kill

RESULT_COLUMNS = ["photo_id", "album", "path", "status", "error", "width", "height", "n_faces", "model", "faces"]
RESULT_SCHEMA = (
    "photo_id string, album string, path string, status string, error string, "
    "width int, height int, n_faces int, model string, "
    "faces array<struct<face_index:int, box:array<float>, landmarks:array<array<float>>, "
    "det_score:float, face_px:float, embedding:array<float>, thumb:binary>>"
)

# Full-resolution pixels held at once while a batch's faces are cut; bounds worker memory
# whatever the photos' sizes (a 60-megapixel photo is then processed on its own).
PIXEL_BUDGET = 64_000_000


def _thumb(pixels: np.ndarray, face: DetectedFace, size: int) -> bytes:
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = face.box
    pad = 0.2 * max(x2 - x1, y2 - y1)
    crop = pixels[int(max(0, y1 - pad)):int(min(height, y2 + pad)), int(max(0, x1 - pad)):int(min(width, x2 + pad))]
    return jpeg_bytes(np.ascontiguousarray(crop), size)


def _chunks(rows: pd.DataFrame, max_pixels: int) -> Iterator[list[tuple[pd.Series, Photo | PhotoError]]]:
    """Decoded photos in groups whose pixels fit PIXEL_BUDGET (a photo that cannot be decoded
    travels with its error)."""
    chunk, held = [], 0
    for _, row in rows.iterrows():
        try:
            photo: Photo | PhotoError = decode_photo(row["content"], max_pixels)
            pixels = photo.width * photo.height
        except PhotoError as exc:
            photo, pixels = exc, 0
        if chunk and held + pixels > PIXEL_BUDGET:
            yield chunk
            chunk, held = [], 0
        chunk.append((row, photo))
        held += pixels
    if chunk:
        yield chunk


def _detect(detector, photos: list[Photo]) -> list[list[DetectedFace] | Exception]:
    try:
        return detector.detect([p.pixels for p in photos])
    except Exception:  # noqa: BLE001 - find the photo that broke the batch, keep the others
        results: list[list[DetectedFace] | Exception] = []
        for photo in photos:
            try:
                results.append(detector.detect([photo.pixels])[0])
            except Exception as exc:  # noqa: BLE001
                results.append(exc)
        return results


def embed_chunk(chunk, detector, embedder, settings: dict) -> list[dict]:
    decoded = [i for i, (_, photo) in enumerate(chunk) if isinstance(photo, Photo)]
    found = dict(zip(decoded, _detect(detector, [chunk[i][1] for i in decoded])))

    results, chips, owners = [], [], []
    for i, (row, photo) in enumerate(chunk):
        result = {"photo_id": row["photo_id"], "album": row["album"], "path": row["path"],
                  "status": "ok", "error": None, "width": None, "height": None, "n_faces": 0,
                  "model": embedder.model_id, "faces": []}
        results.append(result)
        if isinstance(photo, PhotoError):
            result.update(status="error", error=str(photo))
            continue
        result.update(width=photo.width, height=photo.height)
        faces = found[i]
        if isinstance(faces, Exception):
            result.update(status="error", error=f"face detection failed: {type(faces).__name__}: {faces}")
            continue
        try:
            cut = [(embedder.chip(photo.pixels, face.box, face.landmarks), {
                "face_index": index, "box": face.box.tolist(), "landmarks": face.landmarks.tolist(),
                "det_score": face.score, "face_px": face.short_side, "embedding": None,
                "thumb": _thumb(photo.pixels, face, settings["thumb_size"])}) for index, face in enumerate(faces)]
        except Exception as exc:  # noqa: BLE001
            result.update(status="error", error=f"cannot cut faces: {type(exc).__name__}: {exc}")
            continue
        for chip, face_row in cut:
            result["faces"].append(face_row)
            chips.append(chip)
            owners.append((result, face_row))

    # Faces of all the chunk's photos share embedder batches: most photos hold one face.
    batch = settings["faces_per_batch"]
    for start in range(0, len(chips), batch):
        try:
            vectors = embedder.embed(chips[start:start + batch])
        except Exception as exc:  # noqa: BLE001 - the photos of this batch fail, the job goes on
            for result, _ in owners[start:start + batch]:
                result.update(status="error", error=f"embedding failed: {type(exc).__name__}: {exc}")
            continue
        for (_, face_row), vector in zip(owners[start:start + batch], vectors):
            face_row["embedding"] = vector.astype(np.float32).tolist()
    for result in results:
        if result["status"] == "error":
            result["faces"] = []
        elif result["status"] == "ok":
            result["n_faces"] = len(result["faces"])
            if not result["faces"]:
                result["status"] = "no_face"
    return results


def embed_photo_batches(batches: Iterator[pd.DataFrame], settings: dict, weights_path: str | None
                        ) -> Iterator[pd.DataFrame]:
    """mapInPandas function: photos (photo_id, album, path, content) -> RESULT_SCHEMA rows."""
    from facecluster.udfs.embedders import set_threads, worker_models

    set_threads(settings["torch_threads"])
    detector, embedder = worker_models(settings, weights_path)
    for rows in batches:
        hold_for_kill("worker")  # tests of a killed worker (udfs/failpoints.py)
        out = []
        for chunk in _chunks(rows, settings["max_pixels"]):
            out.extend(embed_chunk(chunk, detector, embedder, settings))
        yield pd.DataFrame(out, columns=RESULT_COLUMNS)

