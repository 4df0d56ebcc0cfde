"""Grouping faces into people: HDBSCAN on Euclidean distance between L2-normalised embeddings.

HDBSCAN fits photo archives: people appear with very different frequencies (clusters of any
size and density) and most archives hold many faces seen once, which it answers with noise
(person -1) instead of forcing them into someone else's group.
"""
from __future__ import annotations

import copy

import numpy as np

from facecluster.core.errors import UserError

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


# A person photographed over decades spreads wider than the LFW news photos the fixed distances
# were measured on. Their halves then part (average linkage) near the mean distance between two
# of their faces, while two people part much further out than the distance between a person's
# close faces: the cut is at least WIDE_PERSON_CUT times the person's quartile pair distance,
# which stays inside one person's faces even when two people of equal size are mixed.
WIDE_PERSON_CUT = 1.35
# A face is a stranger beyond the person's median distance to their centre plus this many
# robust standard deviations (MAD), never nearer than max_member_distance; judged so from
# OWN_SPREAD_FROM faces on, below which a spread is too noisy to go by.
STRANGER_DEVIATIONS = 3.0
OWN_SPREAD_FROM = 20
# A "person" whose quartile pair distance passes this share of split_distance is not one person
# photographed widely but a chain of many (on the whole LFW split, 310 faces of middle-aged men
# at 0.39, 130 blurred and half-hidden faces at 0.36; the widest true person of any dev set,
# an actor over 30 years, 0.32): it gets no allowance for its spread and is cut as a small one.
ONE_PERSON_SPREAD = 0.93


def _close_pairs_distance(faces: np.ndarray, sample: int = 400) -> float:
    """The first quartile of the distances between two faces (at most `sample` faces drawn)."""
    if len(faces) > sample:
        faces = faces[np.random.default_rng(0).choice(len(faces), sample, replace=False)]
    from scipy.spatial.distance import pdist

    return float(np.quantile(pdist(faces), 0.25))


def split_mixed_people(X: np.ndarray, labels: np.ndarray, max_distance: float, min_cluster_size: int) -> np.ndarray:
    """Split each person whose faces fall into groups further apart than max_distance on
    average (average linkage), as when two look-alikes meet in one HDBSCAN cluster.

    HDBSCAN with min_samples 2 chains two similar people through their nearest faces; on LFW
    it put Hans Blix and John Ashcroft in one person. Each group of at least min_cluster_size
    faces becomes a person. In a person of OWN_SPREAD_FROM faces or more, a smaller group is
    their odd photos (another decade, a profile, harsh light), not someone else: it stays with
    the large group whose centre is nearest, and prune_strangers judges its faces one by one
    (made noise here, they cost a widely photographed person 3% of their faces:
    benchmarks/size_sweep.py). In a smaller person it is more often a stranger chained in
    (LFW precision 0.994 against 0.989 when kept), and is noise. A person with no group that
    large is noise.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = labels.copy()
    next_label = int(labels.max()) + 1 if len(labels) else 0
    for _, members in members_by_person(labels):
        if len(members) < 2 * min_cluster_size or len(members) > SPLIT_AT_MOST:
            continue
        tree = linkage(X[members], method="average", metric="euclidean")
        cut, wide = max_distance, False
        if len(members) >= OWN_SPREAD_FROM:
            close = _close_pairs_distance(X[members])
            wide = close <= ONE_PERSON_SPREAD * max_distance
            cut = max(cut, WIDE_PERSON_CUT * close) if wide else cut
        groups = fcluster(tree, cut, "distance")
        if groups.max() == 1:
            continue
        sizes = np.bincount(groups)
        large = np.flatnonzero(sizes >= min_cluster_size)
        if len(large) == 0:
            labels[members] = NOISE
            continue
        centres = np.zeros((len(sizes), X.shape[1]))
        np.add.at(centres, groups, X[members])
        centres /= np.maximum(sizes, 1)[:, None]
        if wide:  # small groups join the nearest large one
            nearest = large[np.argmin(np.linalg.norm(centres[:, None, :] - centres[None, large, :], axis=2), axis=1)]
            groups = nearest[groups]
        else:
            labels[members[sizes[groups] < min_cluster_size]] = NOISE
        keeper = large[np.argmax(sizes[large])]  # the largest group keeps the person's number
        for group in large:
            if group != keeper:
                labels[members[groups == group]] = next_label
                next_label += 1
    return labels


def _off_the_rest(faces: np.ndarray) -> np.ndarray:
    """Each face's distance to the centroid of the others (unit length)."""
    rest = faces.sum(axis=0) - faces
    rest /= np.linalg.norm(rest, axis=1, keepdims=True).clip(1e-12)
    return np.linalg.norm(faces - rest, axis=1)


def person_radius(off_the_rest: np.ndarray, max_distance: float) -> float:
    """How far from a person's centre one of their faces may lie: max_distance, or for a person
    of OWN_SPREAD_FROM faces or more, their median distance plus STRANGER_DEVIATIONS
    robust standard deviations (MAD), whichever is further."""
    if len(off_the_rest) < OWN_SPREAD_FROM:
        return max_distance
    middle = np.median(off_the_rest)
    spread = 1.4826 * np.median(np.abs(off_the_rest - middle))
    return max(max_distance, float(middle + STRANGER_DEVIATIONS * spread))


def centre_and_radius(faces: np.ndarray, max_distance: float) -> tuple[np.ndarray, float]:
    """A person's centre (unit length) and person_radius, from their faces."""
    centre = faces.mean(axis=0)
    centre /= max(np.linalg.norm(centre), 1e-12)
    return centre, person_radius(_off_the_rest(faces), max_distance)


def prune_strangers(X: np.ndarray, labels: np.ndarray, max_distance: float, min_cluster_size: int) -> np.ndarray:
    """Move to noise the faces further from the centroid of the rest of their person than
    person_radius allows (max_distance, or their own spread for a large person).

    HDBSCAN follows density, so a stranger who happens to sit near one of a person's faces is
    pulled in with them, and two strangers can make a "person" of two. The worst-placed face
    goes first and the centroids are recomputed, so one intruder in a small group does not
    drag its true members out with it. People left smaller than min_cluster_size become noise.
    """
    labels = labels.copy()
    for _, members in members_by_person(labels):
        radius = None
        while len(members) >= 2:
            distance = _off_the_rest(X[members])
            radius = radius or person_radius(distance, max_distance)
            worst = int(np.argmax(distance))
            if distance[worst] <= radius:
                break
            labels[members[worst]] = NOISE
            members = np.delete(members, worst)
        if len(members) < min_cluster_size:
            labels[members] = NOISE
    return labels


# Two faces of one photo lying within this many member radii (0.37 for dlib's four views) are one
# person seen twice: a collage, a scanned album page, a photo of a framed photo. On the collage
# set 64% of such pairs lie this close, and 2.5% (dev LFW) to 6% (collages of two actors) of two
# people side by side; 1.2 and 1.3 took familyphotos' mixing of relatives from 29% to 31 and 33%
# (docs/benchmarks.md, rule by set).
TWICE_IN_ONE_PHOTO = 1.1


def twice_per_face(X: np.ndarray, photos: np.ndarray, twice: float | None) -> np.ndarray | None:
    """Each face's `twice` distance: the model's, or 0 for a face with two or more other faces of
    its photo that close. One person is seen twice in a collage; three faces of one photo that
    alike are a crowd of look-alikes (dlib's own example photo of bald men: 23 men, 4 "people"
    of 4 to 6 of them without this), each a person of their own."""
    if not twice:
        return None
    per_face = np.full(len(X), float(twice))
    order = np.argsort(photos, kind="stable")
    starts = np.flatnonzero(np.r_[True, photos[order][1:] != photos[order][:-1]]) if len(X) else []
    for start, end in zip(starts, np.r_[starts[1:], len(X)] if len(X) else []):
        if end - start < 3:
            continue
        faces = order[start:end]
        close = (np.linalg.norm(X[faces][:, None] - X[faces][None], axis=2) <= twice).sum(axis=1) - 1
        per_face[faces[close >= 2]] = 0.0
    return per_face


def fits_with(X: np.ndarray, face: int, others: np.ndarray, twice) -> bool:
    """Whether a face may be one person with these faces of its own photo: only as one person
    seen twice (a collage, a scanned album page, a photo of a framed photo), when it lies within
    `twice` of each of them (a distance, or twice_per_face's distances, or None: never). Two
    people standing together lie further apart."""
    if len(others) == 0:
        return True
    if twice is None:
        return False
    limit = np.minimum(twice[face], twice[others]) if np.ndim(twice) else twice
    return bool((np.linalg.norm(X[others] - X[face], axis=1) <= limit).all())


def one_face_per_photo(X: np.ndarray, labels: np.ndarray, photos: np.ndarray | None,
                       twice: float | np.ndarray | None = None) -> np.ndarray:
    """Two faces of one photo are two people unless they lie within `twice` of each other (one
    person seen twice: fits_with). Where a person holds faces of one photo that do not fit
    together, the face nearest the person's centre stays and the others become noise
    (attach_not_grouped may then find them their own person). A user's label says otherwise
    where it must: labels are applied after clustering.

    The person is not split around such faces (k-means seeded with them): on the dev sets that
    parts no one once a pair this close may be one person, and it cuts an actor of a collage
    archive in two (docs/benchmarks.md, "Archive shapes: every rule on every set")."""
    if photos is None:
        return labels
    labels = labels.copy()
    for _, members in members_by_person(labels):
        shared = photos[members]
        if len(np.unique(shared)) == len(shared):
            continue
        centre = X[members].mean(axis=0)
        distance = np.linalg.norm(X[members] - centre / max(np.linalg.norm(centre), 1e-12), axis=1)
        kept: dict = {}
        for row in np.lexsort((distance, shared)):  # by photo, nearest the centre first
            face, photo = members[row], shared[row]
            if fits_with(X, face, np.asarray(kept.get(photo, []), dtype=np.int64), twice):
                kept.setdefault(photo, []).append(face)
            else:
                labels[face] = NOISE
    return labels


# Grouped faces of one person among a not-grouped face's ATTACH_NEAREST nearest. 5 of 10 filed
# strangers with the large people of a news archive where most people are seen once (the whole
# dev LFW split: pairwise precision 0.970; 7 of 10: 0.9797; 8: 0.9801, at 0.001 of recall) and
# relatives with each other (docs/benchmarks.md, rule by set).
ATTACH_VOTES = 8
ATTACH_NEAREST = 10


def attach_not_grouped(X: np.ndarray, labels: np.ndarray, max_distance: float, member_distance: float,
                       graph: tuple[np.ndarray, np.ndarray] | None = None, photos: np.ndarray | None = None,
                       twice: float | np.ndarray | None = None) -> np.ndarray:
    """Give a not-grouped face the person that holds at least ATTACH_VOTES of its ATTACH_NEAREST
    nearest grouped faces within max_distance (and more of them than any other person), when
    it also lies within that person's radius of their centre (person_radius, with
    member_distance as for prune_strangers).

    HDBSCAN leaves a widely photographed person's odd faces (a profile, another decade) as noise
    because no dense region holds them, though several of the person's faces are as close as
    one person's faces are. One close face is weak evidence (a look-alike); several are not,
    unless the person has thousands of faces: then a stranger finds three of them close by
    chance, and only the person's centre tells. A face never joins a person who already has a
    face of its photo, unless as one person seen twice (fits_with; photos: each face's photo, or
    None)."""
    from facecluster.grouping.knn_hdbscan import nearest_faces

    grouped = np.flatnonzero(labels != NOISE)
    alone = np.flatnonzero(labels == NOISE)
    if len(grouped) < ATTACH_VOTES or len(alone) == 0:
        return labels
    if graph is None:
        distances, found = nearest_faces(X[alone], X[grouped], ATTACH_NEAREST)
        found = np.where(found >= 0, grouped[np.maximum(found, 0)], -1)
    else:
        # The kNN-graph algorithm's own graph (distances, indices): the grouped among each face's
        # nearest, instead of a second search over millions of faces.
        distances, found = graph[0][alone], graph[1][alone]
        grouped_only = (found >= 0) & (labels[np.maximum(found, 0)] != NOISE)
        rank = np.cumsum(grouped_only, axis=1)
        keep = grouped_only & (rank <= ATTACH_NEAREST)
        found = np.where(keep, found, -1)
    near = (found >= 0) & (distances <= max_distance)
    people = np.where(near, labels[np.maximum(found, 0)], NOISE)
    chosen = np.full(len(alone), NOISE)
    for row, candidates in enumerate(people):
        candidates = candidates[candidates != NOISE]
        if len(candidates) < ATTACH_VOTES:
            continue
        values, counts = np.unique(candidates, return_counts=True)
        order = np.argsort(-counts)
        if counts[order[0]] >= ATTACH_VOTES and (len(counts) == 1 or counts[order[1]] < counts[order[0]]):
            chosen[row] = values[order[0]]
    labels = labels.copy()
    for person, members in members_by_person(np.where(labels == NOISE, NOISE, labels)):
        joining = np.flatnonzero(chosen == person)
        if len(joining) == 0:
            continue
        centre, radius = centre_and_radius(X[members], member_distance)
        inside = np.linalg.norm(X[alone[joining]] - centre, axis=1) <= radius
        joined = alone[joining[inside]]
        if photos is not None:  # faces of one photo: theirs first, then the nearest newcomer
            joined = joined[np.argsort(np.linalg.norm(X[joined] - centre, axis=1), kind="stable")]
            taken: dict = {}
            for face in members:
                taken.setdefault(photos[face], []).append(face)
            keep = []
            for face in joined:
                if fits_with(X, face, np.asarray(taken.get(photos[face], []), dtype=np.int64), twice):
                    taken.setdefault(photos[face], []).append(face)
                    keep.append(face)
            joined = np.asarray(keep, dtype=np.int64)
        labels[joined] = person
    return labels


# A person of at most this many faces may be a fragment of a larger one (a few photos and their
# copies that HDBSCAN kept apart as a dense little cluster); 0: never joined.
JOIN_FRAGMENTS_UP_TO = 20


def join_fragments(X: np.ndarray, labels: np.ndarray, max_distance: float, member_distance: float,
                   graph: tuple[np.ndarray, np.ndarray] | None = None, photos: np.ndarray | None = None,
                   twice: float | np.ndarray | None = None) -> np.ndarray:
    """Join a small person to a larger one when most of its faces would each be attached to that
    person on their own (attach_not_grouped's rule: ATTACH_VOTES of their ATTACH_NEAREST nearest
    faces outside the small person, within max_distance, and inside the person's radius), and
    no photo holds a face of both. Many close faces are the evidence, never one close pair.
    graph: the kNN-graph algorithm's (distances, indices), read instead of a search over
    millions of faces (a fragment whose graph holds too few faces outside it stays apart)."""
    from facecluster.grouping.knn_hdbscan import nearest_faces

    people = members_by_person(labels)
    size = {person: len(members) for person, members in people}
    small = [(person, members) for person, members in people if len(members) <= JOIN_FRAGMENTS_UP_TO]
    if not small or len(size) < 2:
        return labels
    queries = np.concatenate([members for _, members in small])
    if graph is None:
        grouped = np.flatnonzero(labels != NOISE)
        distances, found = nearest_faces(X[queries], X[grouped], ATTACH_NEAREST + JOIN_FRAGMENTS_UP_TO)
        found = np.where(found >= 0, grouped[np.maximum(found, 0)], -1)
    else:
        distances, found = graph[0][queries], graph[1][queries]
    owner = np.where(found >= 0, labels[np.maximum(found, 0)], NOISE)
    own = labels[queries][:, None]
    outside = (owner != NOISE) & (owner != own)
    rank = np.cumsum(outside, axis=1)
    votes = np.where(outside & (rank <= ATTACH_NEAREST) & (distances <= max_distance), owner, NOISE)
    choice = {}
    for row, candidates in enumerate(votes):
        candidates = candidates[candidates != NOISE]
        if len(candidates) >= ATTACH_VOTES:
            values, counts = np.unique(candidates, return_counts=True)
            if counts.max() >= ATTACH_VOTES and (counts == counts.max()).sum() == 1:
                choice[int(queries[row])] = int(values[np.argmax(counts)])
    labels = labels.copy()
    members_of = {person: members for person, members in people}
    for person, members in sorted(small, key=lambda pm: len(pm[1])):
        chosen = [choice.get(int(face), NOISE) for face in members]
        targets, counts = np.unique([c for c in chosen if c != NOISE], return_counts=True)
        if not len(targets) or counts.max() * 2 <= len(members):
            continue
        target = int(targets[np.argmax(counts)])
        into = members_of[target]
        if len(into) <= len(members) or (photos is not None and _two_people_shared(X, members, into, photos, twice)):
            continue
        centre, radius = centre_and_radius(X[into], member_distance)
        if np.median(np.linalg.norm(X[members] - centre, axis=1)) > radius:
            continue
        labels[members] = target
        members_of[target] = np.concatenate([into, members])
    return labels


def _two_people_shared(X: np.ndarray, members: np.ndarray, into: np.ndarray, photos: np.ndarray,
                       twice: float | np.ndarray | None) -> bool:
    """Whether a photo holds a face of each group that do not fit together as one person twice."""
    shared = set(photos[members].tolist()) & set(photos[into].tolist())
    return any(not fits_with(X, face, into[photos[into] == photos[face]], twice)
               for face in members if photos[face] in shared)


def collapse_near_duplicates(X: np.ndarray, max_distance: float, k: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """duplicate_groups over each face's k nearest, searched exactly (for the exact algorithm;
    the kNN-graph algorithm reads them off the graph it builds anyway)."""
    from facecluster.grouping.duplicates import duplicate_groups
    from facecluster.grouping.knn_hdbscan import nearest_faces

    n = len(X)
    if n < 2 or not max_distance:
        return np.arange(n), np.arange(n)
    distances, found = nearest_faces(X, X, min(k, n))
    return duplicate_groups(X, distances, found, max_distance)


class PeopleClusterer:
    """Estimator in hdbscan's style: fit(X) sets labels_, probabilities_, outlier_scores_.

    X: (n_faces, d) float32, rows L2-normalised. labels_ are person numbers, -1 for noise
    (a face seen once, or too unlike the person it is nearest to). algorithm: 'exact' (the
    hdbscan library), 'knn' (facecluster.grouping.knn_hdbscan, for large runs) or 'auto' (exact up to
    AUTO_EXACT_UP_TO faces); device: where 'knn' searches ('auto', 'cpu', 'cuda'). duplicate_distance:
    faces closer than this are copies of one photo, clustered as one face (facecluster.grouping.duplicates).
    After HDBSCAN, when set, split_distance splits people made of two groups (split_mixed_people) and
    max_member_distance removes faces too far from the rest of their person (prune_strangers).
    part_of_larger: X is one cell of a larger archive (facecluster.grouping.cells), which may be
    one person as a whole (algorithm 'knn' only).
    """

    def __init__(self, min_cluster_size: int = 2, min_samples: int = 2, cluster_selection_epsilon: float = 0.0,
                 cluster_selection_method: str = "eom", split_distance: float | None = None,
                 max_member_distance: float | None = None, algorithm: str = "exact", device: str = "auto",
                 duplicate_distance: float | None = None, attach_distance: float | None = None,
                 part_of_larger: bool = False):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.cluster_selection_method = cluster_selection_method
        self.split_distance = split_distance
        self.max_member_distance = max_member_distance
        self.algorithm = algorithm
        self.device = device
        self.duplicate_distance = duplicate_distance
        self.attach_distance = attach_distance
        self.part_of_larger = part_of_larger

    @classmethod
    def from_settings(cls, cluster_settings: dict, model_id: str, model_distances=None) -> "PeopleClusterer":
        """model_distances: the model's distances (facecluster.recognition.thresholds.distances) for
        the settings left at "auto"; by default the model's measured or guessed ones."""
        from facecluster.recognition import thresholds

        chosen = model_distances or thresholds.distances(model_id)
        measured = {"max_member_distance": chosen.member_radius, "split_distance": chosen.split_distance,
                    "duplicate_distance": chosen.duplicate, "cluster_selection_epsilon": chosen.selection_epsilon,
                    "attach_distance": chosen.attach}
        distances = {key: value if cluster_settings[key] == "auto" else cluster_settings[key]
                     for key, value in measured.items()}
        return cls(**distances, **{k: cluster_settings[k] for k in ("min_cluster_size", "min_samples",
                                                                    "cluster_selection_method", "algorithm", "device")})

    def twice_by_face(self, X: np.ndarray, photos: np.ndarray | None) -> np.ndarray | None:
        """How close each face lies to another of its photo when they are one person seen twice
        (twice_per_face; None: never)."""
        if photos is None or self.max_member_distance is None:
            return None
        return twice_per_face(X, np.asarray(photos), TWICE_IN_ONE_PHOTO * self.max_member_distance)

    def chosen_algorithm(self, n_faces: int) -> str:
        if self.algorithm != "auto":
            return self.algorithm
        return "exact" if n_faces <= AUTO_EXACT_UP_TO else "knn"

    def fit(self, X: np.ndarray, photos: np.ndarray | None = None) -> "PeopleClusterer":
        """photos: each face's photo (any ids): two faces of one photo are never one person."""
        # The kNN-graph algorithm finds copies in the graph it builds (KnnHDBSCAN).
        if self.duplicate_distance and self.chosen_algorithm(len(X)) == "exact":
            representatives, group = collapse_near_duplicates(X, self.duplicate_distance)
            if len(representatives) < len(X):
                once = copy.copy(self)
                once.duplicate_distance = None
                once.fit(X[representatives], None if photos is None else photos[representatives])
                self.algorithm_ = getattr(once, "algorithm_", None)
                self.labels_ = one_face_per_photo(X, once.labels_[group], photos, self.twice_by_face(X, photos))
                self.probabilities_ = np.where(self.labels_ == NOISE, 0.0, once.probabilities_[group])
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
            from facecluster.grouping.knn_hdbscan import KnnHDBSCAN

            X = np.ascontiguousarray(X, dtype=np.float32)
            model = KnnHDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                               cluster_selection_epsilon=self.cluster_selection_epsilon,
                               cluster_selection_method=self.cluster_selection_method,
                               device=self.device, duplicate_distance=self.duplicate_distance,
                               part_of_larger=self.part_of_larger).fit(X)
            self.outlier_scores_ = np.full(n, np.nan)  # GLOSH is not computed on the kNN graph
        self.labels_ = model.labels_.astype(np.int64)
        self.probabilities_ = np.nan_to_num(model.probabilities_.astype(np.float64))
        if self.split_distance is not None:
            self.labels_ = split_mixed_people(X, self.labels_, self.split_distance, self.min_cluster_size)
        if self.max_member_distance is not None:
            self.labels_ = prune_strangers(X, self.labels_, self.max_member_distance, self.min_cluster_size)
            self.probabilities_[self.labels_ == NOISE] = 0.0
        twice = self.twice_by_face(X, photos)
        self.labels_ = one_face_per_photo(X, self.labels_, photos, twice)
        self.probabilities_[self.labels_ == NOISE] = 0.0
        if self.attach_distance is not None and self.max_member_distance is not None:
            before = self.labels_
            graph = (model.distances_, model.neighbours_) if self.algorithm_ == "knn" else None
            self.labels_ = attach_not_grouped(X, self.labels_, self.attach_distance, self.max_member_distance, graph,
                                              photos, twice)
            if JOIN_FRAGMENTS_UP_TO:
                self.labels_ = join_fragments(X, self.labels_, self.attach_distance, self.max_member_distance, graph,
                                              photos, twice)
            # In no dense region of their person: the weakest members (HDBSCAN's scale is 0 to 1).
            self.probabilities_[(before == NOISE) & (self.labels_ != NOISE)] = 0.0
        return self

    def fit_predict(self, X: np.ndarray, photos: np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, photos).labels_
