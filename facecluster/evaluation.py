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
