"""Does a triplet-trained head help on people it never saw? LFW dev people split in two.

The people of ../shared/data/lfw_pairs_dev.txt are split at random into train and test people.
A head is trained (facecluster.training.triplet, settings from conf/local.yaml's `train:`) on every LFW
photo of the train people; then on the test people only, before and after the head:
- verification: 10-fold accuracy, AUC on the dev pairs whose people are all test people;
- clustering: pairwise F of plain HDBSCAN (min_samples 2) on every LFW photo of the test people.

    .venv/bin/python benchmarks/triplet.py --cache .cache/lfw_dlib [--steps 1000]
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
from facecluster.measuring.evaluation import central_faces, person_from_folder  # noqa: E402
from facecluster.measuring.metrics import cluster_report  # noqa: E402
from facecluster.core.settings import load_settings  # noqa: E402
from facecluster.training.triplet import TripletTrainer  # noqa: E402
from facecluster.udfs.head import apply_head  # noqa: E402
from facecluster.recognition.verification import evaluate_pair_distances, read_pairs  # noqa: E402


def lfw_faces(cache: Path) -> pd.DataFrame:
    faces = central_faces(pd.read_parquet(cache / "faces"), pd.read_parquet(cache / "photo_status"))
    faces["path"] = faces["path"].str.replace("file:", "", regex=False)
    faces["person"] = person_from_folder(faces["path"])
    return faces.reset_index(drop=True)


def scores(X: np.ndarray, faces: pd.DataFrame, pairs, test_people: set) -> dict:
    row = {p: i for i, p in enumerate(faces["path"])}
    d, same = [], []
    for a, b, is_same in pairs:
        if Path(a).parent.name in test_people and Path(b).parent.name in test_people and a in row and b in row:
            d.append(float(np.linalg.norm(X[row[a]] - X[row[b]])))
            same.append(is_same)
    verification = evaluate_pair_distances(d, same, "test")
    mine = faces["person"].isin(test_people).to_numpy()
    labels = PeopleClusterer(min_samples=2).fit(X[mine]).labels_
    clusters = cluster_report(faces.loc[mine, "person"].tolist(), labels)
    return {"pairs": len(d), "accuracy": verification["accuracy"], "accuracy_std": verification["accuracy_std"],
            "auc": verification["auc"], "faces": int(mine.sum()), "pairwise_f": clusters["pairwise"]["f"],
            "pairwise_p": clusters["pairwise"]["precision"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(ROOT / ".cache" / "lfw_dlib"))
    parser.add_argument("--pairs", default=str(ROOT.parent / "shared" / "data" / "lfw_pairs_dev.txt"))
    parser.add_argument("--lfw", default=str(ROOT.parent / "shared" / "data" / "lfw"))
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    faces = lfw_faces(Path(args.cache))
    X = np.stack(faces["embedding"].to_numpy()).astype(np.float32)
    pairs = read_pairs(args.pairs, args.lfw)
    dev_people = sorted({Path(p).parent.name for a, b, _ in pairs for p in (a, b)})
    rng = np.random.default_rng(args.seed)
    train_people = set(rng.choice(dev_people, size=len(dev_people) // 2, replace=False))
    test_people = set(dev_people) - train_people
    learn = faces["person"].isin(train_people).to_numpy()
    print(f"{len(dev_people)} dev people: {len(train_people)} train ({int(learn.sum())} photos), "
          f"{len(test_people)} test ({int(faces['person'].isin(test_people).sum())} photos)")
    base = load_settings()["train"]
    if args.steps:
        base["steps"] = args.steps
    before = scores(X, faces, pairs, test_people)
    print(f"{'':26s} {'pairs':>5s} {'accuracy':>16s} {'AUC':>8s} {'faces':>6s} {'pairwise P':>10s} {'F':>7s}")
    show = lambda name, s: print(  # noqa: E731
        f"{name:26s} {s['pairs']:5d} {100 * s['accuracy']:8.2f}% ± {100 * s['accuracy_std']:.2f} {s['auc']:8.5f} "
        f"{s['faces']:6d} {s['pairwise_p']:10.4f} {s['pairwise_f']:7.4f}")
    show("before (dlib as it is)", before)
    for mining in ("semi_hard", "batch_hard"):
        settings = {**base, "mining": mining}
        started = time.perf_counter()
        trainer = TripletTrainer(**settings, log=None).fit(X[learn], faces.loc[learn, "person"].to_numpy())
        seconds = time.perf_counter() - started
        history = np.array(trainer.history_)
        after = scores(apply_head(trainer.head_, X), faces, pairs, test_people)
        show(f"after, {mining}", after)
        print(f"{'':26s} {settings['steps']} steps in {seconds:.0f} s; loss {history[:50, 1].mean():.4f} -> "
              f"{history[-50:, 1].mean():.4f}, active triplets {history[:50, 2].mean():.3f} -> "
              f"{history[-50:, 2].mean():.3f} (means of the first and last 50 steps)")


if __name__ == "__main__":
    main()
