"""Grouping faces into people: HDBSCAN on Euclidean distance between L2-normalised embeddings.

HDBSCAN fits photo archives: people appear with very different frequencies (clusters of any
size and density) and most archives hold many faces seen once, which it answers with noise
(person -1) instead of forcing them into someone else's group.
"""
from __future__ import annotations

import numpy as np

NOISE = -1


class MixedModelsError(ValueError):
    """Embeddings of different models live in different spaces and cannot be clustered together."""


def check_one_model(models) -> str:
    distinct = sorted(set(models))
    if len(distinct) > 1:
        raise MixedModelsError(
            f"the faces were embedded by different models ({', '.join(distinct)}); their distances mean "
            "nothing to each other. Re-run embed with one --embedder, or cluster one model's faces at a time.")
    return distinct[0] if distinct else ""


class PeopleClusterer:
    """Estimator in hdbscan's style: fit(X) sets labels_, probabilities_, outlier_scores_.

    X: (n_faces, d) float32, rows L2-normalised. labels_ are person numbers 0..k-1, -1 for noise.
    """

    def __init__(self, min_cluster_size: int = 2, min_samples: int = 1, cluster_selection_epsilon: float = 0.0,
                 cluster_selection_method: str = "eom", algorithm: str = "exact"):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.cluster_selection_method = cluster_selection_method
        self.algorithm = algorithm

    @classmethod
    def from_settings(cls, cluster_settings: dict) -> "PeopleClusterer":
        return cls(**{k: cluster_settings[k] for k in (
            "min_cluster_size", "min_samples", "cluster_selection_epsilon", "cluster_selection_method", "algorithm")})

    def fit(self, X: np.ndarray) -> "PeopleClusterer":
        X = np.ascontiguousarray(X, dtype=np.float64)
        n = len(X)
        if n < max(2, self.min_cluster_size):
            # Too few faces to find any group: everyone is a face seen once.
            self.labels_ = np.full(n, NOISE, dtype=np.int64)
            self.probabilities_ = np.zeros(n)
            self.outlier_scores_ = np.ones(n)
            return self
        import hdbscan

        model = hdbscan.HDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                                cluster_selection_epsilon=self.cluster_selection_epsilon,
                                cluster_selection_method=self.cluster_selection_method,
                                metric="euclidean", core_dist_n_jobs=1)
        model.fit(X)
        self.labels_ = model.labels_.astype(np.int64)
        self.probabilities_ = np.nan_to_num(model.probabilities_.astype(np.float64))
        self.outlier_scores_ = np.nan_to_num(model.outlier_scores_.astype(np.float64))
        return self

    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).labels_
