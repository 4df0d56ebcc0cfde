"""One odd face among N synthetic 512-d faces: does the int8 exact graph keep its recall?

A blank or broken embedding far outside the others' range used to set int8's step for all
faces. Both rules run side by side on the same faces: the step from every face (the old rule),
and the step from all but the widest faces, which are clipped and searched in float32 (the
rule in facecluster/grouping/exact_knn.py). Recall of the k = 32 nearest against faiss's brute force,
on 2,000 sampled faces.

    .venv/bin/python benchmarks/odd_face.py 1000000
"""
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.grouping import exact_knn  # noqa: E402
from facecluster.measuring.synthetic import FaceSpace, generate  # noqa: E402


def main() -> None:
    n, k = (int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), 32
    space = FaceSpace(**{**json.loads((ROOT / ".cache" / "synthetic_space.json").read_text()), "dimension": 512})
    X, _ = generate(n, space, seed=1)
    X[5] = 0
    X[5, 0] = 1.0  # a unit vector along one axis: centred, one component near 1
    sample = np.random.default_rng(0).choice(n, 2000, replace=False)
    _, truth = faiss.knn(X[sample], X, k + 1)
    wanted = [set(row[row != face][:k]) for row, face in zip(truth, sample)]
    rules = {"step from every face": (0.0, 1), "step from all but the widest": exact_knn.INT8_RANGE_OUTSIDE}
    print(f"{n} faces, 512-d, one odd face")
    for name, outside in rules.items():
        exact_knn.INT8_RANGE_OUTSIDE = outside
        started = time.perf_counter()
        search = exact_knn.ExactSearch(X)
        _, found = search.graph(k)
        seconds = time.perf_counter() - started
        recall = np.mean([len(want & set(found[face])) / k for want, face in zip(wanted, sample)])
        print(f"  {name:30s} scale {search.scale:7.1f}  wide faces {int(search.wide.sum()):3d}  "
              f"recall {recall:.4f}  odd face's list exact: {set(found[5]) == set(faiss.knn(X[5:6], X, k + 1)[1][0][1:])}"
              f"  {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
