"""The exact k-nearest-neighbour graph of a million faces on a few CPU cores.

Graph indexes (HNSW, IVF) lose neighbours on face embeddings: a million faces crowd each one's
neighbourhood (at a million synthetic faces the 64th neighbour is only 0.0004 further, in d^2/2,
than the 32nd), and HNSW found 56% of the 32 nearest. Here every pair of faces is compared, at
the rate of the CPU's bfloat16 dot-product instructions (AVX512-BF16: twice float32's), so:

- the matrix product gives d^2 / 2 itself: faces are centred on their mean and extended by four
  columns, [x, a_hi, a_lo, 1, 1] . [-y, 1, 1, b_hi, b_lo] = a + b - x.y with a = |x|^2 / 2 split
  into two bfloat16 parts. The product adds up in float32 and is rounded to bfloat16 once, near
  d^2 / 2 = 0.05 for close faces: an error near 1e-4. The product of raw unit vectors would be
  rounded near 0.95, where bfloat16's step is 0.004, ten times the gaps between neighbours;
- distances are symmetric, so each pair of blocks is multiplied once and read twice, by its rows
  and by its columns: half the multiply-adds of searching face by face;
- each face keeps a heap of its 2k nearest by the rounded distance; a 128 x 128 piece of a tile
  is read only where its minimum is below the heap's top (the bits of a non-negative bfloat16
  order as int16, so the scan compares integers, vectorised). The 2k are then re-ranked by float32
  distance and the k nearest kept. In the rounded order the true 32 nearest all lie within the
  first 48 (measured on 300 of a million synthetic faces, 128-d and 512-d).

From 256 dimensions (FaceNet's 512) the product runs in int8 instead, with int32 sums (AVX512
VNNI: 945 billion multiply-adds a second on this machine's two cores against bfloat16's 497):
faces are centred, scaled to +-127 and rounded, and int8 columns add half their squared norms,
so the product is |q_i - q_j|^2 / 2 exactly for the rounded faces; its error against the true
distance is of bfloat16's order at 512-d. At 128-d int8 runs slower than bfloat16 here (160
against 443), so 128-d (dlib) stays in bfloat16.

On a GPU, TorchIndex's float32 search is faster still; this is the CPU's.
"""
from __future__ import annotations

import numba
import numpy as np

BLOCK = 2048  # faces per block: a 2048 x 2048 bfloat16 tile (8 MB) stays in the L3 cache
INT8_FROM = 256  # dimensions from which the product runs in int8 (see ExactSearch)
# int8's step is set by the faces' largest centred component, so one odd face (a blank or
# broken embedding) would coarsen everyone's rounding: measured on 100,000 synthetic 512-d
# faces, one face with a component of 1 made the step 8.5 times coarser and recall fell from
# 1.000 to 0.986. The step comes instead from the faces but the widest 1e-4 of them (at least
# 8), with room to spare; the few faces wider than that ("wide") are clipped in the product and
# searched in float32 instead.
INT8_RANGE_OUTSIDE = 1e-4, 8
INT8_RANGE_MARGIN = 1.25
SEGMENT = 128  # a tile is scanned in 128 x 128 pieces: the minimum of each decides whether to look inside


@numba.njit(cache=True)
def _push(row, column, value, threshold, heap, found, counts, keep):
    """Offer a candidate to a face's max-heap of its `keep` nearest; its threshold is the heap's top."""
    n = counts[row]
    if n < keep:
        position = n
        while position > 0:
            parent = (position - 1) // 2
            if heap[row, parent] >= value:
                break
            heap[row, position] = heap[row, parent]
            found[row, position] = found[row, parent]
            position = parent
        counts[row] = n + 1
    elif value < heap[row, 0]:
        position = 0
        while True:
            child = 2 * position + 1
            if child >= keep:
                break
            if child + 1 < keep and heap[row, child + 1] > heap[row, child]:
                child += 1
            if heap[row, child] <= value:
                break
            heap[row, position] = heap[row, child]
            found[row, position] = found[row, child]
            position = child
    else:
        return
    heap[row, position] = value
    found[row, position] = column
    if counts[row] == keep:
        threshold[row] = heap[row, 0]


@numba.njit(parallel=True, cache=True)
def _scan_diagonal(tile, start, threshold, heap, found, counts, keep):
    """A block against itself, read by rows: each face's first candidates."""
    size = tile.shape[0]
    for i in numba.prange(size):
        row = start + i
        values = tile[i].copy()
        values[i] = values.max()  # the face itself, last; skipped below
        # Only values up to the keep-th smallest can stay in the heap: skip the others unpushed.
        cut = np.partition(values, keep - 1)[keep - 1] if size - 1 > keep else values.max()
        for j in range(size):
            if j != i and values[j] <= cut:
                _push(row, start + j, values[j], threshold, heap, found, counts, keep)


@numba.njit(parallel=True, cache=True)
def _scan_tile(tile, row_start, column_start, threshold, heap, found, counts, keep):
    """Block A against block B: read by rows for the faces of A, by columns for those of B. Most
    128-long pieces hold nothing below the face's threshold: their minimum says so, vectorised."""
    rows, columns = tile.shape
    for i in numba.prange(rows):
        row = row_start + i
        for first in range(0, columns, SEGMENT):
            last = min(columns, first + SEGMENT)
            if tile[i, first:last].min() < threshold[row]:  # a slice's min() is vectorised; a loop is not
                for j in range(first, last):
                    if tile[i, j] < threshold[row]:
                        _push(row, column_start + j, tile[i, j], threshold, heap, found, counts, keep)
    chunks = (columns + SEGMENT - 1) // SEGMENT
    for c in numba.prange(chunks):
        first = c * SEGMENT
        last = min(columns, first + SEGMENT)
        lowest = tile[0, first:last].copy()
        for top in range(0, rows, SEGMENT):
            bottom = min(rows, top + SEGMENT)
            lowest[:] = tile[top, first:last]
            for i in range(top + 1, bottom):
                piece = tile[i, first:last]
                for j in range(last - first):
                    if piece[j] < lowest[j]:
                        lowest[j] = piece[j]
            for j in range(first, last):
                row = column_start + j
                if lowest[j - first] < threshold[row]:
                    for i in range(top, bottom):
                        if tile[i, j] < threshold[row]:
                            _push(row, row_start + i, tile[i, j], threshold, heap, found, counts, keep)


@numba.njit(parallel=True, cache=True)
def _scan_rows(tile, row_start, column_start, row_group, group, threshold, heap, found, counts, keep):
    """Query faces against a block of all faces, skipping those of the query's own group."""
    rows, columns = tile.shape
    for i in numba.prange(rows):
        row = row_start + i
        own = row_group[row]
        for first in range(0, columns, SEGMENT):
            last = min(columns, first + SEGMENT)
            if tile[i, first:last].min() < threshold[row]:
                for j in range(first, last):
                    if tile[i, j] < threshold[row] and group[column_start + j] != own:
                        _push(row, column_start + j, tile[i, j], threshold, heap, found, counts, keep)


@numba.njit(parallel=True, cache=True)
def _rerank(queries, X, found, counts, k, distances, neighbours):
    """Each query's candidates by float32 distance; the k nearest, nearest first (-1 and inf
    where it has fewer)."""
    for row in numba.prange(queries.shape[0]):
        n = counts[row]
        squared = np.empty(n, dtype=np.float32)
        for c in range(n):
            other = found[row, c]
            total = np.float32(0.0)
            for t in range(X.shape[1]):
                diff = queries[row, t] - X[other, t]
                total += diff * diff
            squared[c] = total
        order = np.argsort(squared, kind="mergesort")
        for c in range(k):
            if c < n:
                distances[row, c] = np.sqrt(squared[order[c]])
                neighbours[row, c] = found[row, order[c]]
            else:
                distances[row, c] = np.inf
                neighbours[row, c] = -1


def _extended(X: np.ndarray, mean: np.ndarray, left: bool):
    """Faces centred on `mean` with four columns, so that left . right^T = squared distance / 2,
    in bfloat16. Centring shrinks |x|, and with it the rounding of x.y. Built 65,536 faces at a
    time: float64 copies of a million 512-d faces would take 4 GB each."""
    import torch

    d = X.shape[1]
    extended = torch.empty((len(X), d + 4), dtype=torch.bfloat16)
    for start in range(0, len(X), 65536):
        centred = torch.from_numpy(X[start:start + 65536] - mean)
        half = 0.5 * (centred.double() ** 2).sum(dim=1, keepdim=True)
        high = half.to(torch.bfloat16).double()
        low = (half - high).float()
        high = high.float()
        ones = torch.ones_like(low)
        columns = [centred, high, low, ones, ones] if left else [-centred, ones, ones, high, low]
        extended[start:start + len(centred)] = torch.cat(columns, dim=1)
    return extended


def _rounded(X: np.ndarray, mean: np.ndarray, scale: float) -> np.ndarray:
    """Faces centred, scaled, rounded and clipped to int8's range (as int64 for the sums)."""
    return np.clip(np.rint((X - mean) * scale), -127, 127).astype(np.int64)


def _quantised(X: np.ndarray, mean: np.ndarray, scale: float, digits: int, left: bool):
    """Faces centred, scaled, rounded and clipped to int8, with columns that add half their
    squared norms, so that left . right^T = |q_i - q_j|^2 / 2 in int32, exactly for the rounded
    faces. A half norm h (up to a few hundred thousand) is written as 127 * (sum of `digits`
    int8 digits) + r. Clipping puts a wide face on the box that holds all the others, which
    brings it no further from any of them: it can take a candidate's place, never lose one."""
    import torch

    d = X.shape[1]
    width = -(-(d + 2 * digits + 2) // 8) * 8  # int8 products want a multiple of 8
    quantised = torch.zeros((len(X), width), dtype=torch.int8)
    for start in range(0, len(X), 65536):
        q = _rounded(X[start:start + 65536], mean, scale)
        half = np.rint(0.5 * (q * q).sum(axis=1)).astype(np.int64)
        parts = np.clip(half[:, None] // 127 - 127 * np.arange(digits)[None, :], 0, 127)
        rest = half % 127
        weights = np.full((len(q), digits), 127)
        ones = np.ones((len(q), 1), dtype=np.int64)
        columns = ([q, parts, rest[:, None], weights, ones] if left
                   else [-q, weights, ones, parts, rest[:, None]])
        block = np.concatenate(columns, axis=1)
        quantised[start:start + len(q), :block.shape[1]] = torch.from_numpy(block.astype(np.int8))
    return quantised


class ExactSearch:
    """All faces, extended for the product once: every face's k nearest (graph) and each
    query's k nearest of another group (nearest_other), by the same tiles.

    Below 256 dimensions the product runs in bfloat16 (returned as the int16 bits of its
    values); from 256 in int8 with int32 sums (AVX512-VNNI), twice bfloat16's rate at 512-d
    (945 against 497 billion multiply-adds a second on this machine's two cores) but no faster
    at 128-d. Both order pairs by squared distance."""

    def __init__(self, X: np.ndarray):
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.mean = self.X.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.int8 = X.shape[1] >= INT8_FROM
        self.wide = np.zeros(len(self.X), dtype=bool)
        if self.int8:
            widest = np.empty(len(self.X), dtype=np.float32)
            for start in range(0, len(self.X), 65536):
                widest[start:start + 65536] = np.abs(self.X[start:start + 65536] - self.mean).max(axis=1)
            share, at_least = INT8_RANGE_OUTSIDE
            outside = min(len(widest), max(at_least, int(np.ceil(share * len(widest)))))
            inside = float(np.partition(widest, len(widest) - outside)[len(widest) - outside])
            limit = min(float(widest.max()), INT8_RANGE_MARGIN * inside)
            self.wide = widest > limit
            self.scale = 127.0 / max(limit, 1e-12)
            largest_half_norm = 0.0
            for start in range(0, len(self.X), 65536):
                q = _rounded(self.X[start:start + 65536], self.mean, self.scale)
                largest_half_norm = max(largest_half_norm, 0.5 * float((q * q).sum(axis=1).max()))
            self.digits = int(largest_half_norm // 127 // 127) + 2
            self.right = _quantised(self.X, self.mean, self.scale, self.digits, left=False)
        else:
            self.right = _extended(self.X, self.mean, left=False)
        self.starts = range(0, len(self.X), BLOCK)
        self.buffers = {}

    def _left(self, faces: np.ndarray):
        faces = np.ascontiguousarray(faces, dtype=np.float32)
        if self.int8:
            return _quantised(faces, self.mean, self.scale, self.digits, left=True)
        return _extended(faces, self.mean, left=True)

    def _product(self, left, b0: int) -> np.ndarray:
        """left . right[b0:b0 + BLOCK]^T: int32, or the int16 bits of bfloat16 values."""
        import torch

        columns = self.right[b0:b0 + BLOCK]
        if self.int8:
            return torch._int_mm(left, columns.T).numpy()
        shape = (len(left), len(columns))
        tile = self.buffers.setdefault(shape, torch.empty(shape, dtype=torch.bfloat16))
        torch.mm(left, columns.T, out=tile)
        return tile.view(torch.int16).numpy()

    def _candidates(self, count: int, keep: int):
        """Per query: threshold (at first any distance), heap of keep candidates (value and
        face), candidates held."""
        dtype = np.int32 if self.int8 else np.int16
        return (np.full(count, np.iinfo(dtype).max, dtype=dtype), np.empty((count, keep), dtype=dtype),
                np.empty((count, keep), dtype=np.int32), np.zeros(count, dtype=np.int32))

    def _float32_candidates(self, rows: np.ndarray, group: np.ndarray, keep: int, candidates: tuple, at: np.ndarray):
        """Replaces the candidates of queries `at` (faces X[rows]) by their `keep` nearest faces
        of another group, from float32 products: for the few wide faces, clipped in int8."""
        import torch

        faces = torch.from_numpy(self.X)
        groups = torch.from_numpy(group)
        for q0 in range(0, len(rows), 1024):
            queries = faces[torch.from_numpy(rows[q0:q0 + 1024])]
            query_group = groups[torch.from_numpy(rows[q0:q0 + 1024])]
            best = torch.full((len(queries), keep), torch.inf)
            best_faces = torch.full((len(queries), keep), -1, dtype=torch.int64)
            for start in range(0, len(faces), 65536):
                block = faces[start:start + 65536]
                # |q - y|^2 less |q|^2, the same for all of a query's faces: enough to rank them
                ranked = (block * block).sum(dim=1)[None, :] - 2 * queries @ block.T
                ranked[query_group[:, None] == groups[None, start:start + len(block)]] = torch.inf
                indices = torch.arange(start, start + len(block)).expand(len(queries), -1)
                best, position = torch.topk(torch.cat([best, ranked], dim=1), keep, largest=False)
                best_faces = torch.gather(torch.cat([best_faces, indices], dim=1), 1, position)
            held = torch.isfinite(best).sum(dim=1)
            candidates[2][at[q0:q0 + 1024]] = best_faces.numpy().astype(np.int32)
            candidates[3][at[q0:q0 + 1024]] = held.numpy().astype(np.int32)

    def _reranked(self, queries: np.ndarray, candidates: tuple, k: int) -> tuple[np.ndarray, np.ndarray]:
        distances = np.empty((len(queries), k), dtype=np.float32)
        neighbours = np.empty((len(queries), k), dtype=np.int32)
        _rerank(queries, self.X, candidates[2], candidates[3], k, distances, neighbours)
        return distances, neighbours.astype(np.int64)

    def graph(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances (n x k, float32, nearest first) and indices (int64) of every
        face's k nearest other faces."""
        n = len(self.X)
        k = min(k, n - 1)
        keep = min(n - 1, 2 * k)
        candidates = self._candidates(n, keep)
        for a0 in self.starts:
            _scan_diagonal(self._product(self._left(self.X[a0:a0 + BLOCK]), a0), a0, *candidates, keep)
        for a0 in self.starts:
            left = self._left(self.X[a0:a0 + BLOCK])
            for b0 in self.starts:
                if b0 > a0:
                    _scan_tile(self._product(left, b0), a0, b0, *candidates, keep)
        wide = np.flatnonzero(self.wide)
        if len(wide):
            self._float32_candidates(wide, np.arange(n), keep, candidates, at=wide)
        return self._reranked(self.X, candidates, k)

    def nearest_other(self, rows: np.ndarray, group: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For each face X[rows], the k nearest faces of another group (group[j] != group[row]):
        distances (inf where there are fewer) and indices (-1 there). Components of a kNN graph
        look outside themselves with it."""
        rows = np.asarray(rows, dtype=np.int64)
        group = np.ascontiguousarray(group, dtype=np.int64)
        queries = self.X[rows]
        query_group = group[rows]
        candidates = self._candidates(len(rows), 2 * k)
        for q0 in range(0, len(rows), BLOCK):
            left = self._left(queries[q0:q0 + BLOCK])
            for b0 in self.starts:
                _scan_rows(self._product(left, b0), q0, b0, query_group, group, *candidates, 2 * k)
        wide = np.flatnonzero(self.wide[rows])
        if len(wide):
            self._float32_candidates(rows[wide], group, 2 * k, candidates, at=wide)
        return self._reranked(queries, candidates, k)
