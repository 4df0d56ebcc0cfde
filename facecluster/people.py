"""From cluster labels to people: the assignments and people tables, and the person x album view."""
from __future__ import annotations

import numpy as np
import pandas as pd

from facecluster.clustering import NOISE


def number_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber people so that person 0 has the most faces (ties: first seen); noise stays -1."""
    people = [p for p in pd.Series(labels[labels != NOISE]).value_counts(sort=True).index]
    mapping = {old: new for new, old in enumerate(people)}
    return np.array([mapping.get(int(label), NOISE) for label in labels], dtype=np.int64)


def assignments_table(face_ids, labels, probabilities, outlier_scores, clustered, run_id: str) -> pd.DataFrame:
    return pd.DataFrame({"face_id": list(face_ids), "person_id": np.asarray(labels, dtype=np.int64),
                         "probability": np.asarray(probabilities, dtype=np.float64),
                         "outlier_score": np.asarray(outlier_scores, dtype=np.float64),
                         "clustered": np.asarray(clustered, dtype=bool), "run_id": run_id})


def people_table(faces: pd.DataFrame, embeddings: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per person. faces: face_id, photo_id, albums (list) aligned with embeddings rows.

    The exemplar is the face nearest the person's centroid: the most typical picture of them.
    """
    rows = []
    for person in sorted(set(labels.tolist()) - {NOISE}):
        members = np.flatnonzero(labels == person)
        centroid = embeddings[members].mean(axis=0)
        centroid = centroid / (np.linalg.norm(centroid) or 1.0)
        nearest = members[np.argmin(np.linalg.norm(embeddings[members] - centroid, axis=1))]
        albums = sorted({a for albums in faces["albums"].iloc[members] for a in albums})
        rows.append({"person_id": int(person), "name": None, "n_faces": int(len(members)),
                     "n_photos": int(faces["photo_id"].iloc[members].nunique()), "albums": albums,
                     "n_albums": len(albums), "exemplar_face_id": faces["face_id"].iloc[nearest],
                     "centroid": centroid.astype(np.float32).tolist()})
    columns = ["person_id", "name", "n_faces", "n_photos", "albums", "n_albums", "exemplar_face_id", "centroid"]
    return pd.DataFrame(rows, columns=columns)
