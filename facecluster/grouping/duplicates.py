"""Copies of one photo among the faces: bursts, resized, cropped and re-encoded copies.

HDBSCAN counts every copy as a face: two copies at distance 0.03 are a cluster far denser than
any person, and excess-of-mass selection keeps hundreds of such pairs rather than the person
around them. Both clustering algorithms therefore cluster one face per group of copies and give
every copy its person after.
"""
from __future__ import annotations

import numpy as np


def duplicate_groups(X: np.ndarray, distances: np.ndarray, neighbours: np.ndarray, max_distance: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Groups of faces closer than max_distance to one another (bursts, resized, cropped and
    re-encoded copies of one photo), from a nearest-neighbour graph (distances and indices, -1
    where missing): (the representative row of each group, each face's group). Groups are the
    connected components of the graph's edges shorter than max_distance; each is represented
    by the face nearest its mean."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(X)
    close = (distances < max_distance) & (neighbours >= 0)
    rows = np.repeat(np.arange(n), close.sum(axis=1))
    graph = coo_matrix((np.ones(len(rows)), (rows, neighbours[close])), shape=(n, n))
    _, group = connected_components(graph, directed=False)
    sizes = np.bincount(group)
    if sizes.max() == 1:
        return np.arange(n), np.arange(n)
    means = np.zeros((len(sizes), X.shape[1]))
    np.add.at(means, group, X)
    means /= sizes[:, None]
    off = np.linalg.norm(X - means[group], axis=1)
    order = np.lexsort((off, group))  # by group, nearest the mean first
    firsts = order[np.r_[True, group[order][1:] != group[order][:-1]]]
    return firsts, group


def representatives_graph(distances: np.ndarray, neighbours: np.ndarray, representatives: np.ndarray,
                          group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest-neighbour graph among representatives, read off the graph of all faces: each
    representative's neighbours become their groups' representatives (each once, itself left
    out). Copies take slots, so a representative may keep fewer than k; -1 / inf fill the rest.
    Nothing is searched again: at a million faces a second search would double the time."""
    rep_of_group = np.full(group.max() + 1, -1, dtype=np.int64)
    rep_of_group[group[representatives]] = np.arange(len(representatives))
    found = neighbours[representatives]
    mapped = np.where(found >= 0, rep_of_group[group[np.maximum(found, 0)]], -1)
    mapped[mapped == np.arange(len(representatives))[:, None]] = -1
    dist = np.where(mapped >= 0, distances[representatives], np.inf)
    # Each neighbour once, at its nearest: by distance, then (stable) by neighbour.
    order = np.argsort(dist, axis=1, kind="stable")
    mapped, dist = np.take_along_axis(mapped, order, 1), np.take_along_axis(dist, order, 1)
    order = np.argsort(mapped, axis=1, kind="stable")
    mapped, dist = np.take_along_axis(mapped, order, 1), np.take_along_axis(dist, order, 1)
    repeated = np.zeros_like(mapped, dtype=bool)
    repeated[:, 1:] = mapped[:, 1:] == mapped[:, :-1]
    gone = repeated | (mapped < 0)
    mapped[gone], dist[gone] = -1, np.inf
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, 1), np.take_along_axis(mapped, order, 1)
