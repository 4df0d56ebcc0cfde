"""LFW figures: the whole job on an LFW subset, and clustering settings scored on cached embeddings.

    # the whole job (ingest, embed, cluster, people) on the 40 people with most photos
    # (at most 10 each) plus 100 people with one photo, dlib embedder; prints step times and scores
    .venv/bin/python benchmarks/lfw.py job --lfw ../shared/data/lfw

    # embed all of LFW once (about 15 minutes here) into a cache, then score clustering settings in seconds
    .venv/bin/python benchmarks/lfw.py embed-all --lfw ../shared/data/lfw --cache .cache/lfw_dlib
    .venv/bin/python benchmarks/lfw.py tune --cache .cache/lfw_dlib
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.grouping.clustering import PeopleClusterer  # noqa: E402
from facecluster.measuring.evaluation import central_faces, format_report, lfw_subset, person_from_folder  # noqa: E402
from facecluster.measuring.metrics import cluster_report  # noqa: E402


def facecluster(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "facecluster"), *args], check=True)
    return time.perf_counter() - started


def scored_faces(out: Path) -> pd.DataFrame:
    """One face per photo with its true person (from the LFW folder) and its assignment."""
    faces = central_faces(pd.read_parquet(out / "faces"), pd.read_parquet(out / "photo_status"))
    faces["person"] = person_from_folder(faces["path"])
    if (out / "assignments").exists():
        faces = faces.merge(pd.read_parquet(out / "assignments"), on="face_id")
    return faces.reset_index(drop=True)


def print_report(title: str, report: dict) -> None:
    print(format_report(title, report))


def job(args) -> None:
    lfw = Path(args.lfw)
    photos = pd.Series({str(p): p.parent.name for p in sorted(lfw.glob("*/*.jpg"))})
    subset = photos.loc[lfw_subset(photos, seed=args.seed)]
    with tempfile.TemporaryDirectory() as work:
        archive, out = Path(work) / "archive", Path(work) / "out"
        for path, person in subset.items():
            (archive / person).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, archive / person)
        print(f"{len(subset)} photos of {subset.nunique()} people "
              f"({(subset.value_counts() == 1).sum()} seen once)")
        common = ["--out", str(out), "--embedder", "dlib", *sum((["--set", s] for s in args.set), [])]
        times = {"ingest": facecluster("ingest", str(archive), *common),
                 "embed": facecluster("embed", *common),
                 "cluster": facecluster("cluster", *common),
                 "people": facecluster("people", *common)}
        faces = scored_faces(out)
        print_report("whole job, dlib, default settings", cluster_report(faces["person"], faces["person_id"]))
        print("wall time per step (s, each a separate spark application incl. JVM start): "
              + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))


def embed_all(args) -> None:
    out = Path(args.cache)
    t = facecluster("ingest", args.lfw, "--out", str(out))
    t += facecluster("embed", "--out", str(out), "--embedder", "dlib")
    print(f"embedded {args.lfw} into {out} in {t:.0f} s")


CONFIGS = {  # name: PeopleClusterer arguments (dlib distances)
    "HDBSCAN ms=1 (plain)": dict(min_samples=1),
    "HDBSCAN ms=2 (plain)": dict(min_samples=2),
    "HDBSCAN ms=2 leaf (plain)": dict(min_samples=2, cluster_selection_method="leaf"),
    "ms=2 + prune 0.33": dict(min_samples=2, max_member_distance=0.33),
    "ms=2 + split 0.42 + prune 0.33": dict(min_samples=2, split_distance=0.42, max_member_distance=0.33),
    "ms=2 + split 0.38 + prune 0.31": dict(min_samples=2, split_distance=0.38, max_member_distance=0.31),
    "ms=2 + split 0.38 + prune 0.33": dict(min_samples=2, split_distance=0.38, max_member_distance=0.33),
    "ms=2 + split 0.38 + prune 0.35 (default)": dict(min_samples=2, split_distance=0.38, max_member_distance=0.35),
    "ms=2 + split 0.36 + prune 0.33": dict(min_samples=2, split_distance=0.36, max_member_distance=0.33),
    "kNN-graph HDBSCAN ms=2 (plain)": dict(min_samples=2, algorithm="knn"),
    "kNN-graph ms=2 + split 0.38 + prune 0.35": dict(min_samples=2, split_distance=0.38, max_member_distance=0.35,
                                                     algorithm="knn"),
}


def best_of_others(X: np.ndarray, truth: list, scored: np.ndarray) -> None:
    """DBSCAN and average-linkage agglomerative clustering at their best thresholds (by pairwise
    F on the scored faces), on the same embeddings, and at the threshold with precision >= 0.98."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.cluster import DBSCAN

    from facecluster.measuring.metrics import pairwise_scores

    started = time.perf_counter()
    tree = linkage(X, method="average", metric="euclidean")
    results = {"DBSCAN (min_samples 2)": [], "agglomerative, average linkage": []}
    for threshold in np.round(np.arange(0.20, 0.56, 0.01), 2):
        labels = DBSCAN(eps=threshold, min_samples=2).fit(X).labels_
        results["DBSCAN (min_samples 2)"].append((threshold, labels))
        groups = fcluster(tree, threshold, "distance")
        alone = np.bincount(groups)[groups] == 1  # a face in a group of its own is "not grouped", as noise
        results["agglomerative, average linkage"].append((threshold, np.where(alone, -1, groups)))
    for name, runs in results.items():
        scores = [(t, labels, pairwise_scores(truth, labels[scored])) for t, labels in runs]
        best = max(scores, key=lambda r: r[2]["f"])
        precise = [r for r in scores if r[2]["precision"] >= 0.98]
        print_report(f"{name}, best F at {best[0]:.2f}", cluster_report(truth, best[1][scored]))
        if precise:
            pick = max(precise, key=lambda r: r[2]["f"])
            print_report(f"{name}, best F with precision >= 0.98 at {pick[0]:.2f}",
                         cluster_report(truth, pick[1][scored]))
    print(f"(threshold sweeps took {time.perf_counter() - started:.0f} s)")


def tune(args) -> None:
    """Every face of the chosen photos is clustered (bystanders too, as the job does);
    scores count one face per photo, the one nearest the centre."""
    out = Path(args.cache)
    faces = pd.read_parquet(out / "faces")
    central = scored_faces(out)
    faces["central"] = faces["face_id"].isin(set(central["face_id"]))
    faces["person"] = person_from_folder(faces["path"])
    names = central.set_index("path")["person"]
    sets = {"lfw 40 people x <=10 + 100 singletons": set(lfw_subset(names, seed=args.seed)),
            "lfw all": set(names.index)}
    for set_name, paths in sets.items():
        chosen = faces[faces["path"].isin(paths)].reset_index(drop=True)
        X = np.stack(chosen["embedding"].to_numpy()).astype(np.float32)
        scored = chosen["central"].to_numpy()
        print(f"\n== {set_name}: {len(paths)} photos, {len(chosen)} faces, {names.loc[list(paths)].nunique()} people")
        for config_name, config in CONFIGS.items():
            started = time.perf_counter()
            labels = PeopleClusterer(min_cluster_size=2, **config).fit(X).labels_
            took = time.perf_counter() - started
            print_report(f"{config_name} ({took:.1f}s)",
                         cluster_report(chosen["person"][scored].tolist(), labels[scored]))
        best_of_others(X, chosen["person"][scored].tolist(), scored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("job")
    p.add_argument("--lfw", default=str(ROOT.parent / "shared" / "data" / "lfw"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[])
    p.set_defaults(run=job)
    p = sub.add_parser("embed-all")
    p.add_argument("--lfw", default=str(ROOT.parent / "shared" / "data" / "lfw"))
    p.add_argument("--cache", default=str(ROOT / ".cache" / "lfw_dlib"))
    p.set_defaults(run=embed_all)
    p = sub.add_parser("tune")
    p.add_argument("--cache", default=str(ROOT / ".cache" / "lfw_dlib"))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=tune)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
