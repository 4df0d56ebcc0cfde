"""Clustering settings tried on the faces of real photo sets, side by side, without Spark.

Reads the output roots that `benchmarks/real_photos.py --keep DIR` kept (DIR/<set>/out and the
set's labels), clusters each set's faces again with every setting below (facecluster's own
PeopleClusterer, as the cluster job runs it) and scores them as real_photos.py does.

    .venv/bin/python benchmarks/clustering_tries.py DIR [--sets celebs17 celebs17dup lfw500 families]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.grouping.clustering import PeopleClusterer  # noqa: E402
from facecluster.measuring.evaluation import labelled_faces  # noqa: E402
from facecluster.measuring.metrics import cluster_report  # noqa: E402

# The defaults for the dlib embedder (facecluster/recognition/thresholds.py, facecluster/core/defaults.yaml).
DEFAULT = {"min_cluster_size": 2, "min_samples": 2, "cluster_selection_epsilon": 0.0,
           "cluster_selection_method": "eom", "split_distance": 0.38, "max_member_distance": 0.35,
           "algorithm": "exact", "duplicate_distance": 0.1, "attach_distance": 0.43}
# Split and prune at fixed distances only, nothing attached: each try below changes one thing.
FIXED = {"constants": {"WIDE_PERSON_CUT": 0.0, "OWN_SPREAD_FROM": 10 ** 9}, "attach_distance": None}
TRIES = {
    "default": {},
    "fixed distances, nothing attached": FIXED,
    "no duplicates (fixed, nothing attached)": {**FIXED, "duplicate_distance": None},
    "no split, no prune (fixed, nothing attached)": {**FIXED, "split_distance": None, "max_member_distance": None},
    "split at the person's spread": {**FIXED, "constants": {"STRANGER_DEVIATIONS": 0.0}},
    "prune at the person's spread": {**FIXED, "constants": {"WIDE_PERSON_CUT": 0.0}},
    "split and prune at the person's spread": {"attach_distance": None},
    "attach 0.43 (5 of 10), fixed distances": {**FIXED, "attach_distance": 0.43},
    "own spread from 10 faces": {"constants": {"OWN_SPREAD_FROM": 10}},
    "own spread from 30 faces": {"constants": {"OWN_SPREAD_FROM": 30}},
    "attach 5 of 5 nearest": {"constants": {"ATTACH_NEAREST": 5}},
    "attach 3 of 10": {"constants": {"ATTACH_VOTES": 3}},
    "attach 0.40": {"attach_distance": 0.40},
    "attach 0.36": {"attach_distance": 0.36},
    "epsilon 0.3": {"cluster_selection_epsilon": 0.3},
    "knn algorithm": {"algorithm": "knn", "device": "cpu"},
    "min_cluster_size 5": {"min_cluster_size": 5, "min_samples": 5},
    "leaf": {"cluster_selection_method": "leaf"},
    "faces of one photo: extra faces noise, people never split": {
        "constants": {"SEPARATE_MIN_PHOTOS": 10 ** 9, "SEPARATE_MIN_GAP": float("inf")}},
    "faces of one photo: split at any conflict": {"constants": {"SEPARATE_MIN_PHOTOS": 1}},
    "fragments never joined": {"constants": {"JOIN_FRAGMENTS_UP_TO": 0}},
    "fragments of up to 10 faces joined": {"constants": {"JOIN_FRAGMENTS_UP_TO": 10}},
    "fragments of up to 50 faces joined": {"constants": {"JOIN_FRAGMENTS_UP_TO": 50}},
    "strict: fixed, split and prune at 0.24": {**FIXED, "split_distance": 0.24, "max_member_distance": 0.24},
    "strict: fixed, split and prune at 0.20": {**FIXED, "split_distance": 0.20, "max_member_distance": 0.20},
}


def fitted(X: np.ndarray, try_: dict, photos: np.ndarray | None = None) -> np.ndarray:
    """PeopleClusterer's labels with the try's settings and module constants."""
    from facecluster.grouping import clustering

    try_ = dict(try_)
    constants = try_.pop("constants", {})
    saved = {name: getattr(clustering, name) for name in constants}
    try:
        for name, value in constants.items():
            setattr(clustering, name, value)
        return PeopleClusterer(**{**DEFAULT, **try_}).fit(X, photos).labels_
    finally:
        for name, value in saved.items():
            setattr(clustering, name, value)


def scores(faces: pd.DataFrame, labels: pd.DataFrame, status: pd.DataFrame, person_id: np.ndarray, name: str) -> dict:
    scored = labelled_faces(faces.assign(person_id=person_id), status, labels)
    report = cluster_report(scored["person"].tolist(), scored["person_id"].to_numpy())
    grouped = scored[scored["person_id"] >= 0]
    largest = (grouped.groupby("person")["person_id"].agg(lambda p: p.value_counts().iloc[0])
               .reindex(scored["person"].unique()).fillna(0) / scored.groupby("person").size())
    many = scored.groupby("person").size() >= 5
    report["largest_min"] = float(largest[many].min()) if many.any() else float("nan")
    report["largest_median"] = float(largest[many].median()) if many.any() else float("nan")
    if name in ("families", "familyphotos"):
        members = grouped.assign(family=grouped["person"].str.split("_").str[0]).groupby("person_id")["person"].nunique()
        report["mixing"] = float((members > 1).mean()) if len(members) else 0.0
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept")
    parser.add_argument("--sets", nargs="+", default=["lfw500", "celebs17", "celebs17dup", "families", "familyphotos"])
    parser.add_argument("--tries", nargs="+", default=list(TRIES))
    args = parser.parse_args()
    for name in args.sets:
        root = Path(args.kept) / name
        out = root / "out"
        if not (out / "faces").exists():
            print(f"# {name}: no kept run under {root}")
            continue
        # familyphotos: faces labelled one by one (benchmarks/real_photos.py writes face_labels.csv)
        labels = pd.read_csv(root / "face_labels.csv" if (root / "face_labels.csv").exists() else root / "labels.csv")
        faces = pd.read_parquet(out / "faces", columns=["face_id", "photo_id", "path", "box", "face_px", "embedding"])
        status = pd.read_parquet(out / "photo_status")
        clustered = faces["face_px"].to_numpy() >= 32
        X = np.stack(faces["embedding"].to_numpy()).astype(np.float32)
        print(f"# {name}: {len(faces)} faces, {clustered.sum()} large enough to cluster")
        for title in args.tries:
            started = time.perf_counter()
            person = np.full(len(faces), -1)
            person[clustered] = fitted(X[clustered], TRIES[title], faces["photo_id"].to_numpy()[clustered])
            r = scores(faces, labels, status, person, name)
            pw, bc = r["pairwise"], r["bcubed"]
            print(f"{name:<12} {title:<50} P {pw['precision']:.3f} R {pw['recall']:.3f} F {pw['f']:.3f} | "
                  f"BCubed F {bc['f']:.3f} | people {r['people_found']:>4} for {r['people_true']:>4} | "
                  f"not grouped {r['noise_share']:.3f} | largest min {r['largest_min']:.2f} "
                  f"median {r['largest_median']:.2f}" + (f" | mixing {r['mixing']:.3f}" if "mixing" in r else "")
                  + f" | {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
