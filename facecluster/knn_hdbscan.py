"""HDBSCAN on a k-nearest-neighbour graph, for archives of millions of faces.

The hdbscan library builds the minimum spanning tree of the mutual-reachability graph with
Prim's algorithm over all pairs when d > 60: O(N^2 d) on one thread, a week at a million
512-d faces. Faces have few true neighbours, so the tree's edges are almost all among each
face's k nearest neighbours. Here:

1. the k nearest neighbours of every face (faiss: exact below `exact_below` faces, an IVF
   index above, on GPU when faiss has one);
2. core distances from them (the distance to the min_samples-th neighbour other than the
   face itself, as the hdbscan library counts) and mutual reachability on the kNN edges;
3. the minimum spanning forest of that sparse graph (scipy, Kruskal);
4. a kNN graph falls apart into components (a small group whose neighbours are all inside
   it); each component but the largest adds its cheapest real mutual-reachability edge to
   the rest (a Borůvka step) until the graph is one tree. Left as infinite edges they would
   make every component a cluster of its own;
5. HDBSCAN's condensed tree and cluster selection on that tree, with fast_hdbscan's
   functions, run in a thread with a large stack so that deep trees do not overflow it.
"""
from __future__ import annotations

import threading
import time

import numpy as np

EXACT_BELOW = 200_000  # faces; above, an IVF index (its recall is measured in benchmarks/)


class KnnIndex:
    """faiss index over unit vectors, Euclidean; exact (flat) or IVF."""

    def __init__(self, X: np.ndarray, exact: bool, nprobe: int | None = None, seed: int = 0):
        import faiss

        self.X = X
        n, d = X.shape
        if exact:
            index = faiss.IndexFlatL2(d)
        else:
            nlist = int(max(64, min(65536, 4 * np.sqrt(n))))
            self.quantizer = faiss.IndexFlatL2(d)  # held here: the IVF index does not own it
            index = faiss.IndexIVFFlat(self.quantizer, d, nlist)
            rng = np.random.default_rng(seed)
            train = X[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
            index.train(train)
            # One list in 16 searched: recall 0.98 on LFW's dlib embeddings at 417 lists
            # (nprobe 64); lower on the synthetic faces of benchmarks/scale.py, which print it.
            index.nprobe = nprobe or max(32, nlist // 16)
        if faiss.get_num_gpus() > 0:  # pragma: no cover - no GPU on the development machine
            index = faiss.index_cpu_to_all_gpus(index)
        index.add(X)
        self.index = index

    def search(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances and indices of the k nearest faces to X[rows], the face itself excluded."""
        k = min(k, len(self.X) - 1)
        squared, found = self.index.search(self.X[rows], k + 1)
        is_self = found == rows[:, None]
        # Drop the face itself where it was returned, else the last (farthest) column.
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
        keep = np.ones_like(found, dtype=bool)
        keep[np.arange(len(rows)), drop] = False
        distances = np.sqrt(np.clip(squared[keep].reshape(len(rows), k), 0, None))
        return distances, found[keep].reshape(len(rows), k)


def _forest(n: int, i: np.ndarray, j: np.ndarray, w: np.ndarray):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    # scipy drops explicit zeros (two copies of one photo): keep them as the smallest weight.
    graph = coo_matrix((np.maximum(w, 1e-12), (i, j)), shape=(n, n)).tocsr()
    return minimum_spanning_tree(graph).tocoo()


def _join_components(index: KnnIndex, core: np.ndarray, k: int, edges: tuple) -> tuple[tuple, int]:
    """Add each component's cheapest mutual-reachability edge to the rest until one tree."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(core)
    i, j, w = edges
    added = 0
    while True:
        count, component = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
        if count == 1:
            return (i, j, w), added
        sizes = np.bincount(component)
        largest = int(np.argmax(sizes))
        best: dict[int, tuple[float, int, int]] = {}
        pending = np.flatnonzero(component != largest)
        reach = k
        while len(pending):
            # Search past each face's own component: a component of s faces needs k >= s.
            reach = max(reach, int(sizes[component[pending]].max()) + 1)
            distances, found = index.search(pending, min(reach, n - 1))
            outside = (found >= 0) & (component[found] != component[pending][:, None])
            mutual = np.maximum(np.maximum(distances, core[pending][:, None]), core[found])
            mutual[~outside] = np.inf
            column = mutual.argmin(axis=1)
            value = mutual[np.arange(len(pending)), column]
            for face, other, cost in zip(pending, found[np.arange(len(pending)), column], value):
                c = component[face]
                if np.isfinite(cost) and (c not in best or cost < best[c][0]):
                    best[c] = (float(cost), int(face), int(other))
            unresolved = ~np.isin(component[pending], list(best))
            if reach >= n - 1:
                break
            pending = pending[unresolved]
            reach *= 2
        assert best, "the kNN graph could not be connected"
        extra = np.array([(a, b, cost) for cost, a, b in best.values()])
        i = np.concatenate([i, extra[:, 0].astype(np.int64)])
        j = np.concatenate([j, extra[:, 1].astype(np.int64)])
        w = np.concatenate([w, extra[:, 2]])
        forest = _forest(n, i, j, w)
        i, j, w = forest.row.astype(np.int64), forest.col.astype(np.int64), forest.data
        added += len(extra)


def _in_big_stack(function, *args):
    """Run function in a thread with a 1 GB stack: cluster selection recurses down the tree."""
    result: dict = {}

    def target():
        try:
            result["value"] = function(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = exc

    previous = threading.stack_size(1 << 30)
    try:
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(previous)
    if "error" in result:
        raise result["error"]
    return result["value"]


class KnnHDBSCAN:
    """Estimator in hdbscan's style: fit(X) sets labels_, probabilities_,
    minimum_spanning_tree_ ((n-1) x 3: face, face, mutual-reachability distance) and timings_."""

    def __init__(self, min_cluster_size: int = 2, min_samples: int = 2, k: int = 32,
                 cluster_selection_method: str = "eom", cluster_selection_epsilon: float = 0.0,
                 exact_below: int = EXACT_BELOW, nprobe: int | None = None):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.k = k
        self.cluster_selection_method = cluster_selection_method
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.exact_below = exact_below
        self.nprobe = nprobe

    def fit(self, X: np.ndarray) -> "KnnHDBSCAN":
        from fast_hdbscan.hdbscan import clusters_from_spanning_tree

        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        k = max(self.k, self.min_samples)
        timings = {}
        started = time.perf_counter()
        index = KnnIndex(X, exact=n < self.exact_below, nprobe=self.nprobe)
        distances, neighbours = index.search(np.arange(n), k)
        timings["knn"] = time.perf_counter() - started

        started = time.perf_counter()
        # As the hdbscan library counts: the min_samples-th neighbour other than the face itself.
        core = distances[:, self.min_samples - 1]
        rows = np.repeat(np.arange(n), neighbours.shape[1])
        cols = neighbours.ravel()
        valid = cols >= 0  # IVF may return fewer than k
        mutual = np.maximum(np.maximum(distances.ravel(), core[rows]), core[cols])
        forest = _forest(n, rows[valid], cols[valid], mutual[valid].astype(np.float64))
        edges = (forest.row.astype(np.int64), forest.col.astype(np.int64), forest.data)
        edges, self.joining_edges_ = _join_components(index, core, k, edges)
        i, j, w = edges
        assert len(i) == n - 1, "the spanning tree must be connected"
        self.minimum_spanning_tree_ = np.column_stack([i, j, w]).astype(np.float64)
        timings["tree"] = time.perf_counter() - started

        started = time.perf_counter()
        labels, strengths, *_ = _in_big_stack(lambda: clusters_from_spanning_tree(
            self.minimum_spanning_tree_, min_cluster_size=self.min_cluster_size,
            cluster_selection_method=self.cluster_selection_method,
            cluster_selection_epsilon=self.cluster_selection_epsilon))
        timings["selection"] = time.perf_counter() - started
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.probabilities_ = np.asarray(strengths, dtype=np.float64)
        self.timings_ = timings
        return self
