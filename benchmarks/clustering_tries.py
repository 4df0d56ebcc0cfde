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

from facecluster.clustering import PeopleClusterer  # noqa: E402
from facecluster.evaluation import labelled_faces  # noqa: E402
from facecluster.metrics import cluster_report  # noqa: E402

DEFAULT = {"min_cluster_size": 2, "min_samples": 2, "cluster_selection_epsilon": 0.0,
           "cluster_selection_method": "eom", "split_distance": 0.38, "max_member_distance": 0.35,
           "algorithm": "exact", "duplicate_distance": None}
TRIES = {
    "default": {},
    "no split, no prune": {"split_distance": None, "max_member_distance": None},
    "duplicates 0.1": {"duplicate_distance": 0.1},
    "duplicates 0.15": {"duplicate_distance": 0.15},
    "epsilon 0.3": {"cluster_selection_epsilon": 0.3},
    "duplicates 0.1, epsilon 0.3": {"duplicate_distance": 0.1, "cluster_selection_epsilon": 0.3},
    "duplicates 0.1, epsilon 0.3, prune 0.45": {"duplicate_distance": 0.1, "cluster_selection_epsilon": 0.3,
                                                "max_member_distance": 0.45},
    "duplicates 0.1, epsilon 0.3, no split, prune 0.45": {"duplicate_distance": 0.1, "cluster_selection_epsilon": 0.3,
                                                          "split_distance": None, "max_member_distance": 0.45},
    "duplicates 0.1, epsilon 0.2": {"duplicate_distance": 0.1, "cluster_selection_epsilon": 0.2},
    "duplicates 0.1, epsilon 0.25": {"duplicate_distance": 0.1, "cluster_selection_epsilon": 0.25},
    "duplicates 0.15, epsilon 0.25": {"duplicate_distance": 0.15, "cluster_selection_epsilon": 0.25},
    "duplicates 0.1, epsilon 0.25, split 0.42": {"duplicate_distance": 0.1, "cluster_selection_epsilon": 0.25,
                                                 "split_distance": 0.42},
    "min_cluster_size 5": {"min_cluster_size": 5, "min_samples": 5},
    "leaf": {"cluster_selection_method": "leaf"},
}


def scores(faces: pd.DataFrame, labels: pd.DataFrame, status: pd.DataFrame, person_id: np.ndarray, name: str) -> dict:
    scored = labelled_faces(faces.assign(person_id=person_id), status, labels)
    report = cluster_report(scored["person"].tolist(), scored["person_id"].to_numpy())
    grouped = scored[scored["person_id"] >= 0]
    largest = (grouped.groupby("person")["person_id"].agg(lambda p: p.value_counts().iloc[0])
               .reindex(scored["person"].unique()).fillna(0) / scored.groupby("person").size())
    many = scored.groupby("person").size() >= 5
    report["largest_min"] = float(largest[many].min()) if many.any() else float("nan")
    report["largest_median"] = float(largest[many].median()) if many.any() else float("nan")
    if name == "families":
        members = grouped.assign(family=grouped["person"].str.split("_").str[0]).groupby("person_id")["person"].nunique()
        report["mixing"] = float((members > 1).mean()) if len(members) else 0.0
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept")
    parser.add_argument("--sets", nargs="+", default=["lfw500", "celebs17", "celebs17dup", "families"])
    parser.add_argument("--tries", nargs="+", default=list(TRIES))
    args = parser.parse_args()
    for name in args.sets:
        root = Path(args.kept) / name
        out = root / "out"
        if not (out / "faces").exists():
            print(f"# {name}: no kept run under {root}")
            continue
        labels = pd.read_csv(root / "labels.csv")
        faces = pd.read_parquet(out / "faces", columns=["face_id", "photo_id", "path", "box", "face_px", "embedding"])
        status = pd.read_parquet(out / "photo_status")
        clustered = faces["face_px"].to_numpy() >= 32
        X = np.stack(faces["embedding"].to_numpy()).astype(np.float32)
        print(f"# {name}: {len(faces)} faces, {clustered.sum()} large enough to cluster")
        for title in args.tries:
            started = time.perf_counter()
            model = PeopleClusterer(**{**DEFAULT, **TRIES[title]}).fit(X[clustered])
            person = np.full(len(faces), -1)
            person[clustered] = model.labels_
            r = scores(faces, labels, status, person, name)
            pw, bc = r["pairwise"], r["bcubed"]
            print(f"{name:<12} {title:<50} P {pw['precision']:.3f} R {pw['recall']:.3f} F {pw['f']:.3f} | "
                  f"BCubed F {bc['f']:.3f} | people {r['people_found']:>4} for {r['people_true']:>4} | "
                  f"not grouped {r['noise_share']:.3f} | largest min {r['largest_min']:.2f} "
                  f"median {r['largest_median']:.2f}" + (f" | mixing {r['mixing']:.3f}" if "mixing" in r else "")
                  + f" | {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
