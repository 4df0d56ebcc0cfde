"""Where the network puts the faces it cannot read, and what a gate there leaves out, per set.

The unclear centre of a model is the mean (made unit length) of the poorest faces of the dev
LFW split: those MTCNN scored below 0.98 or under 40 pixels wide. Printed per set: the share of
all faces, and of the faces the set is scored on (the face each photo is about), that each
clarity threshold would leave out, beside the detector-score gate.

    .venv/bin/python benchmarks/face_quality.py DIR [--write --min-clarity 0.346]

DIR: the runs `benchmarks/real_photos.py --keep DIR` kept. --write stores the centre and the
threshold in facecluster/grouping/unclear_faces.json, where `cluster.min_clarity: auto` reads them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from facecluster.grouping.quality import CENTRES  # noqa: E402
from real_photos import scored_faces  # noqa: E402

POOR_SCORE, POOR_PX = 0.98, 40
SETS = ("lfwall", "celebs17", "celebs17dup", "celebs17collage", "families", "familyphotos", "lfw500")
THRESHOLDS = (0.33, 0.346, 0.36)


def faces_of(root: Path) -> tuple[pd.DataFrame, np.ndarray]:
    faces = pd.read_parquet(root / "out" / "faces", columns=["face_id", "photo_id", "det_score", "face_px", "embedding",
                                                              "model"])
    return faces, np.stack(faces["embedding"].to_numpy()).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--min-clarity", type=float, default=0.346)
    args = parser.parse_args()
    kept = Path(args.kept)
    faces, X = faces_of(kept / "lfwall")
    poor = ((faces["det_score"] < POOR_SCORE) | (faces["face_px"] < POOR_PX)).to_numpy()
    centre = X[poor].mean(axis=0)
    centre /= np.linalg.norm(centre)
    model = faces["model"].iloc[0]
    print(f"# {model}: unclear centre from {poor.sum()} of the dev LFW split's {len(faces)} faces "
          f"(score < {POOR_SCORE} or < {POOR_PX} px)")
    for name in SETS:
        root = kept / name
        if not (root / "out" / "faces").exists():
            continue
        faces, X = faces_of(root)
        faces = faces.assign(clarity=np.sqrt(np.clip(2 - 2 * X @ centre, 0, None)))
        scored = faces["face_id"].isin(scored_faces(root / "out", pd.read_csv(root / "labels.csv"), name)["face_id"])
        large = faces["face_px"] >= 32
        cells = [f"{name:<16} faces {len(faces):>5} ({scored.sum():>5} scored)"]
        for t in THRESHOLDS:
            out = large & (faces["clarity"] < t)
            cells.append(f"clarity < {t}: {out[large].mean():.3f} of faces, {out[scored & large].mean():.3f} of scored")
        out = large & (faces["det_score"] < 0.99)
        cells.append(f"score < 0.99: {out[large].mean():.3f} / {out[scored & large].mean():.3f}")
        print(" | ".join(cells), flush=True)
    if args.write:
        known = json.loads(CENTRES.read_text()) if CENTRES.exists() else {}
        known[model] = {"min_clarity": args.min_clarity, "source": (
            f"benchmarks/face_quality.py: mean of the {poor.sum()} faces of the dev LFW split scored below "
            f"{POOR_SCORE} by MTCNN or under {POOR_PX} px"), "centre": [round(float(v), 6) for v in centre]}
        CENTRES.write_text(json.dumps(known, indent=1) + "\n")
        print(f"# wrote {CENTRES}")


if __name__ == "__main__":
    main()
