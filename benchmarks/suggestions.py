"""Dedupe across albums: how good are the merge suggestions, best first?

All of LFW (the cached dlib embeddings of `benchmarks/lfw.py embed-all`) is spread at random over
four albums, and each album is clustered on its own (default settings), as when albums arrive
from different people or years. The same person is then found once per album. The people of
all albums are ranked as facecluster ranks merge suggestions (facecluster.viewing.runs.close_people:
nearest centroids first) and each cross-album pair is scored: right when both people are mostly
the same LFW person. Prints precision (and recall of all such pairs) of the top k.

    .venv/bin/python benchmarks/suggestions.py [--cache .cache/lfw_dlib]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.grouping.clustering import PeopleClusterer  # noqa: E402
from facecluster.measuring.evaluation import central_faces, person_from_folder  # noqa: E402
from facecluster.viewing.runs import close_people  # noqa: E402
from facecluster.recognition.thresholds import distances  # noqa: E402
from facecluster.recognition.verification import DistanceCalibration  # noqa: E402

MODEL = "dlib-resnet-v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(ROOT / ".cache" / "lfw_dlib"))
    parser.add_argument("--albums", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cache = Path(args.cache)
    faces = central_faces(pd.read_parquet(cache / "faces"), pd.read_parquet(cache / "photo_status"))
    faces = faces.reset_index(drop=True)
    faces["person"] = person_from_folder(faces["path"])
    faces["album"] = np.random.default_rng(args.seed).integers(0, args.albums, len(faces))
    X = np.stack(faces["embedding"].to_numpy()).astype(np.float32)

    people = []  # one row per (album, person found there)
    for album, rows in faces.groupby("album").groups.items():
        rows = np.asarray(list(rows))
        labels = PeopleClusterer(min_samples=2, split_distance=distances(MODEL).split_distance,
                                 max_member_distance=distances(MODEL).member_radius).fit(X[rows]).labels_
        for label in set(labels) - {-1}:
            members = rows[labels == label]
            centroid = X[members].mean(axis=0)
            people.append({"album": album, "truth": faces.loc[members, "person"].mode().iloc[0],
                           "faces": len(members), "centroid": centroid / np.linalg.norm(centroid)})
    people = pd.DataFrame(people)
    truth, album = people["truth"].to_numpy(), people["album"].to_numpy()
    duplicates = sum(
        (count * (count - 1)) // 2 - sum((c * (c - 1)) // 2 for c in people[people.truth == name].album.value_counts())
        for name, count in people["truth"].value_counts().items())
    pairs = [(i, j, d) for i, j, d in close_people(np.stack(people["centroid"].to_numpy()), neighbours=10)
             if album[i] != album[j]]
    threshold = DistanceCalibration.load(MODEL).threshold_
    print(f"{len(faces)} LFW photos in {args.albums} albums clustered album by album: {len(people)} people found; "
          f"{duplicates} cross-album pairs are one person")
    print(f"{'top k':>6} {'precision':>9} {'recall':>7} {'distance of the k-th':>21}")
    for k in (10, 50, 100, 200, 300, 500, 1000):
        if k > len(pairs):
            break
        right = sum(truth[i] == truth[j] for i, j, _ in pairs[:k])
        print(f"{k:6d} {right / k:9.3f} {right / max(1, duplicates):7.3f} {pairs[k - 1][2]:21.3f}")
    print(f"{'centroids within':>16} {'suggestions':>11} {'precision':>9} {'recall':>7}")
    for cut in (0.20, 0.22, 0.24, 0.26, 0.28, 0.30, round(threshold, 3)):
        within = [p for p in pairs if p[2] <= cut]
        right = sum(truth[i] == truth[j] for i, j, _ in within)
        print(f"{cut:16.3f} {len(within):11d} {right / max(1, len(within)):9.3f} {right / max(1, duplicates):7.3f}"
              + ("  (the verification distance)" if cut == round(threshold, 3) else ""))


if __name__ == "__main__":
    main()
