"""Distances that mean something, per embedding model.

Each model spreads faces differently, so every threshold belongs to one model id and is
never applied to another model's embeddings. Distances are Euclidean between L2-normalised
embeddings.
"""
from __future__ import annotations

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
MODEL_DISTANCES = {
    "dlib-resnet-v1": {"member_radius": 0.35, "split_distance": 0.38, "suggest_merge": 0.24,
                       "duplicate": 0.1, "selection_epsilon": 0.0, "attach": 0.43},
    # NOT measured here (no FaceNet weights on this machine): 1.1 is the usual VGGFace2 threshold
    # on unit vectors; the other distances keep dlib's ratio to it. Re-measure with benchmarks/lfw.py.
    "facenet-vggface2": {"member_radius": 0.83, "split_distance": 1.06, "suggest_merge": 0.61,
                         "duplicate": 0.24, "selection_epsilon": 0.0, "attach": 1.03},
}


def _distances(model_id: str) -> dict:
    if model_id not in MODEL_DISTANCES:
        raise KeyError(f"no measured distances for model {model_id!r}; known: {', '.join(MODEL_DISTANCES)}")
    return MODEL_DISTANCES[model_id]


def member_radius(model_id: str) -> float:
    return _distances(model_id)["member_radius"]


def same_person_threshold(model_id: str) -> float:
    from facecluster.recognition.verification import DistanceCalibration

    return DistanceCalibration.load(model_id).threshold_


def split_distance(model_id: str) -> float:
    return _distances(model_id)["split_distance"]


def suggest_merge_distance(model_id: str) -> float:
    return _distances(model_id)["suggest_merge"]


def duplicate_distance(model_id: str) -> float:
    return _distances(model_id)["duplicate"]


def attach_distance(model_id: str) -> float:
    return _distances(model_id)["attach"]


def selection_epsilon(model_id: str) -> float:
    return _distances(model_id)["selection_epsilon"]
