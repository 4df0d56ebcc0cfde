"""Grouping faces into people: HDBSCAN on Euclidean distance between L2-normalised embeddings.

HDBSCAN fits photo archives: people appear with very different frequencies (clusters of any
size and density) and most archives hold many faces seen once, which it answers with noise
(person -1) instead of forcing them into someone else's group.
"""
from __future__ import annotations

import copy

import numpy as np

from facecluster.errors import UserError

NOISE = -1
# Up to this many faces the hdbscan library's exact answer takes under half a minute (7 s at
# 10K 128-d here); above, the kNN graph (benchmarks/scale.py).
AUTO_EXACT_UP_TO = 20_000
# Average linkage holds a person's pairwise distances: people larger than this are not split.
SPLIT_AT_MOST = 10_000


class MixedModelsError(UserError, ValueError):
    """Embeddings of different models live in different spaces and cannot be clustered together."""


def check_one_model(models) -> str:
    distinct = sorted(set(models))
    if len(distinct) > 1:
        raise MixedModelsError(
            f"the faces were embedded by different models ({', '.join(distinct)}); their distances mean "
            "nothing to each other. Re-run embed with one --embedder, or cluster one model's faces at a time.")
    return distinct[0] if distinct else ""


def members_by_person(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(person, indices of their faces) for every person, in one sort: O(n log n), where a scan
    per person would be O(n x people), hours at a million faces."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]]) if len(labels) else []
    groups = np.split(order, starts[1:]) if len(labels) else []
    return [(int(sorted_labels[start]), group) for start, group in zip(starts, groups)
            if sorted_labels[start] != NOISE]


def split_mixed_people(X: np.ndarray, labels: np.ndarray, max_distance: float, min_cluster_size: int) -> np.ndarray:
    """Split each person whose faces fall into groups further apart than max_distance on
    average (average linkage), as when two look-alikes meet in one HDBSCAN cluster.

    HDBSCAN with min_samples 2 chains two similar people through their nearest faces; on LFW
    it put Hans Blix and John Ashcroft in one person. Groups smaller than min_cluster_size
    stay with nobody (noise).
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = labels.copy()
    next_label = int(labels.max()) + 1 if len(labels) else 0
    for _, members in members_by_person(labels):
        if len(members) < 2 * min_cluster_size or len(members) > SPLIT_AT_MOST:
            continue
        groups = fcluster(linkage(X[members], method="average", metric="euclidean"), max_distance, "distance")
        if groups.max() == 1:
            continue
        sizes = np.bincount(groups)
        for group in np.unique(groups):
            chosen = members[groups == group]
            if sizes[group] < min_cluster_size:
                labels[chosen] = NOISE
            elif group != groups[np.argmax(sizes[groups])]:  # the largest group keeps the person's number
                labels[chosen] = next_label
                next_label += 1
    return labels


def prune_strangers(X: np.ndarray, labels: np.ndarray, max_distance: float, min_cluster_size: int) -> np.ndarray:
    """Move to noise the faces further than max_distance from the centroid of the rest of their person.

    HDBSCAN follows density, so a stranger who happens to sit near one of a person's faces is
    pulled in with them, and two strangers can make a "person" of two. The worst-placed face
    goes first and the centroids are recomputed, so one intruder in a small group does not
    drag its true members out with it. People left smaller than min_cluster_size become noise.
    """
    labels = labels.copy()
    for _, members in members_by_person(labels):
        while len(members) >= 2:
            rest = X[members].sum(axis=0) - X[members]  # each member's leave-one-out centroid
            rest /= np.linalg.norm(rest, axis=1, keepdims=True).clip(1e-12)
            distance = np.linalg.norm(X[members] - rest, axis=1)
            worst = int(np.argmax(distance))
            if distance[worst] <= max_distance:
                break
            labels[members[worst]] = NOISE
            members = np.delete(members, worst)
        if len(members) < min_cluster_size:
            labels[members] = NOISE
    return labels


def collapse_near_duplicates(X: np.ndarray, max_distance: float, k: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """duplicate_groups over each face's k nearest, searched exactly (for the exact algorithm;
    the kNN-graph algorithm reads them off the graph it builds anyway)."""
    from facecluster.duplicates import duplicate_groups
    from facecluster.knn_hdbscan import nearest_faces

    n = len(X)
    if n < 2 or not max_distance:
        return np.arange(n), np.arange(n)
    distances, found = nearest_faces(X, X, min(k, n))
    return duplicate_groups(X, distances, found, max_distance)


class PeopleClusterer:
    """Estimator in hdbscan's style: fit(X) sets labels_, probabilities_, outlier_scores_.

    X: (n_faces, d) float32, rows L2-normalised. labels_ are person numbers, -1 for noise
    (a face seen once, or too unlike the person it is nearest to). algorithm: 'exact' (the
    hdbscan library), 'knn' (facecluster.knn_hdbscan, for large runs) or 'auto' (exact up to
    AUTO_EXACT_UP_TO faces); device: where 'knn' searches ('auto', 'cpu', 'cuda'). duplicate_distance:
    faces closer than this are copies of one photo, clustered as one face (facecluster.duplicates).
    After HDBSCAN, when set, split_distance splits people made of two groups (split_mixed_people) and
    max_member_distance removes faces too far from the rest of their person (prune_strangers).
    """

    def __init__(self, min_cluster_size: int = 2, min_samples: int = 2, cluster_selection_epsilon: float = 0.0,
                 cluster_selection_method: str = "eom", split_distance: float | None = None,
                 max_member_distance: float | None = None, algorithm: str = "exact", device: str = "auto",
                 duplicate_distance: float | None = None):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.cluster_selection_method = cluster_selection_method
        self.split_distance = split_distance
        self.max_member_distance = max_member_distance
        self.algorithm = algorithm
        self.device = device
        self.duplicate_distance = duplicate_distance

    @classmethod
    def from_settings(cls, cluster_settings: dict, model_id: str) -> "PeopleClusterer":
        from facecluster import thresholds

        measured = {"max_member_distance": thresholds.member_radius, "split_distance": thresholds.split_distance,
                    "duplicate_distance": thresholds.duplicate_distance,
                    "cluster_selection_epsilon": thresholds.selection_epsilon}
        distances = {key: find(model_id) if cluster_settings[key] == "auto" else cluster_settings[key]
                     for key, find in measured.items()}
        return cls(**distances, **{k: cluster_settings[k] for k in ("min_cluster_size", "min_samples",
                                                                    "cluster_selection_method", "algorithm", "device")})

    def chosen_algorithm(self, n_faces: int) -> str:
        if self.algorithm != "auto":
            return self.algorithm
        return "exact" if n_faces <= AUTO_EXACT_UP_TO else "knn"

    def fit(self, X: np.ndarray) -> "PeopleClusterer":
        # The kNN-graph algorithm finds copies in the graph it builds (KnnHDBSCAN).
        if self.duplicate_distance and self.chosen_algorithm(len(X)) == "exact":
            representatives, group = collapse_near_duplicates(X, self.duplicate_distance)
            if len(representatives) < len(X):
                once = copy.copy(self)
                once.duplicate_distance = None
                once.fit(X[representatives])
                self.algorithm_ = getattr(once, "algorithm_", None)
                self.labels_ = once.labels_[group]
                self.probabilities_ = once.probabilities_[group]
                self.outlier_scores_ = once.outlier_scores_[group]
                return self
        n = len(X)
        if n < max(2, self.min_cluster_size):
            # Too few faces to find any group: everyone is a face seen once.
            self.labels_ = np.full(n, NOISE, dtype=np.int64)
            self.probabilities_ = np.zeros(n)
            self.outlier_scores_ = np.ones(n)
            return self
        self.algorithm_ = self.chosen_algorithm(n)
        if self.algorithm_ == "exact":
            import hdbscan

            X = np.ascontiguousarray(X, dtype=np.float64)
            model = hdbscan.HDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                                    cluster_selection_epsilon=self.cluster_selection_epsilon,
                                    cluster_selection_method=self.cluster_selection_method,
                                    metric="euclidean", core_dist_n_jobs=1)
            model.fit(X)
            self.outlier_scores_ = np.nan_to_num(model.outlier_scores_.astype(np.float64))
        else:
            from facecluster.knn_hdbscan import KnnHDBSCAN

            X = np.ascontiguousarray(X, dtype=np.float32)
            model = KnnHDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                               cluster_selection_epsilon=self.cluster_selection_epsilon,
                               cluster_selection_method=self.cluster_selection_method,
                               device=self.device, duplicate_distance=self.duplicate_distance).fit(X)
            self.outlier_scores_ = np.full(n, np.nan)  # GLOSH is not computed on the kNN graph
        self.labels_ = model.labels_.astype(np.int64)
        self.probabilities_ = np.nan_to_num(model.probabilities_.astype(np.float64))
        if self.split_distance is not None:
            self.labels_ = split_mixed_people(X, self.labels_, self.split_distance, self.min_cluster_size)
        if self.max_member_distance is not None:
            self.labels_ = prune_strangers(X, self.labels_, self.max_member_distance, self.min_cluster_size)
            self.probabilities_[self.labels_ == NOISE] = 0.0
        return self

    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).labels_
