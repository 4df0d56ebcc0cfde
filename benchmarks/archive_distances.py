"""Distances from the archive itself: faces of one photo are different people, free in every
archive. How far does that alone get? On dlib, whose distances were tuned on labelled faces,
each set's own pairs of faces sharing a photo give a scale (their median over the median of the
other sets' pairs); dlib's distances times that scale are what a model without measured distances
would get from that archive. Compared with the tuned distances, and clustered with both.

    .venv/bin/python benchmarks/archive_distances.py DIR      # DIR: benchmarks/real_photos.py --keep DIR

Sets (DIR/<set>/out): lfw500 (news photos: a face behind the person), families (crops of one
family photo: relatives, the hardest strangers), celebs17 (web photos: co-stars, posters),
groups (real group photos and a crowd; no truth, pairs only).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from same_photo import family_sources, load  # noqa: E402

from facecluster.core.settings import load_settings  # noqa: E402
from facecluster.grouping.clustering import PeopleClusterer  # noqa: E402
from facecluster.measuring.evaluation import labelled_faces  # noqa: E402
from facecluster.measuring.metrics import pairwise_scores  # noqa: E402
from facecluster.recognition import thresholds  # noqa: E402

MODEL = "dlib-resnet-v1"
SETS = ("lfw500", "families", "celebs17", "groups")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept")
    args = parser.parse_args()
    kept = Path(args.kept)
    settings = load_settings()["cluster"]
    data = {}
    for name in SETS:
        faces, X, status = load(kept / name / "out")
        photos = family_sources(faces) if name == "families" else faces["photo_id"].to_numpy()
        data[name] = (faces, X, status, photos, thresholds.same_photo_distances(X, photos))
    pooled = np.concatenate([d[4] for d in data.values()])
    print(f"all sets: {len(pooled)} pairs of faces sharing a photo, median {np.median(pooled):.3f} "
          f"(shipped reference for {MODEL}: {thresholds.SAME_PHOTO_MEDIAN[MODEL]})\n")
    tuned = thresholds.distances(MODEL)
    keys = ("member_radius", "split_distance", "attach", "suggest_merge", "duplicate")
    print(f"{'set':<10} {'pairs':>6} {'median':>7} {'others':>7} {'scale':>6}  "
          + "  ".join(f"{k} {getattr(tuned, k):.3f}->" for k in keys) + "  verification 0.436->")
    fitted_of = {}
    for name, (faces, X, status, photos, own) in data.items():
        others = np.median(np.concatenate([d[4] for n, d in data.items() if n != name]))
        scale = np.median(own) / others
        fitted_of[name] = tuned.scaled(scale, "leave one out")
        print(f"{name:<10} {len(own):>6} {np.median(own):>7.3f} {others:>7.3f} {scale:>6.3f}  "
              + "  ".join(f"{' ' * (len(k) + 7)}{getattr(fitted_of[name], k):.3f}" for k in keys)
              + f"  {' ' * 15}{0.436 * scale:.3f}")

    print("\nclustering with the tuned distances and with the distances fitted to the set (pairwise P / R / F):")
    for name in ("lfw500", "families", "celebs17"):
        faces, X, status, photos, _ = data[name]
        truth = pd.read_csv(kept / name / "labels.csv")
        line = f"{name:<10}"
        for label, chosen in (("tuned", tuned), ("fitted", fitted_of[name])):
            labels = PeopleClusterer.from_settings(settings, MODEL, chosen).fit(X, photos).labels_
            scored = labelled_faces(faces.assign(person_id=labels), status, truth)
            pw = pairwise_scores(scored["person"].to_numpy(), scored["person_id"].to_numpy())
            line += f"  {label} {pw['precision']:.3f} / {pw['recall']:.3f} / {pw['f']:.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
