"""An incremental run: the people of the last run keep their faces; the new faces join them or
make new people."""
from __future__ import annotations

import numpy as np
import pandas as pd

from facecluster.grouping.clustering import NOISE, PeopleClusterer, fits_with, members_by_person


def add_to_people(meta: pd.DataFrame, matrix: np.ndarray, clustered: np.ndarray, previous: pd.DataFrame,
                  cluster_settings: dict, model: str, distances=None, clusterer: PeopleClusterer | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An incremental run: the people of the last run keep their faces, and every face is
    clustered again together, so that the new faces meet the old ones with all of a full run's
    rules. Each face that was in no person takes the old person holding most of the old faces
    of the person it was found in, or makes a new person where that person holds none.

    Clustering the new faces alone, or the faces left over after joining each new face to its
    nearest old one, made "people" of the leftovers that a full run leaves apart: the first run's
    not-grouped faces (mostly the poorest) chained with the new album's strangers. clusterer:
    the PeopleClusterer to use (by default one from the settings)."""
    photos = meta["photo_id"].to_numpy()
    before = previous.set_index("face_id")
    old = meta["face_id"].map(before["person_id"])
    labels = np.full(len(meta), NOISE, dtype=np.int64)
    probabilities = np.zeros(len(meta))
    outlier_scores = np.full(len(meta), np.nan)
    grouped = (clustered & old.notna() & (old.fillna(NOISE) != NOISE)).to_numpy()
    labels[grouped] = old[grouped].astype(np.int64)
    probabilities[grouped] = meta["face_id"][grouped].map(before["probability"]).to_numpy()
    outlier_scores[grouped] = meta["face_id"][grouped].map(before["outlier_score"]).to_numpy()
    rows = np.flatnonzero(clustered)
    clusterer = clusterer or PeopleClusterer.from_settings(cluster_settings, model, distances)
    clusterer.fit(matrix[rows], photos[rows])
    newcomer = ~grouped[rows]
    twice = clusterer.twice_by_face(matrix, photos)
    taken: dict = {}  # (person, photo) -> faces: a newcomer fits with the faces of its photo or stays out
    for face in np.flatnonzero(grouped):
        taken.setdefault((int(labels[face]), photos[face]), []).append(face)
    next_person = int(max(labels.max(), previous["person_id"].max())) + 1
    for _, members in members_by_person(clusterer.labels_):
        joining = rows[members[newcomer[members]]]
        if not len(joining):
            continue
        owners = labels[rows[members[~newcomer[members]]]]
        if len(owners):
            values, counts = np.unique(owners, return_counts=True)
            person = int(values[np.argmax(counts)])
        else:
            person, next_person = next_person, next_person + 1
        for face, probability in zip(joining, clusterer.probabilities_[members[newcomer[members]]]):
            others = np.asarray(taken.get((person, photos[face]), []), dtype=np.int64)
            if fits_with(matrix, face, others, twice):
                taken.setdefault((person, photos[face]), []).append(face)
                labels[face], probabilities[face] = person, probability
    outlier_scores[rows[newcomer]] = clusterer.outlier_scores_[newcomer]
    return labels, probabilities, outlier_scores
