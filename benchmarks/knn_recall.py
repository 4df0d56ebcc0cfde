"""kNN recall against cost on synthetic faces: which index could reach recall 0.95 at scale?

Exact search (faiss flat) answers 1,000 queries for k = 32 neighbours; HNSW (M 32, efConstruction
64) at two efSearch values and IVF-Flat (4 sqrt(N) lists) at three nprobe values are scored
against it. One faiss thread, so the figures add up per core. Query costs are extrapolated from
the 1,000 queries to all N faces.

    .venv/bin/python benchmarks/knn_recall.py 200000
"""
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.measuring.synthetic import FaceSpace, generate  # noqa: E402


def main() -> None:
    faiss.omp_set_num_threads(1)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    space = FaceSpace(**json.loads((ROOT / ".cache" / "synthetic_space.json").read_text()))
    X, _ = generate(n, space, seed=0)
    X = X.astype(np.float32)
    rng = np.random.default_rng(1)
    queries, k = rng.choice(n, 1000, replace=False), 32
    flat = faiss.IndexFlatL2(X.shape[1])
    flat.add(X)
    started = time.perf_counter()
    _, truth = flat.search(X[queries], k + 1)
    print(f"{n} faces, {X.shape[1]}-d: exact search, all queries (estimated) {(time.perf_counter() - started) * n / 1000:.1f} s")

    def recall(found):
        return float(np.mean([len(set(found[i]) & set(truth[i])) / (k + 1) for i in range(len(queries))]))

    for ef in (64, 256):
        index = faiss.IndexHNSWFlat(X.shape[1], 32)
        index.hnsw.efConstruction = 64
        started = time.perf_counter()
        index.add(X)
        build = time.perf_counter() - started
        index.hnsw.efSearch = ef
        started = time.perf_counter()
        _, found = index.search(X[queries], k + 1)
        print(f"HNSW efSearch {ef:4d}: build {build:.1f} s, recall {recall(found):.3f}, "
              f"all queries (estimated) {(time.perf_counter() - started) * n / 1000:.1f} s")
    lists = int(4 * np.sqrt(n))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(X.shape[1]), X.shape[1], lists)
    started = time.perf_counter()
    ivf.train(X[rng.choice(n, min(n, 50 * lists), replace=False)])
    ivf.add(X)
    build = time.perf_counter() - started
    for probes in (16, 64, 128):
        ivf.nprobe = probes
        started = time.perf_counter()
        _, found = ivf.search(X[queries], k + 1)
        print(f"IVF-Flat {lists} lists, nprobe {probes:3d}: build {build:.1f} s, recall {recall(found):.3f}, "
              f"all queries (estimated) {(time.perf_counter() - started) * n / 1000:.1f} s")


if __name__ == "__main__":
    main()
