"""Scoring a run against people whose names are known (LFW: the folder is the person)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def central_faces(faces: pd.DataFrame, photo_status: pd.DataFrame) -> pd.DataFrame:
    """One face per photo: the one whose box centre is nearest the photo's centre
    (LFW centres the named person; other faces in the frame are bystanders)."""
    faces = faces.merge(photo_status[["photo_id", "width", "height"]], on="photo_id")
    box = np.stack(faces["box"].to_numpy()) if len(faces) else np.zeros((0, 4))
    centre_x, centre_y = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
    faces = faces.assign(off_centre=np.hypot(centre_x - faces["width"] / 2, centre_y - faces["height"] / 2))
    return faces.sort_values(["photo_id", "off_centre"]).drop_duplicates("photo_id").drop(columns="off_centre")


def person_from_folder(paths: pd.Series) -> pd.Series:
    """LFW's layout: ROOT/Person_Name/Person_Name_0001.jpg -> Person_Name."""
    return paths.str.rsplit("/", n=2).str[-2]


def lfw_subset(names: pd.Series, n_people: int = 40, per_person: int = 10, n_distractors: int = 100,
               seed: int = 0) -> pd.Index:
    """Rows of the n_people people with most photos (at most per_person each, first by file
    order) plus n_distractors people with a single photo chosen at random (seed)."""
    counts = names.value_counts()
    top = counts.sort_values(ascending=False, kind="stable").head(n_people).index
    chosen = [names[names == person].sort_index().index[:per_person] for person in top]
    singles = counts[counts == 1].index.sort_values()
    rng = np.random.default_rng(seed)
    distractors = rng.choice(np.asarray(singles), size=min(n_distractors, len(singles)), replace=False)
    chosen.append(names[names.isin(distractors)].index)
    return pd.Index(np.concatenate([np.asarray(c) for c in chosen]))


def labelled_faces(faces: pd.DataFrame, photo_status: pd.DataFrame, labels: pd.DataFrame | str) -> pd.DataFrame:
    """Faces with their true `person`.

    labels: 'folder' (the person is the photo's folder, as in LFW), or a table with a `person`
    column and one key: face_id (each labelled face is scored), photo_id or path (the face
    nearest each photo's centre is scored; a path matches a face's path that ends with it).
    """
    if isinstance(labels, str):
        if labels != "folder":
            raise ValueError(f"labels must be 'folder' or a table, not {labels!r}")
        chosen = central_faces(faces, photo_status)
        return chosen.assign(person=person_from_folder(chosen["path"]).to_numpy())
    if "person" not in labels.columns:
        raise ValueError(f"the labels need a 'person' column (columns: {', '.join(labels.columns)})")
    if "face_id" in labels.columns:
        return faces.merge(labels[["face_id", "person"]], on="face_id")
    chosen = central_faces(faces, photo_status)
    if "photo_id" in labels.columns:
        return chosen.merge(labels[["photo_id", "person"]], on="photo_id")
    if "path" not in labels.columns:
        raise ValueError("the labels need one of the columns face_id, photo_id or path")
    by_path = dict(zip(labels["path"].str.strip("/"), labels["person"]))

    def person_of(path: str):
        parts = path.split("/")
        for start in range(len(parts)):
            found = by_path.get("/".join(parts[start:]))
            if found is not None:
                return found
        return None

    chosen = chosen.assign(person=chosen["path"].map(person_of))
    return chosen[chosen["person"].notna()]


def evaluate_run(out: str, labels: pd.DataFrame | str) -> dict:
    """cluster_report of a finished run's assignments against known people."""
    from pathlib import Path

    from facecluster.measuring.metrics import cluster_report

    root = Path(out)
    faces = pd.read_parquet(root / "faces", columns=["face_id", "photo_id", "path", "box"])
    scored = labelled_faces(faces, pd.read_parquet(root / "photo_status"), labels)
    scored = scored.merge(pd.read_parquet(root / "assignments", columns=["face_id", "person_id"]), on="face_id")
    if scored.empty:
        raise ValueError("no face of the run matches the labels")
    return cluster_report(scored["person"].tolist(), scored["person_id"].to_numpy())


def format_report(title: str, report: dict) -> str:
    pw, bc = report["pairwise"], report["bcubed"]
    return (f"{title}: pairwise P {pw['precision']:.4f} R {pw['recall']:.4f} F {pw['f']:.4f} | "
            f"BCubed P {bc['precision']:.4f} R {bc['recall']:.4f} F {bc['f']:.4f} | NMI {report['nmi']:.4f} | "
            f"people {report['people_found']} (true {report['people_true']}) | noise {report['noise_share']:.3f} | "
            f"faces {report['faces']}")
