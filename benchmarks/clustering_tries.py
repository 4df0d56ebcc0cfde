"""The rule-by-set table: every clustering step on and off, on every real photo set, side by side.

Reads the runs that `benchmarks/real_photos.py --keep DIR` kept (DIR/<set>/out and the set's
labels), clusters each set's faces again with each try below (facecluster's own clustering, as
the cluster job runs it, without Spark) and scores them as real_photos.py does: pairwise and
BCubed P/R/F, people found, the share not grouped, the largest found person's share of each true
person, and mixed people (found people of 10 or more faces in which no true person holds half).

`lfw500add` is the add-album journey on lfw500's faces: a first run over the first 6 photos of
each of its 40 people and 50 of its people seen once, then an incremental run with the rest
(the cluster job's own functions, first run then incremental run).

    .venv/bin/python benchmarks/clustering_tries.py DIR [--sets lfwall background ...] [--tries defaults ...]
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from facecluster.core.settings import load_settings  # noqa: E402
from facecluster.grouping import clustering  # noqa: E402
from facecluster.grouping.quality import clarity  # noqa: E402
from jobs.cluster import cluster_faces  # noqa: E402
from real_photos import SAME_ARCHIVE, report, scored_faces  # noqa: E402

SETS = ("lfwall", "background", "celebs17", "celebs17dup", "celebs17collage", "families", "familyphotos", "lfw500",
        "lfw500add")
ADDED_TO = {"lfw500add": "lfw500"}


def _unchanged(X, labels, *args, **kwargs):
    return labels


# Each try: settings over the defaults (`cluster.*` keys), and module constants or steps of
# facecluster.grouping.clustering replaced for the try.
def _one_face_of_a_photo(X, face, others, twice):
    return len(others) == 0


TRIES = {
    "defaults": {},
    "without near-duplicates": {"settings": {"duplicate_distance": None}},
    "without split": {"settings": {"split_distance": None}},
    "without prune": {"patch": {"prune_strangers": _unchanged}},
    "faces of one photo never one person": {"patch": {"fits_with": _one_face_of_a_photo}},
    "without same-photo": {"no_photos": True},
    "without attach": {"patch": {"attach_not_grouped": _unchanged}},
    "without join": {"patch": {"JOIN_FRAGMENTS_UP_TO": 0}},
    "without attach and join": {"settings": {"attach_distance": None}},
    "one-person spread off": {"patch": {"ONE_PERSON_SPREAD": 100.0}},
    "one-person spread 0.90": {"patch": {"ONE_PERSON_SPREAD": 0.90}},
    "one-person spread 0.96": {"patch": {"ONE_PERSON_SPREAD": 0.96}},
    "gate: score 0.99 only": {"settings": {"min_face_score": 0.99, "min_clarity": None}},
    "without the gate": {"settings": {"min_clarity": None}},
    "gate: clarity 0.346": {"settings": {"min_clarity": 0.346}},
    "gate: clarity 0.36": {"settings": {"min_clarity": 0.36}},
    "gate: clarity and score 0.99": {"settings": {"min_face_score": 0.99}},
    "gate: face 40 px": {"settings": {"min_face_px": 40}},
    "gate: face 48 px": {"settings": {"min_face_px": 48}},
    "HDBSCAN alone": {"settings": {"duplicate_distance": None, "split_distance": None, "max_member_distance": None,
                                   "attach_distance": None}, "no_photos": True},
}


def _patched(patch: dict):
    saved = {name: getattr(clustering, name) for name in patch}
    for name, value in patch.items():
        setattr(clustering, name, value)
    return saved


def cluster_settings(try_: dict) -> dict:
    settings = load_settings()["cluster"] | {"mode": "full"}
    return settings | try_.get("settings", {})


def assignments(meta: pd.DataFrame, matrix: np.ndarray, try_: dict, first: np.ndarray | None = None) -> pd.DataFrame:
    """(face_id, person_id) as the cluster job finds them with the try; first: the faces of a
    first run, the rest added by an incremental run."""
    settings = cluster_settings(try_)
    if try_.get("no_photos"):
        meta = meta.assign(photo_id=meta["face_id"])
    saved = _patched(try_.get("patch", {}))
    try:
        previous = None
        if first is not None:
            previous, _ = cluster_faces(meta[first].reset_index(drop=True), matrix[first], settings, "first")
            settings = settings | {"mode": "incremental"}
        found, _ = cluster_faces(meta, matrix, settings, "try", previous=previous)
    finally:
        _patched(saved)
    return found[["face_id", "person_id"]]


def first_album(meta: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """lfw500add's first run: the first 6 photos of each person seen 10 times, and 50 of the
    people seen once (by file order)."""
    labels = labels.assign(name=labels["path"].str.split("/").str[-1]).sort_values("name")
    counts = labels["person"].value_counts()
    often = labels[labels["person"].map(counts) > 1].groupby("person").head(6)
    once = labels[labels["person"].map(counts) == 1].head(50)
    chosen = set(pd.concat([often, once])["path"])
    relative = meta["path"].map(lambda p: "/".join(str(p).split("/")[-2:]))
    return relative.isin(chosen).to_numpy()


def load(root: Path) -> tuple[pd.DataFrame, np.ndarray]:
    faces = pd.read_parquet(root / "out" / "faces")
    matrix = np.stack(faces["embedding"].to_numpy()).astype(np.float32)
    meta = faces.drop(columns=["embedding", "thumb", "landmarks"]).assign(
        albums=[[] for _ in range(len(faces))], face_score=faces["det_score"].astype(np.float64),
        clarity=clarity(matrix, faces["model"].iloc[0]))
    return meta, matrix


def show_mixed(faces: pd.DataFrame) -> None:
    """Each mixed person: size, the true people it holds, and its faces' median size, detector score and turn."""
    grouped = faces[faces["person_id"] >= 0]
    for person, members in grouped.groupby("person_id"):
        counts = members["person"].value_counts()
        if len(members) >= 10 and counts.iloc[0] < len(members) / 2:
            print(f"    mixed person {person}: {len(members)} faces of {len(counts)} people (most {counts.iloc[0]}); "
                  f"median face {members['face_px'].median():.0f} px, score {members['face_score'].median():.4f}, "
                  f"clarity {members['clarity'].median():.3f}; {', '.join(counts.index[:4])}")


def line(name: str, title: str, r: dict, seconds: float) -> str:
    pw, bc = r["pairwise"], r["bcubed"]
    text = (f"{name:<15} {title:<28} P {pw['precision']:.3f} R {pw['recall']:.3f} F {pw['f']:.3f} | "
            f"BCubed P {bc['precision']:.3f} R {bc['recall']:.3f} F {bc['f']:.3f} | "
            f"people {r['people_found']:>4} for {r['people_true']:>4} | not grouped {r['noise_share']:.3f} | "
            f"largest min {r['largest_share_min']:.2f} median {r['largest_share_median']:.2f} | "
            f"mixed {r['mixed_people']}")
    if "people_mixing_relatives_share" in r:
        text += f" | mixing {r['people_mixing_relatives_share']:.3f}"
    return text + f" | {seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--tries", nargs="+", default=list(TRIES), choices=list(TRIES))
    parser.add_argument("--show-mixed", action="store_true", help="print who is in each mixed person")
    args = parser.parse_args()
    loaded: dict[str, tuple] = {}
    found_before: dict[tuple, pd.DataFrame] = {}  # lfwall and background: one clustering, scored twice
    for name in args.sets:
        archive = SAME_ARCHIVE.get(name, ADDED_TO.get(name, name))
        root = Path(args.kept) / archive
        if not (root / "out" / "faces").exists():
            print(f"# {name}: no kept run under {root}", flush=True)
            continue
        if archive not in loaded:
            loaded, found_before = {archive: load(root)}, {}  # one archive's faces in memory at a time
        meta, matrix = loaded[archive]
        labels = pd.read_csv(root / "labels.csv")
        scored = scored_faces(root / "out", labels, name if name != "lfw500add" else "lfw500")
        first = first_album(meta, labels) if name == "lfw500add" else None
        print(f"# {name}: {len(meta)} faces, {len(scored)} scored"
              + (f", {int(first.sum())} in the first run" if first is not None else ""), flush=True)
        for title in args.tries:
            started = time.perf_counter()
            key = (title, first is not None)
            found = found_before.get(key)
            if found is None:
                found = found_before[key] = assignments(meta, matrix, TRIES[title], first)
            print(line(name, title, report(scored, found, name), time.perf_counter() - started), flush=True)
            if args.show_mixed:
                show_mixed(scored.merge(found, on="face_id").merge(meta, on="face_id"))


if __name__ == "__main__":
    main()
