"""Distances that mean something, per embedding model.

Each model spreads faces differently, so every threshold belongs to one model id and is
never applied to another model's embeddings. Distances are Euclidean between L2-normalised
embeddings.

A model whose distances were never measured on labelled faces gets them from the archive it is
clustering: faces of one photo are different people, so every archive tells, for free, how far
apart its different people lie. The median of those distances held still across very different
archives for dlib (0.502 to 0.515: news photos, crops of family photos with relatives, web photos
of actors with co-stars, a crowd; benchmarks/archive_distances.py), so that model gets dlib's
measured distances scaled by its archive's median over dlib's. It assumes the two models' distances
differ by a scale, not in shape; on dlib itself, fitted to each set from the other sets, the
distances land within 1.8% of the tuned ones and cluster as well (docs/benchmarks.md, Distances
from the archive).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

# The same-person (verification) threshold is not here: it is learned from labelled pairs with
# the probability calibration (facecluster/recognition/verification.py, facecluster/recognition/calibration/<model>.json).
# member_radius: how far a face may sit from the centroid of the rest of its person before
#   clustering calls it a stranger; on LFW (docs/benchmarks.md, Clustering quality) 0.33 and 0.35 tie (pairwise
#   precision 0.998 / 0.997, F 0.985 / 0.986); 0.35 keeps the sample archive's people whole
#   (its photos span years: recall 0.96 against 0.86 at 0.33).
# split_distance: average-linkage distance at which one cluster is split into two people.
# suggest_merge: centroid distance under which two people are suggested as perhaps one;
#   benchmarks/suggestions.py (LFW in 4 albums clustered apart): precision 0.945, recall 0.953.
# duplicate: faces closer than this are copies of one photo (a burst, a resized, cropped or
#   re-saved copy) and are clustered as one face; each copy takes its person. Two copies are a
#   cluster denser than any person, and HDBSCAN's excess-of-mass selection kept hundreds of such
#   pairs instead of the people: on celebs17 with near-duplicates 0.1 takes pairwise F from 0.023
#   to 0.923 and changes neither LFW nor families (benchmarks/clustering_tries.py, docs/benchmarks.md).
# selection_epsilon: HDBSCAN's cluster_selection_epsilon. 0.3 adds 0.02 of F on celebs17 but
#   merges relatives on families (precision 0.943 -> 0.889); below 0.3 it changes nothing: off.
# attach: a face left out by HDBSCAN joins the person holding most of its nearest faces within this.


@dataclass(frozen=True)
class ModelDistances:
    member_radius: float
    split_distance: float
    suggest_merge: float
    duplicate: float
    selection_epsilon: float
    attach: float
    source: str

    @property
    def measured(self) -> bool:
        return self.source == MEASURED_SOURCE

    def scaled(self, scale: float, source: str) -> "ModelDistances":
        return replace(self, source=source, **{f.name: float(getattr(self, f.name) * scale)
                                               for f in fields(self) if f.name != "source"})


MEASURED_SOURCE = "measured on labelled faces"
REFERENCE = "dlib-resnet-v1"
MEASURED = {
    REFERENCE: ModelDistances(member_radius=0.35, split_distance=0.38, suggest_merge=0.24, duplicate=0.1,
                              selection_epsilon=0.0, attach=0.43, source=MEASURED_SOURCE),
    # dlib's network on four views of a face: one person's faces lie 4.5% closer (LFW dev pairs:
    # same-person median 0.302 -> 0.288, 90th percentile 0.373 -> 0.356; different people 0.574 ->
    # 0.568), so the distances that bound a person shrink with them.
    "dlib-resnet-v1-four-views": ModelDistances(member_radius=0.335, split_distance=0.365, suggest_merge=0.23,
                                                duplicate=0.1, selection_epsilon=0.0, attach=0.41,
                                                source=MEASURED_SOURCE),
}
# Used only when an archive has too few photos with two faces to fit from: 1.1 is the usual
# VGGFace2 threshold on unit vectors, the other distances keep dlib's ratio to it. Not measured here
# (no FaceNet weights on this machine).
GUESSED = {
    "facenet-vggface2": ModelDistances(member_radius=0.83, split_distance=1.06, suggest_merge=0.61, duplicate=0.24,
                                       selection_epsilon=0.0, attach=1.03, source="guessed, not measured"),
}
# Median distance between two faces of one photo, over 1,772 such pairs of four sets.
SAME_PHOTO_MEDIAN = {REFERENCE: 0.510}
# Fewer pairs than this leave the median too loose to scale by (its spread across sets above).
MIN_SAME_PHOTO_PAIRS = 100


def same_photo_distances(embeddings: np.ndarray, photos) -> np.ndarray:
    """The distances between every two faces of one photo: pairs of different people."""
    photos = np.asarray(photos)
    order = np.argsort(photos, kind="stable")
    starts = np.flatnonzero(np.r_[True, photos[order][1:] != photos[order][:-1]])
    out = []
    for start, end in zip(starts, np.r_[starts[1:], len(order)]):
        if end - start < 2:
            continue
        faces = embeddings[order[start:end]].astype(np.float64)
        upper = np.triu_indices(end - start, 1)
        out.append(np.linalg.norm(faces[:, None] - faces[None], axis=2)[upper])
    return np.concatenate(out) if out else np.zeros(0)


def distances(model_id: str, embeddings: np.ndarray | None = None, photos=None) -> ModelDistances:
    """The model's measured distances; for a model without them, the reference model's scaled to
    this archive's pairs of faces sharing a photo when it has enough, else the guessed ones."""
    if model_id in MEASURED:
        return MEASURED[model_id]
    if model_id not in GUESSED:
        raise KeyError(f"no distances for model {model_id!r}; known: {', '.join([*MEASURED, *GUESSED])}")
    if embeddings is not None and photos is not None:
        pairs = same_photo_distances(embeddings, photos)
        if len(pairs) >= MIN_SAME_PHOTO_PAIRS:
            median = float(np.median(pairs))
            return MEASURED[REFERENCE].scaled(
                median / SAME_PHOTO_MEDIAN[REFERENCE],
                f"fitted to this archive: {len(pairs)} pairs of faces sharing a photo, median {median:.3f}")
    return GUESSED[model_id]


def same_person_threshold(model_id: str) -> float:
    from facecluster.recognition.verification import DistanceCalibration

    return DistanceCalibration.load(model_id).threshold_
