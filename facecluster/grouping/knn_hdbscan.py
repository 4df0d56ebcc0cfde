"""HDBSCAN on a k-nearest-neighbour graph, for archives of millions of faces.

The hdbscan library builds the minimum spanning tree of the mutual-reachability graph with
Prim's algorithm over all pairs when d > 60: O(N^2 d) on one thread, a week at a million
512-d faces. Faces have few true neighbours, so the tree's edges are almost all among each
face's k nearest neighbours. Here:

1. the k nearest neighbours of every face, exact: on a GPU with torch (seconds at a million
   faces); on CPUs by facecluster.grouping.exact_knn (every pair once, in bfloat16 or int8, re-ranked in
   float32: minutes at a million faces). Above `exact_below` faces (two million) the CPU's quadratic cost
   grows past an hour and an HNSW graph index takes over, at a recall near 0.56;
2. core distances from them (the distance to the min_samples-th neighbour other than the
   face itself, as the hdbscan library counts) and mutual reachability on the kNN edges;
3. the minimum spanning forest of that sparse graph (scipy, Kruskal);
4. a kNN graph falls apart into components (a group whose neighbours are all inside it: at
   512-d, a person with more than k faces); each component but the largest adds its cheapest
   real mutual-reachability edge to the rest (Borůvka rounds) until the graph is one tree,
   searching exactly from up to 256 faces on its rim. Left as infinite edges they would make
   every component a cluster of its own;
5. HDBSCAN's condensed tree and cluster selection on that tree, with fast_hdbscan's
   functions, run in a thread with a large stack so that deep trees do not overflow it.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from facecluster.grouping import exact_knn

JOIN_SEARCHES_PER_COMPONENT = 256  # faces of one component that look outside it (see _searched_per_component)
# A cell of a larger archive left this much noise is taken for one person with a few strangers:
# HDBSCAN cannot select all it is given, so it picks a small piece of that person and leaves the
# rest as noise (a person of 36,189 synthetic faces alone in a cell of 36,199 with 2 copies a face:
# 91 faces found, the rest noise, and the person found in pieces by the cells around it; a
# person of 5,000 with 30 strangers: 11% found, 89% noise). Cells of several people leave 30 to 55%
# noise (LFW, the synthetic archives).
ONE_PERSON_CELL_NOISE = 0.8
EXACT_BELOW = 2_000_000  # faces; above, on CPUs, an HNSW index (its recall is measured in benchmarks/)


def _without_self(squared: np.ndarray, found: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k + 1 neighbours per face -> k, the face itself dropped where it was returned, else the
    last (farthest) one; squared distances -> distances."""
    is_self = found == rows[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(found, dtype=bool)
    keep[np.arange(len(rows)), drop] = False
    distances = np.sqrt(np.clip(squared[keep].reshape(len(rows), k), 0, None))
    return distances, found[keep].reshape(len(rows), k)


def nearest_faces(queries: np.ndarray, faces: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances and indices of the k faces nearest each query, exactly (faiss's brute
    force): for a few queries against faces they are not part of."""
    import faiss

    squared, found = faiss.knn(np.ascontiguousarray(queries, dtype=np.float32),
                               np.ascontiguousarray(faces, dtype=np.float32), min(k, len(faces)))
    return np.sqrt(np.clip(squared, 0, None)), found


class KnnIndex:
    """Search among faces on CPUs, Euclidean: exact (facecluster.grouping.exact_knn for the graph, faiss's
    brute force for a few queries) or a graph index (faiss HNSW). graph(k) is every face's k
    nearest; nearest_other always searches exactly."""

    def __init__(self, X: np.ndarray, exact: bool, ef_search: int = 64):
        import faiss

        self.X = X
        self.exact = exact
        self.index = None
        self.joining_search = None  # built at the first join and kept for later Borůvka rounds
        if not exact:
            # HNSW rather than IVF: at 200K synthetic faces it reached the same recall (0.78)
            # in 25 s where IVF-Flat needed 39 s, and its cost grows as N log N, not N^2 / lists.
            self.index = faiss.IndexHNSWFlat(X.shape[1], 32)
            self.index.hnsw.efConstruction = 64
            self.index.hnsw.efSearch = ef_search
            self.index.add(X)

    def search(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances and indices of the k nearest faces to X[rows], the face itself excluded."""
        import faiss

        k = min(k, len(self.X) - 1)
        if self.exact:
            squared, found = faiss.knn(self.X[rows], self.X, k + 1)
        else:
            squared, found = self.index.search(self.X[rows], k + 1)
        return _without_self(squared, found, rows, k)

    def graph(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.exact:
            # Not kept: most graphs need no joining, and its extended faces would stay in memory.
            return exact_knn.ExactSearch(self.X).graph(k)
        return self.search(np.arange(len(self.X)), k)

    def nearest_other(self, rows: np.ndarray, group: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest faces of another group to each face X[rows] (inf and -1 where fewer)."""
        if self.joining_search is None:
            self.joining_search = exact_knn.ExactSearch(self.X)
        return self.joining_search.nearest_other(rows, group, k)


class TorchIndex:
    """Exact search with torch, meant for a GPU: every face against every face, a block of
    faces at a time. A million 512-d faces are 10^15 multiply-adds, seconds on one GPU, so
    there an approximate index would only lose neighbours. Same interface as KnnIndex."""

    BLOCK_ELEMENTS = 1 << 28  # distances held at once: 1 GB of float32

    def __init__(self, X: np.ndarray, device: str = "cuda"):
        import torch

        self.X = X
        self.faces = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
        self.norms = (self.faces * self.faces).sum(dim=1)

    def _nearest(self, rows: np.ndarray, k: int, group=None) -> tuple[np.ndarray, np.ndarray]:
        import torch

        block = max(1, self.BLOCK_ELEMENTS // len(self.X))
        squared, found = [], []
        for start in range(0, len(rows), block):
            picked = torch.from_numpy(rows[start:start + block]).to(self.faces.device)
            distances = (self.norms[picked, None] + self.norms[None, :]
                         - 2 * self.faces[picked] @ self.faces.T)
            if group is not None:
                distances[group[picked][:, None] == group[None, :]] = torch.inf
            values, indices = torch.topk(distances, k, dim=1, largest=False)
            indices[torch.isinf(values)] = -1
            squared.append(values.cpu().numpy())
            found.append(indices.cpu().numpy())
        return np.concatenate(squared), np.concatenate(found).astype(np.int64)

    def search(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.X) - 1)
        squared, found = self._nearest(np.asarray(rows, dtype=np.int64), k + 1)
        return _without_self(squared, found, rows, k)

    def graph(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.search(np.arange(len(self.X)), k)

    def nearest_other(self, rows: np.ndarray, group: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        squared, found = self._nearest(np.asarray(rows, dtype=np.int64), min(k, len(self.X)),
                                       group=torch.from_numpy(np.asarray(group)).to(self.faces.device))
        return np.sqrt(np.clip(squared, 0, None)), found


def knn_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one is an error."""
    if device == "cpu":
        return device
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("cluster.device = cuda but torch sees no usable CUDA GPU on the driver")
    return "cuda" if torch.cuda.is_available() else "cpu"


def _forest(n: int, i: np.ndarray, j: np.ndarray, w: np.ndarray):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    # scipy drops explicit zeros (two copies of one photo): keep them as the smallest weight.
    graph = coo_matrix((np.maximum(w, 1e-12), (i, j)), shape=(n, n)).tocsr()
    return minimum_spanning_tree(graph).tocoo()


def _searched_per_component(X: np.ndarray, faces: np.ndarray, component: np.ndarray) -> np.ndarray:
    """At most JOIN_SEARCHES_PER_COMPONENT faces of each component: those furthest from its
    centroid, on its rim, where its cheapest way out lies. A component of 12,000 faces (one
    person photographed 12,000 times) would otherwise search the archive 12,000 times."""
    groups = component[faces]
    sizes = np.bincount(groups)
    if len(faces) == 0 or sizes.max() <= JOIN_SEARCHES_PER_COMPONENT:
        return faces
    centroids = np.zeros((len(sizes), X.shape[1]))
    np.add.at(centroids, groups, X[faces])
    centroids /= np.maximum(sizes, 1)[:, None]
    rim = np.linalg.norm(X[faces] - centroids[groups], axis=1)
    order = np.lexsort((-rim, groups))
    rank = np.arange(len(order)) - np.searchsorted(groups[order], groups[order])
    return np.sort(faces[order[rank < JOIN_SEARCHES_PER_COMPONENT]])


def _join_components(index: KnnIndex | TorchIndex, core: np.ndarray, k: int, edges: tuple) -> tuple[tuple, int]:
    """Add each component's cheapest mutual-reachability edge to the rest until one tree (Borůvka
    rounds). Faces outside the largest component (at most JOIN_SEARCHES_PER_COMPONENT of each
    component, on its rim) look for their k nearest faces of another component, exactly. A
    face's list stays right in later rounds while one of its faces is still outside its grown
    component (its new outside is a subset of the old), so only faces whose list fell wholly
    inside are searched again."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(core)
    i, j, w = edges
    added = 0
    outside_distances = outside = None
    while True:
        count, component = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
        if count == 1:
            return (i, j, w), added
        if outside is None:
            outside_distances = np.full((n, k), np.inf, dtype=np.float32)
            outside = np.full((n, k), -1, dtype=np.int64)
        largest = int(np.argmax(np.bincount(component)))
        faces = np.flatnonzero(component != largest)

        def still_outside(found):
            return (found >= 0) & (component[np.maximum(found, 0)] != component[faces][:, None])

        stale = _searched_per_component(index.X, faces[~still_outside(outside[faces]).any(axis=1)], component)
        if len(stale):
            outside_distances[stale], outside[stale] = index.nearest_other(stale, component, k)
        found = outside[faces]
        is_outside = still_outside(found)
        mutual = np.maximum(np.maximum(outside_distances[faces], core[faces][:, None]), core[np.maximum(found, 0)])
        mutual[~is_outside] = np.inf
        column = mutual.argmin(axis=1)
        cost = mutual[np.arange(len(faces)), column]
        other = found[np.arange(len(faces)), column]
        # The cheapest edge of each component: sort by component, then cost; keep the first.
        order = np.lexsort((cost, component[faces]))
        first = order[np.r_[True, np.diff(component[faces][order]) != 0]]
        first = first[np.isfinite(cost[first])]
        assert len(first), "the kNN graph could not be connected"
        i = np.concatenate([i, faces[first]])
        j = np.concatenate([j, other[first]])
        w = np.concatenate([w, cost[first].astype(np.float64)])
        forest = _forest(n, i, j, w)
        i, j, w = forest.row.astype(np.int64), forest.col.astype(np.int64), forest.data
        added += len(first)


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
    minimum_spanning_tree_ ((n-1) x 3: face, face, mutual-reachability distance), neighbours_
    (the kNN graph) and timings_. device: 'auto' (a GPU when torch sees one), 'cuda' or 'cpu'.
    duplicate_distance: faces closer than this are copies of one photo, clustered as one face
    (facecluster.grouping.duplicates); the spanning tree then joins their representatives."""

    def __init__(self, min_cluster_size: int = 2, min_samples: int = 2, k: int = 32,
                 cluster_selection_method: str = "eom", cluster_selection_epsilon: float = 0.0,
                 exact_below: int = EXACT_BELOW, ef_search: int = 64, device: str = "auto",
                 duplicate_distance: float | None = None, part_of_larger: bool = False):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.k = k
        self.cluster_selection_method = cluster_selection_method
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.exact_below = exact_below
        self.ef_search = ef_search
        self.device = device
        self.duplicate_distance = duplicate_distance
        self.part_of_larger = part_of_larger  # a cell of a larger archive: see _rest_of_the_archive

    def _rest_of_the_archive(self, n: int, widest: float) -> np.ndarray:
        """Tree edges of min_cluster_size stand-in faces that join these faces just past their
        widest edge. HDBSCAN never selects the whole of what it clusters (its root); a part of
        an archive (a cell of facecluster.grouping.cells) may be one person, who on the whole
        archive would be a cluster born where they join the rest, and in the part alone is
        noise but for a small piece of them (ONE_PERSON_CELL_NOISE). Used only then: on a cell
        of many people, letting the cell be selected whole made "people" of strangers (dev LFW
        split in 11 cells: pairwise precision 0.971 against 0.979). The stand-ins' own cluster
        is dropped."""
        stand_ins = np.arange(n, n + self.min_cluster_size, dtype=np.float64)
        chain = np.column_stack([stand_ins[:-1], stand_ins[1:], np.full(len(stand_ins) - 1, 1e-6)])
        return np.vstack([chain, [0.0, float(n), widest * (1 + 1e-6) + 1e-9]])

    def _index(self, X: np.ndarray, device: str):
        return (TorchIndex(X, device) if device != "cpu"
                else KnnIndex(X, exact=len(X) < self.exact_below, ef_search=self.ef_search))

    def _collapse(self, X: np.ndarray, distances: np.ndarray, neighbours: np.ndarray, device: str, k: int):
        """Copies of one photo (facecluster.grouping.duplicates) clustered as one face, from the graph
        already built: (representatives' faces, their graph, their index, each face's row among
        them), or None when there are no copies. A representative whose neighbours were nearly
        all its own copies is searched again among the representatives."""
        from facecluster.grouping.duplicates import duplicate_groups, representatives_graph

        representatives, group = duplicate_groups(X, distances, neighbours, self.duplicate_distance)
        if len(representatives) == len(X):
            return None
        X_kept = X[representatives]
        index = self._index(X_kept, device)
        distances, neighbours = representatives_graph(distances, neighbours, representatives, group)
        thin = np.flatnonzero((neighbours >= 0).sum(axis=1) < max(self.min_samples, k // 2))
        if len(thin) and len(X_kept) > 1:
            found_distances, found = index.search(thin, k)
            width = found.shape[1]
            distances[thin], neighbours[thin] = np.inf, -1
            distances[thin, :width], neighbours[thin, :width] = found_distances, found
        rep_of_group = np.empty(group.max() + 1, dtype=np.int64)
        rep_of_group[group[representatives]] = np.arange(len(representatives))
        return X_kept, distances, neighbours, index, rep_of_group[group]

    def fit(self, X: np.ndarray) -> "KnnHDBSCAN":
        from fast_hdbscan.hdbscan import clusters_from_spanning_tree

        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        k = max(self.k, self.min_samples)
        timings = {}
        started = time.perf_counter()
        device = knn_device(self.device)
        index = self._index(X, device)
        distances, neighbours = index.graph(k)
        # Kept: a benchmark measures the graph's recall, and PeopleClusterer attaches faces by it.
        self.neighbours_, self.distances_ = neighbours, distances
        timings["knn"] = time.perf_counter() - started
        copies_of = None
        if self.duplicate_distance and n > 2:
            started = time.perf_counter()
            collapsed = self._collapse(X, distances, neighbours, device, k)
            if collapsed is not None:
                X, distances, neighbours, index, copies_of = collapsed
                n = len(X)
            timings["copies"] = time.perf_counter() - started

        started = time.perf_counter()
        # As the hdbscan library counts: the min_samples-th neighbour other than the face itself.
        # A cell of a larger archive may hold fewer faces than min_samples: its farthest face then.
        core = distances[:, min(self.min_samples, distances.shape[1]) - 1]
        rows = np.repeat(np.arange(n), neighbours.shape[1])
        cols = neighbours.ravel()
        valid = cols >= 0  # a graph index may return fewer than k
        mutual = np.maximum(np.maximum(distances.ravel(), core[rows]), core[cols])
        forest = _forest(n, rows[valid], cols[valid], mutual[valid].astype(np.float64))
        edges = (forest.row.astype(np.int64), forest.col.astype(np.int64), forest.data)
        edges, self.joining_edges_ = _join_components(index, core, k, edges)
        i, j, w = edges
        assert len(i) == n - 1, "the spanning tree must be connected"
        self.minimum_spanning_tree_ = np.column_stack([i, j, w]).astype(np.float64)
        timings["tree"] = time.perf_counter() - started

        started = time.perf_counter()

        def select(tree):
            return _in_big_stack(lambda: clusters_from_spanning_tree(
                tree, min_cluster_size=self.min_cluster_size, cluster_selection_method=self.cluster_selection_method,
                cluster_selection_epsilon=self.cluster_selection_epsilon))

        labels, strengths, *_ = select(self.minimum_spanning_tree_)
        if self.part_of_larger and n > 1 and (np.asarray(labels) < 0).mean() >= ONE_PERSON_CELL_NOISE:
            tree = self.minimum_spanning_tree_
            labels, strengths, *_ = select(np.concatenate([tree, self._rest_of_the_archive(n, tree[:, 2].max())]))
        timings["selection"] = time.perf_counter() - started
        self.labels_ = np.asarray(labels, dtype=np.int64)[:n]
        self.probabilities_ = np.asarray(strengths, dtype=np.float64)[:n]
        if copies_of is not None:  # every copy takes its representative's person
            self.labels_, self.probabilities_ = self.labels_[copies_of], self.probabilities_[copies_of]
        self.timings_ = timings
        return self
