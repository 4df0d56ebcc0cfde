"""Two faces of one photo are two people: how often clustering put two faces of one photo in
one person, without the rule and with it, on the kept runs of benchmarks/real_photos.py.

    .venv/bin/python benchmarks/same_photo.py DIR [--groups OUT]

Sets (the faces and embeddings of DIR/<set>/out):
  lfw500     LFW photos as they are (some hold two or three faces: a face behind the person)
  families   each crop's source photo from its file name (families_group_photos.csv): the crops
             of one family photo are faces of one photo, as they are in a family's archive
  celebs17   a set built here: celebs17's faces dealt into made-up photos of 2 to 4 different
             actors each (one face per actor and photo), as group photos of a cast are
  groups     (--groups OUT) a run over ../shared/data/photos/groups: real group photos, no truth

Per set: the (photo, person) pairs holding two or more faces, pairwise P / R / F on the faces
with a truth, and on families the found people mixing two relatives.
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
from facecluster.core.settings import load_settings  # noqa: E402
from facecluster.measuring.evaluation import labelled_faces  # noqa: E402
from facecluster.measuring.metrics import pairwise_scores  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "photos"


def load(out: Path) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    faces = pd.read_parquet(out / "faces", columns=["face_id", "photo_id", "path", "box", "face_px", "embedding"])
    faces = faces[faces["face_px"] >= 32].reset_index(drop=True)
    return faces, np.stack(faces["embedding"].to_numpy()).astype(np.float32), pd.read_parquet(out / "photo_status")


def family_sources(faces: pd.DataFrame) -> np.ndarray:
    """The source photo of each crop: real_photos.py numbered the sorted crops 00000, 00001, ..."""
    crops = sorted((DATA / "families").glob("*/*.jpg"))
    source = {f"{number:05d}": crop.name.split("_")[0] for number, crop in enumerate(crops)}
    return faces["path"].map(lambda p: source[Path(p).stem]).to_numpy()


def dealt_into_group_photos(truth: pd.Series, seed: int = 0) -> np.ndarray:
    """Made-up photos of 2 to 4 different people each: faces dealt round-robin by person."""
    rng = np.random.default_rng(seed)
    photo = np.empty(len(truth), dtype=object)
    queues = {person: list(rng.permutation(np.flatnonzero(truth.to_numpy() == person))) for person in truth.unique()}
    number = 0
    while any(queues.values()):
        people = [p for p, q in queues.items() if q]
        chosen = rng.choice(people, size=min(len(people), int(rng.integers(2, 5))), replace=False)
        for person in chosen:
            photo[queues[person].pop()] = f"group{number}"
        number += 1
    return photo


def shared_photo_pairs(labels: np.ndarray, photos: np.ndarray) -> int:
    grouped = labels >= 0
    counts = pd.DataFrame({"person": labels[grouped], "photo": photos[grouped]}).value_counts()
    return int((counts >= 2).sum())


def report(name: str, X, photos, faces, status, truth_table, settings, families: bool = False, truth=None) -> None:
    for rule, given in (("without the rule", None), ("with the rule", photos)):
        labels = PeopleClusterer.from_settings(settings, "dlib-resnet-v1").fit(X, given).labels_
        line = f"{name:<10} {rule:<17} (photo, person) pairs with 2+ faces: {shared_photo_pairs(labels, photos):>4}"
        if truth_table is not None:
            scored = labelled_faces(faces.assign(person_id=labels), status, truth_table)
            pw = pairwise_scores(scored["person"].to_numpy(), scored["person_id"].to_numpy())
            line += f" | pairwise P {pw['precision']:.3f} R {pw['recall']:.3f} F {pw['f']:.3f}"
            if families:
                grouped = scored[scored["person_id"] >= 0]
                members = grouped.groupby("person_id")["person"].nunique()
                line += f" | people mixing relatives {(members > 1).mean():.3f}"
        elif truth is not None:
            pw = pairwise_scores(np.asarray(truth), labels)
            line += f" | pairwise P {pw['precision']:.3f} R {pw['recall']:.3f} F {pw['f']:.3f}"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept")
    parser.add_argument("--groups", help="output root of a run over ../shared/data/photos/groups")
    args = parser.parse_args()
    settings = load_settings()["cluster"]
    kept = Path(args.kept)
    faces, X, status = load(kept / "lfw500" / "out")
    report("lfw500", X, faces["photo_id"].to_numpy(), faces, status, pd.read_csv(kept / "lfw500" / "labels.csv"),
           settings)
    faces, X, status = load(kept / "families" / "out")
    report("families", X, family_sources(faces), faces, status, pd.read_csv(kept / "families" / "labels.csv"),
           settings, families=True)
    faces, X, status = load(kept / "celebs17" / "out")
    truth = pd.read_csv(kept / "celebs17" / "labels.csv")
    scored = labelled_faces(faces, status, truth)
    faces = faces[faces["face_id"].isin(scored["face_id"])].reset_index(drop=True)  # the face each photo is about
    X = np.stack(faces["embedding"].to_numpy()).astype(np.float32)
    person = faces["face_id"].map(dict(zip(scored["face_id"], scored["person"])))
    built = faces.assign(photo_id=dealt_into_group_photos(person))
    report("celebs17 in group photos", X, built["photo_id"].to_numpy(), built, status, None, settings,
           truth=person.to_numpy())
    if args.groups:
        faces, X, status = load(Path(args.groups))
        report("groups", X, faces["photo_id"].to_numpy(), faces, status, None, settings)


if __name__ == "__main__":
    main()
