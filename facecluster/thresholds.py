"""Distances that mean something, per embedding model.

Each model spreads faces differently, so every threshold belongs to one model id and is
never applied to another model's embeddings. Distances are Euclidean between L2-normalised
embeddings.
"""
from __future__ import annotations

# The same-person (verification) threshold is not here: it is learned from labelled pairs with
# the probability calibration (facecluster/verification.py, facecluster/calibration/<model>.json).
# member_radius: how far a face may sit from the centroid of the rest of its person before
#   clustering calls it a stranger; on LFW (README, Quality) 0.33 and 0.35 tie (pairwise
#   precision 0.998 / 0.997, F 0.985 / 0.986); 0.35 keeps the sample archive's people whole
#   (its photos span years: recall 0.96 against 0.86 at 0.33).
# split_distance: average-linkage distance at which one cluster is split into two people.
# suggest_merge: centroid distance under which two people are suggested as perhaps one;
#   benchmarks/suggestions.py (LFW in 4 albums clustered apart): precision 0.945, recall 0.953.
MODEL_DISTANCES = {
    "dlib-resnet-v1": {"member_radius": 0.35, "split_distance": 0.38, "suggest_merge": 0.24},
    # NOT measured here (no FaceNet weights on this machine): 1.1 is the usual VGGFace2 threshold
    # on unit vectors; the radius keeps dlib's ratio to it. Re-measure with benchmarks/lfw.py.
    "facenet-vggface2": {"member_radius": 0.83, "split_distance": 1.06, "suggest_merge": 0.61},
}


def _distances(model_id: str) -> dict:
    if model_id not in MODEL_DISTANCES:
        raise KeyError(f"no measured distances for model {model_id!r}; known: {', '.join(MODEL_DISTANCES)}")
    return MODEL_DISTANCES[model_id]


def member_radius(model_id: str) -> float:
    return _distances(model_id)["member_radius"]


def same_person_threshold(model_id: str) -> float:
    from facecluster.verification import DistanceCalibration

    return DistanceCalibration.load(model_id).threshold_


def split_distance(model_id: str) -> float:
    return _distances(model_id)["split_distance"]


def suggest_merge_distance(model_id: str) -> float:
    return _distances(model_id)["suggest_merge"]
