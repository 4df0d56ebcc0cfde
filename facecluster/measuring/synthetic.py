"""Synthetic face embeddings for scale tests, shaped like real ones.

Real archives: a few people in thousands of photos, many in a handful, most faces seen once.
Identity sizes follow a heavy-tailed (Zipf) law with a set share of singletons. Geometry:
each person's centre is a unit vector that shares a common direction with every other face
(real embeddings are not spread over the whole sphere: dlib's different-person distances sit
near 0.8, not at sqrt(2)); each face is its person's centre plus isotropic noise whose scale
varies face by face (pose, light, blur), renormalised; the common weight varies per person.

`fit_to_distances` chooses the common share and the noise so that the same-person and
different-person distance distributions match measured ones (benchmarks/scale.py fits them
to the dlib distances on LFW and draws both histograms side by side).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FaceSpace:
    dimension: int = 128
    common: float = 1.0        # weight of the shared direction in each person's centre
    noise: float = 0.3         # median per-person noise scale
    noise_spread: float = 0.3  # sigma of the log-normal spread of the noise scale, face by face (pose, light)
    common_spread: float = 0.0 # sigma of the log-normal spread of the per-person common weight


def identity_sizes(n_faces: int, singleton_share: float = 0.3, zipf: float = 2.0, seed: int = 0) -> np.ndarray:
    """Faces per person, summing to n_faces: singleton_share of the faces are people seen once,
    the rest follow a Zipf law of exponent `zipf` (sizes >= 2)."""
    rng = np.random.default_rng(seed)
    singletons = int(round(n_faces * singleton_share))
    sizes = [np.ones(singletons, dtype=np.int64)]
    left = n_faces - singletons
    while left > 0:
        draw = rng.zipf(zipf, size=max(16, left // 4)) + 1
        draw = draw[np.cumsum(draw) <= left]
        if len(draw) == 0:
            draw = np.array([left])
        sizes.append(draw)
        left -= int(draw.sum())
    sizes = np.concatenate(sizes)
    return sizes[rng.permutation(len(sizes))]


def archive_sizes(n_people: int, zipf: float = 2.0, largest: int = 30_000, seed: int = 0) -> np.ndarray:
    """Faces per person in a family or agency archive: a power law from 1 face up to `largest`
    (the family's children, the agency's head of state), most people in a handful of photos."""
    rng = np.random.default_rng(seed)
    sizes = rng.zipf(zipf, size=n_people)
    return np.minimum(sizes, largest).astype(np.int64)


def generate(n_faces: int, space: FaceSpace, singleton_share: float = 0.3, seed: int = 0,
             sizes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n_faces x dimension float32 unit rows, person label per face), rows in random order.
    sizes: faces per person (n_faces is then their sum); by default identity_sizes."""
    rng = np.random.default_rng(seed)
    if sizes is None:
        sizes = identity_sizes(n_faces, singleton_share, seed=seed)
    else:
        sizes = np.asarray(sizes, dtype=np.int64)
        n_faces = int(sizes.sum())
    d = space.dimension
    shared = rng.normal(size=d)
    shared /= np.linalg.norm(shared)
    people = len(sizes)
    common = space.common * np.exp(space.common_spread * rng.normal(size=(people, 1)))
    centres = (rng.normal(size=(people, d)) / np.sqrt(d) + common * shared).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    scales = np.exp(space.noise_spread * rng.normal(size=n_faces)).astype(np.float32) * np.float32(space.noise)
    labels = np.repeat(np.arange(people), sizes)
    order = rng.permutation(n_faces)
    labels = labels[order]
    X = np.empty((n_faces, d), dtype=np.float32)
    for start in range(0, n_faces, 65536):  # in blocks: a million 512-d faces in bounded memory
        part = labels[start:start + 65536]
        noise = scales[start:start + len(part), None] / np.float32(np.sqrt(d))
        block = centres[part] + rng.normal(size=(len(part), d)).astype(np.float32) * noise
        X[start:start + len(part)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return X, labels


def pair_distances(X: np.ndarray, labels: np.ndarray, pairs: int = 20000, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Distances of random same-person pairs and random different-person pairs."""
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sizes = np.diff(np.r_[starts, len(labels)])
    groups = np.flatnonzero(sizes >= 2)
    chosen = rng.choice(groups, size=pairs, p=sizes[groups] ** 2 / (sizes[groups] ** 2).sum())
    a = starts[chosen] + (rng.random(pairs) * sizes[chosen]).astype(np.int64)
    b = starts[chosen] + (rng.random(pairs) * sizes[chosen]).astype(np.int64)
    keep = a != b
    same = np.linalg.norm(X[order[a[keep]]] - X[order[b[keep]]], axis=1)
    i, j = rng.integers(0, len(labels), size=(2, pairs))
    keep = labels[i] != labels[j]
    different = np.linalg.norm(X[i[keep]] - X[j[keep]], axis=1)
    return same, different


def fit_to_distances(same: np.ndarray, different: np.ndarray, dimension: int, seed: int = 0) -> FaceSpace:
    """The FaceSpace whose same- and different-person distance medians and spreads match best.

    In high dimension two faces of a person with noise scale t lie at sqrt(2 t^2 / (1 + t^2)),
    and two centres with common weight a have cosine a^2 / (1 + a^2); a face's cosine to
    another person's face is that divided by (1 + t^2). Solving both for the medians gives
    t and a; the per-person spread of t is then chosen on generated samples."""
    s, d = float(np.median(same)), float(np.median(different))
    t2 = s ** 2 / (2 - s ** 2)
    centre_cosine = min(0.999, (1 - d ** 2 / 2) * (1 + t2))
    common = float(np.sqrt(max(centre_cosine, 0.0) / (1 - centre_cosine)))
    best, best_error = None, np.inf
    for spread in np.linspace(0.0, 0.8, 9):
        for common_spread in np.linspace(0.0, 0.8, 9):
            space = FaceSpace(dimension, common, float(np.sqrt(t2)), float(spread), float(common_spread))
            X, labels = generate(6000, space, singleton_share=0.2, seed=seed)
            a, b = pair_distances(X, labels, 3000, seed)
            error = ((np.std(a) - np.std(same)) ** 2 + (np.std(b) - np.std(different)) ** 2
                     + (np.median(a) - s) ** 2 + (np.median(b) - d) ** 2)
            if error < best_error:
                best, best_error = space, error
    return best
