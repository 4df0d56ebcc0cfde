"""Faces too poor to say who they are: kept in `faces`, left out of clustering, with the reason.

A face network maps the faces it cannot read (blurred, half behind a shoulder, cut by the
frame, a face 40 pixels wide in a crowd) near one point: the faces of hundreds of strangers then
lie as close as one person's and make a "person" of them. Two signals tell them (measured on the
dev sets: docs/benchmarks.md, "Archive shapes: every rule on every set"):

- the detector's own score: MTCNN is less sure of a blurred or half-hidden face
  (`cluster.min_face_score`, off by default: at 0.99 it also leaves out 4% of a web archive's
  good faces);
- the network's own signal, the face's *clarity*: its distance from the point where the
  network puts the faces it cannot read (the mean of the poorest faces of the dev LFW split,
  per model: unclear_faces.json). A face the network reads lies away from it, towards its
  person (`cluster.min_clarity`: 0.33 for dlib's four views, the default).

The face's size (`cluster.min_face_px`) is checked too.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

TOO_SMALL = "too small"
UNCLEAR = "unclear"
NOT_A_FACE = "labelled not a face"
CENTRES = Path(__file__).with_name("unclear_faces.json")


@lru_cache(maxsize=None)
def _measured(model_id: str) -> dict | None:
    """The model's unclear centre and threshold (unclear_faces.json), or None where not measured."""
    return json.loads(CENTRES.read_text()).get(model_id) if CENTRES.exists() else None


def unclear_centre(model_id: str) -> np.ndarray | None:
    """Where the model puts the faces it cannot read (unit length), or None where not measured."""
    found = _measured(model_id)
    return None if found is None else np.asarray(found["centre"], dtype=np.float32)


def min_clarity(setting, model_id: str) -> float | None:
    """cluster.min_clarity: a number, None (off), or "auto": the model's measured threshold (None
    where the model has no unclear centre)."""
    if setting != "auto":
        return setting
    found = _measured(model_id)
    return None if found is None else float(found["min_clarity"])


def clarity(embeddings: np.ndarray, model_id: str) -> np.ndarray:
    """Each face's distance from the model's unclear centre (unit vectors: 0 to 2); NaN for a
    model without one."""
    centre = unclear_centre(model_id)
    if centre is None or len(centre) != embeddings.shape[1]:
        return np.full(len(embeddings), np.nan)
    return np.sqrt(np.clip(2.0 - 2.0 * (embeddings @ centre), 0.0, None)).astype(np.float64)


def left_out(face_px: np.ndarray, face_score: np.ndarray, face_clarity: np.ndarray, cluster_settings: dict,
             min_clarity: float | None) -> np.ndarray:
    """Why each face is left out of clustering ("" for the faces clustered): too small, or unclear
    (a detector's score below min_face_score, or clarity below min_clarity; None: not checked)."""
    reason = np.full(len(face_px), "", dtype=object)
    unclear = np.asarray(face_score) < cluster_settings["min_face_score"]
    if min_clarity is not None:
        unclear |= np.nan_to_num(np.asarray(face_clarity, dtype=np.float64), nan=2.0) < min_clarity
    reason[unclear] = UNCLEAR
    reason[np.asarray(face_px) < cluster_settings["min_face_px"]] = TOO_SMALL
    return reason
