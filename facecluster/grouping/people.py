"""From cluster labels to people: the assignments and people tables, and the person x album view."""
from __future__ import annotations

import numpy as np
import pandas as pd

from facecluster.grouping.clustering import NOISE, members_by_person


def number_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber people so that person 0 has the most faces (ties: first seen); noise stays -1."""
    people = [p for p in pd.Series(labels[labels != NOISE]).value_counts(sort=True).index]
    mapping = {old: new for new, old in enumerate(people)}
    return np.array([mapping.get(int(label), NOISE) for label in labels], dtype=np.int64)


def assignments_table(face_ids, labels, probabilities, outlier_scores, left_out, clarity, run_id: str
                      ) -> pd.DataFrame:
    """left_out: why each face was not clustered ("" or None for the faces clustered); clarity:
    each face's distance from where the network puts the faces it cannot read (NaN: not measured)."""
    reasons = pd.Series(list(left_out), dtype=object).replace("", None)
    return pd.DataFrame({"face_id": list(face_ids), "person_id": np.asarray(labels, dtype=np.int64),
                         "probability": np.asarray(probabilities, dtype=np.float64),
                         "outlier_score": np.asarray(outlier_scores, dtype=np.float64),
                         "clustered": reasons.isna().to_numpy(), "left_out": reasons.to_numpy(),
                         "clarity": np.asarray(clarity, dtype=np.float64), "run_id": run_id})


def with_covers(people: pd.DataFrame, person_of_face: pd.Series, covers: dict[str, int]) -> pd.DataFrame:
    """People whose picture the user chose (a `cover` label: face -> its line) show that face as
    their exemplar, the latest choice winning, for as long as the face is theirs."""
    if not covers or not len(people):
        return people
    chosen = {}
    for face, _ in sorted(covers.items(), key=lambda item: item[1]):
        person = person_of_face.get(face)
        if person is not None and not pd.isna(person) and int(person) >= 0:
            chosen[int(person)] = face
    people = people.copy()
    people["exemplar_face_id"] = people["person_id"].map(chosen).fillna(people["exemplar_face_id"])
    return people


def people_table(faces: pd.DataFrame, embeddings: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per person. faces: face_id, photo_id, albums (list) aligned with embeddings rows.

    The exemplar is the face nearest the person's centroid: the most typical picture of them.
    """
    columns = ["person_id", "name", "n_faces", "n_photos", "albums", "n_albums", "exemplar_face_id", "centroid",
               "hidden"]
    labels = np.asarray(labels)
    grouped = [(person, members) for person, members in members_by_person(labels)]
    if not grouped:
        return pd.DataFrame(columns=columns)
    # Vectorised over people: a loop per person takes minutes at a million faces.
    order = np.concatenate([members for _, members in grouped])
    sizes = np.array([len(members) for _, members in grouped])
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    vectors = embeddings[order].astype(np.float64)
    centroids = np.add.reduceat(vectors, starts, axis=0) / sizes[:, None]
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True).clip(1e-12)
    owner = np.repeat(np.arange(len(grouped)), sizes)
    distance = np.linalg.norm(vectors - centroids[owner], axis=1)
    nearest = pd.Series(distance).groupby(owner).idxmin().to_numpy()
    members = faces.iloc[order][["face_id", "photo_id", "albums"]].assign(owner=owner)
    albums = (members[["owner", "albums"]].explode("albums").dropna()
              .groupby("owner")["albums"].agg(lambda a: sorted(set(a))))
    albums = albums.reindex(np.arange(len(grouped))).map(lambda a: a if isinstance(a, list) else [])
    return pd.DataFrame({
        "person_id": [person for person, _ in grouped], "name": None, "n_faces": sizes.astype(np.int64),
        "n_photos": members.groupby("owner")["photo_id"].nunique().to_numpy().astype(np.int64),
        "albums": albums.to_list(), "n_albums": albums.map(len).to_numpy().astype(np.int64),
        "exemplar_face_id": members["face_id"].to_numpy()[nearest],
        "centroid": [c.tolist() for c in centroids.astype(np.float32)], "hidden": False,
    }, columns=columns)


def without_hidden(run: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """A run's tables (by name) without the people a label hid, nor their faces: what every view
    and the export show. Tables the run dict lacks are left lacking."""
    people = run.get("people")
    if people is None or "hidden" not in people:
        return run
    gone = set(people.loc[people["hidden"].astype(bool), "person_id"].astype(int))
    if not gone:
        return run
    run = dict(run)
    run["people"] = people[~people["person_id"].isin(gone)].reset_index(drop=True)
    if "person_albums" in run:
        run["person_albums"] = run["person_albums"][~run["person_albums"]["person_id"].isin(gone)]
    if "assignments" in run:
        assignments = run["assignments"]
        faces_gone = set(assignments.loc[assignments["person_id"].isin(gone), "face_id"])
        for name in ("assignments", "faces"):
            if name in run:
                run[name] = run[name][~run[name]["face_id"].isin(faces_gone)].reset_index(drop=True)
    return run
