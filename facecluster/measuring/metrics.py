"""Clustering quality as the face-clustering literature reports it.

Noise faces (label -1) count as singletons: a face the clustering left alone is a person of
one face, which is right for a stranger seen once and a missed pair for anyone else.
"""
from __future__ import annotations

from collections import Counter

import numpy as np


def _codes(labels) -> list[int]:
    """Integer codes for labels of any type, each noise face (-1 or None) a code of its own."""
    codes: dict = {}
    return [codes.setdefault(("noise", i) if value is None or value == -1 else ("label", value), len(codes))
            for i, value in enumerate(labels)]


def _pair_count(counts) -> int:
    return sum(c * (c - 1) // 2 for c in counts)


def pairwise_scores(truth, predicted) -> dict:
    """Precision, recall and F over all pairs of faces: a pair is positive when both faces
    are put in one person. precision = true pairs found / pairs found."""
    truth, predicted = _codes(truth), _codes(predicted)
    together = _pair_count(Counter(zip(truth, predicted)).values())
    found = _pair_count(Counter(predicted).values())
    real = _pair_count(Counter(truth).values())
    precision = together / found if found else 1.0
    recall = together / real if real else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f": f}


def bcubed_scores(truth, predicted) -> dict:
    """BCubed: per face, the share of its predicted person that is truly its person (precision)
    and the share of its true person that it was put with (recall), averaged over faces."""
    truth, predicted = _codes(truth), _codes(predicted)
    both = Counter(zip(truth, predicted))
    by_truth, by_predicted = Counter(truth), Counter(predicted)
    n = len(truth)
    precision = sum(both[(t, p)] / by_predicted[p] for t, p in zip(truth, predicted)) / n if n else 1.0
    recall = sum(both[(t, p)] / by_truth[t] for t, p in zip(truth, predicted)) / n if n else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f": f}


def nmi(truth, predicted) -> float:
    """Normalised mutual information (arithmetic mean normalisation, as scikit-learn's default)."""
    truth, predicted = _codes(truth), _codes(predicted)
    n = len(truth)
    if n == 0:
        return 1.0
    joint, by_truth, by_predicted = Counter(zip(truth, predicted)), Counter(truth), Counter(predicted)
    mutual = sum(c / n * np.log(c * n / (by_truth[t] * by_predicted[p])) for (t, p), c in joint.items())
    entropy_t = -sum(c / n * np.log(c / n) for c in by_truth.values())
    entropy_p = -sum(c / n * np.log(c / n) for c in by_predicted.values())
    if entropy_t == 0 and entropy_p == 0:
        return 1.0
    return float(2 * mutual / (entropy_t + entropy_p))


def cluster_report(truth, predicted) -> dict:
    """Everything `facecluster evaluate clusters` prints."""
    predicted_arr = np.asarray(predicted)
    found = set(predicted_arr.tolist()) - {-1}
    return {"pairwise": pairwise_scores(truth, predicted), "bcubed": bcubed_scores(truth, predicted),
            "nmi": nmi(truth, predicted), "people_found": len(found), "people_true": len(set(truth)),
            "noise_share": float(np.mean(predicted_arr == -1)) if len(predicted_arr) else 0.0,
            "faces": int(len(predicted_arr))}
