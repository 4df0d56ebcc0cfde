"""Does a person stay one person as their photos grow? Synthetic people of 2 to 10,000 faces,
each as widely spread as one person's faces in celebs17 (web photos over decades), clustered
with the default settings (the dlib embedder's distances).

    .venv/bin/python benchmarks/size_sweep.py fit RUN        # RUN: a kept celebs17 run of benchmarks/real_photos.py
    .venv/bin/python benchmarks/size_sweep.py sweep [--sizes 2 10 100 1000 10000] [--algorithm auto] [--same-median D] [--set KEY=VALUE]
    .venv/bin/python benchmarks/size_sweep.py archive [--people 20000]

`fit` measures celebs17's same-person and different-person distances (one face per photo, the
one the photo is about) and fits facecluster.measuring.synthetic to them (.cache/celebs17_space.json).
`sweep` draws, for each size, enough people of that size (and 2,000 faces seen once), clusters
them all together and prints per size: pairwise recall among that size's people, the share of
each person's faces held by their largest found person (median and min), the share not
grouped; and the pairwise precision of the whole run. `archive` draws people whose sizes follow
a power law (most in a handful of photos, a few in tens of thousands) and prints the same per
size band.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.grouping.clustering import PeopleClusterer  # noqa: E402
from facecluster.measuring.metrics import pairwise_scores  # noqa: E402
from facecluster.core.settings import load_settings  # noqa: E402
from facecluster.measuring.synthetic import FaceSpace, fit_to_distances, generate, pair_distances  # noqa: E402

SPACE_FILE = ROOT / ".cache" / "celebs17_space.json"
PEOPLE_PER_SIZE = {2: 300, 10: 100, 100: 30, 1000: 6, 10000: 2}


def fit(args) -> None:
    from facecluster.measuring.evaluation import labelled_faces

    run = Path(args.run)
    faces = pd.read_parquet(run / "out" / "faces", columns=["face_id", "photo_id", "path", "box", "embedding"])
    scored = labelled_faces(faces, pd.read_parquet(run / "out" / "photo_status"), pd.read_csv(run / "labels.csv"))
    X = np.stack(scored["embedding"].to_numpy()).astype(np.float32)
    truth = pd.factorize(scored["person"])[0]
    same, different = pair_distances(X, truth, pairs=20000)
    space = fit_to_distances(same, different, dimension=X.shape[1])
    Xs, labels = generate(20000, space, sizes=np.full(200, 100))
    s_same, s_different = pair_distances(Xs, labels, pairs=20000)
    SPACE_FILE.parent.mkdir(exist_ok=True)
    SPACE_FILE.write_text(json.dumps(asdict(space)))
    print(f"celebs17 dlib: same person median {np.median(same):.3f} (sd {same.std():.3f}), "
          f"different {np.median(different):.3f} (sd {different.std():.3f})")
    print(f"synthetic:     same person median {np.median(s_same):.3f} (sd {s_same.std():.3f}), "
          f"different {np.median(s_different):.3f} (sd {s_different.std():.3f}); {space}")


def cluster(X: np.ndarray, algorithm: str, overrides: list[str]) -> tuple[np.ndarray, float, str]:
    settings = load_settings(overrides=[f"cluster.algorithm={algorithm}", *overrides])
    model = PeopleClusterer.from_settings(settings["cluster"], "dlib-resnet-v1")
    started = time.perf_counter()
    model.fit(X)
    return model.labels_, time.perf_counter() - started, model.algorithm_


def per_size(truth: np.ndarray, found: np.ndarray, size_of: np.ndarray, bands: list[tuple[int, int]]) -> list[str]:
    lines = []
    frame = pd.DataFrame({"truth": truth, "found": found, "size": size_of})
    for low, high in bands:
        band = frame[(frame["size"] >= low) & (frame["size"] <= high)]
        if band.empty:
            continue
        grouped = band[band["found"] >= 0]
        largest = (grouped.groupby("truth")["found"].agg(lambda p: p.value_counts().iloc[0])
                   .reindex(band["truth"].unique()).fillna(0) / band.groupby("truth").size())
        recall = pairwise_scores(band["truth"].to_numpy(), band["found"].to_numpy())["recall"]
        name = f"{low}" if low == high else f"{low}-{high}"
        lines.append(f"  {name:>11} faces | people {band['truth'].nunique():>6} | faces {len(band):>7} | "
                     f"recall {recall:.3f} | largest found person holds median {largest.median():.3f} "
                     f"min {largest.min():.3f} | not grouped {np.mean(band['found'] < 0):.3f}")
    return lines


def report(title: str, X: np.ndarray, truth: np.ndarray, bands, args) -> None:
    sizes = np.bincount(truth)
    found, seconds, used = cluster(X, args.algorithm, args.overrides)
    pairs = pairwise_scores(truth, found)
    print(f"{title}: {len(X)} faces, {len(sizes)} people, algorithm {used}, {seconds:.1f} s | "
          f"pairwise P {pairs['precision']:.3f} R {pairs['recall']:.3f} F {pairs['f']:.3f}", flush=True)
    print("\n".join(per_size(truth, found, sizes[truth], bands)), flush=True)


def space(same_median: float | None = None) -> FaceSpace:
    """The fitted space; with same_median, each person's spread widened (or narrowed) so that
    two of their faces lie that far apart at the median."""
    if not SPACE_FILE.exists():
        sys.exit(f"{SPACE_FILE} is missing: run `benchmarks/size_sweep.py fit RUN` first")
    fitted = FaceSpace(**json.loads(SPACE_FILE.read_text()))
    if same_median:
        fitted.noise = float(np.sqrt(same_median ** 2 / (2 - same_median ** 2)))
    return fitted


def sweep(args) -> None:
    sizes = np.concatenate([np.full(PEOPLE_PER_SIZE.get(s, max(2, 2000 // s)), s) for s in args.sizes]
                           + [np.ones(args.singletons, dtype=np.int64)])
    X, truth = generate(0, space(args.same_median), seed=args.seed, sizes=sizes)
    report("size sweep", X, truth, [(1, 1)] + [(s, s) for s in args.sizes], args)


def archive(args) -> None:
    from facecluster.measuring.synthetic import archive_sizes

    sizes = archive_sizes(args.people, zipf=args.zipf, largest=args.largest, seed=args.seed)
    X, truth = generate(0, space(args.same_median), seed=args.seed, sizes=sizes)
    bands = [(1, 1), (2, 9), (10, 99), (100, 999), (1000, 9999), (10000, args.largest)]
    report(f"archive (power law {args.zipf}, largest {args.largest})", X, truth, bands, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit")
    fit_parser.add_argument("run")
    fit_parser.set_defaults(func=fit)
    sweep_parser = commands.add_parser("sweep")
    sweep_parser.add_argument("--sizes", type=int, nargs="+", default=list(PEOPLE_PER_SIZE))
    sweep_parser.add_argument("--singletons", type=int, default=2000)
    sweep_parser.set_defaults(func=sweep)
    archive_parser = commands.add_parser("archive")
    archive_parser.add_argument("--people", type=int, default=20000)
    archive_parser.add_argument("--zipf", type=float, default=2.0)
    archive_parser.add_argument("--largest", type=int, default=30000)
    archive_parser.set_defaults(func=archive)
    for sub in (sweep_parser, archive_parser):
        sub.add_argument("--algorithm", default="auto", choices=["auto", "exact", "knn"])
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--same-median", type=float,
                         help="spread people wider: the median distance between two faces of one person")
        sub.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="cluster settings, as `facecluster cluster --set`")
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
