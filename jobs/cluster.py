"""cluster: `faces` -> `assignments` (face -> person) and `people` (one row per person).

Runs HDBSCAN on the driver over the embeddings of one model; faces embedded by different
models are refused. Reads the embeddings as Arrow straight into one float32 matrix.

    spark-submit jobs/cluster.py --out OUT [--config conf/cluster.yaml]
"""
from __future__ import annotations

import argparse
import sys
import uuid
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from facecluster.core import tables
from facecluster.core.catalogue import ASSIGNMENTS, LABELS_APPLIED, LABEL_LOG, PEOPLE
from facecluster.grouping.clustering import NOISE, PeopleClusterer, check_one_model
from facecluster.curation.labels import (APPLIED_COLUMNS, Constraints, LabelError, apply_constraints, check_labels, parse_label_log,
                                snapshot, stable_person_ids)
from facecluster.grouping.people import assignments_table, people_table
from facecluster.grouping.quality import NOT_A_FACE, clarity, left_out, min_clarity
from facecluster.grouping.people_tables import (extract_faces, to_matrix,  # noqa: F401 (to_matrix: benchmarks)
                                       write_people_tables)
from facecluster.core.job_arguments import job_parser
from facecluster.core.runtime import parse_job_arguments, table_path, use_driver_cpus, user_errors
from facecluster.output.session import job_session
from facecluster.core.tables import write_table


def extract_previous_assignments(spark: SparkSession, out: str) -> pd.DataFrame | None:
    """face_id -> person_id of the last run: what person ids and labels refer to."""
    path = ASSIGNMENTS.path(out)
    if not tables.exists(spark, path):
        return None
    return spark.read.parquet(path).select("face_id", "person_id", "probability", "outlier_score").toPandas()


def extract_labels(spark: SparkSession, out: str) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """(the user's labels.csv or None, the labels_applied snapshot so far)."""
    path, applied_path = table_path(out, LABEL_LOG), LABELS_APPLIED.path(out)
    text = tables.read_text(spark, path)
    labels = check_labels(parse_label_log(text, path), path) if text is not None else None
    applied = (spark.read.parquet(applied_path).toPandas() if tables.exists(spark, applied_path)
               else pd.DataFrame(columns=APPLIED_COLUMNS))
    return labels, applied


def new_label_rows(labels: pd.DataFrame | None, applied: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """Face-level snapshot rows of the labels.csv lines not applied yet."""
    first = int(applied["label_row"].max()) + 1 if len(applied) else 0
    if first and (labels is None or len(labels) < first):
        raise LabelError(f"labels.csv has fewer lines than the {first} already applied: it is a log, lines are "
                         f"added, never removed (to undo a label, add one that says otherwise)")
    if labels is None or len(labels) <= first:
        return pd.DataFrame(columns=APPLIED_COLUMNS)
    if previous is None:
        raise LabelError("labels.csv refers to people of a run, but this output root has no run yet")
    return snapshot(labels, first, previous)


def left_out_reasons(meta: pd.DataFrame, matrix: np.ndarray, cluster_settings: dict, constraints: Constraints
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(why each face is left out of clustering, "" for the faces clustered; each face's clarity):
    too small, too unclear to say who it is (facecluster/grouping/quality.py), or labelled "not a
    face". A face the user put in a person is clustered, however small or unclear."""
    model = check_one_model(meta["model"])
    face_clarity = clarity(matrix, model)
    reason = left_out(meta["face_px"].to_numpy(dtype=np.float64), meta["face_score"].to_numpy(), face_clarity,
                      cluster_settings, min_clarity(cluster_settings["min_clarity"], model))
    reason[meta["face_id"].isin(constraints.member).to_numpy()] = ""  # the user says who it is: it is clustered
    reason[meta["face_id"].isin(constraints.not_faces).to_numpy()] = NOT_A_FACE
    return reason, face_clarity


def clustered_faces(meta: pd.DataFrame, matrix: np.ndarray, cluster_settings: dict, constraints: Constraints
                    ) -> np.ndarray:
    """The faces clear enough to recognise and not labelled "not a face"."""
    return left_out_reasons(meta, matrix, cluster_settings, constraints)[0] == ""


def model_distances(meta: pd.DataFrame, matrix: np.ndarray, clustered: np.ndarray):
    """The model's distances; for a model never measured on labelled faces, fitted to this
    archive's faces that share a photo (facecluster/recognition/thresholds.py)."""
    from facecluster.recognition.thresholds import distances

    model = check_one_model(meta["model"])
    return distances(model, matrix[clustered], meta["photo_id"].to_numpy()[clustered]) if model else None


def cluster_faces(meta: pd.DataFrame, matrix: np.ndarray, cluster_settings: dict, run_id: str,
                  constraints: Constraints | None = None, previous: pd.DataFrame | None = None,
                  distances=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """HDBSCAN over the faces large enough to recognise; the others (and faces labelled "not a
    face") are kept, marked clustered = false, in no person. The users' labels are obeyed and
    person ids carried over from `previous` (facecluster/curation/labels.py)."""
    constraints = constraints or Constraints(pd.DataFrame(columns=APPLIED_COLUMNS))
    model = check_one_model(meta["model"])
    reasons, face_clarity = left_out_reasons(meta, matrix, cluster_settings, constraints)
    clustered = reasons == ""
    distances = distances or model_distances(meta, matrix, clustered)
    labels = np.full(len(meta), NOISE, dtype=np.int64)
    probabilities = np.zeros(len(meta))
    outlier_scores = np.full(len(meta), np.nan)
    incremental = (cluster_settings["mode"] == "incremental" and previous is not None
                   and (previous["person_id"] != NOISE).any())
    if model and clustered.any() and incremental:
        labels, probabilities, outlier_scores = add_to_people(meta, matrix, clustered, previous, cluster_settings,
                                                              model, distances)
    elif model and clustered.any():
        photos = meta["photo_id"].to_numpy()
        clusterer = PeopleClusterer.from_settings(cluster_settings, model, distances).fit(matrix[clustered],
                                                                                          photos[clustered])
        labels[clustered] = clusterer.labels_
        probabilities[clustered] = clusterer.probabilities_
        outlier_scores[clustered] = clusterer.outlier_scores_
    identity_label = {}
    if constraints:
        labels[clustered], identity_label = apply_constraints(
            meta["face_id"].to_numpy()[clustered], labels[clustered], matrix[clustered], constraints)
    person_ids = stable_person_ids(labels, meta["face_id"], previous)
    people = people_table(meta, matrix, person_ids)
    if identity_label:
        face_of_label = {label: np.flatnonzero(labels == label)[0] for label in identity_label.values()}
        names = {int(person_ids[face_of_label[label]]): constraints.names[identity]
                 for identity, label in identity_label.items() if identity in constraints.names}
        people["name"] = people["person_id"].map(names)
        hidden = {int(person_ids[face_of_label[label]]) for identity, label in identity_label.items()
                  if identity in constraints.hidden}
        people["hidden"] = people["person_id"].isin(hidden)
    return (assignments_table(meta["face_id"], person_ids, probabilities, outlier_scores, reasons, face_clarity, run_id),
            people)


def add_to_people(meta: pd.DataFrame, matrix: np.ndarray, clustered: np.ndarray, previous: pd.DataFrame,
                  cluster_settings: dict, model: str, distances=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An incremental run: the people of the last run keep their faces, and every face is
    clustered again together, so that the new faces meet the old ones with all of a full run's
    rules. Each face that was in no person takes the old person holding most of the old faces
    of the person it was found in, or makes a new person where that person holds none.

    Clustering the new faces alone, or the faces left over after joining each new face to its
    nearest old one, made "people" of the leftovers that a full run leaves apart: the first run's
    not-grouped faces (mostly the poorest) chained with the new album's strangers."""
    from facecluster.grouping.clustering import fits_with, members_by_person

    distances = distances or model_distances(meta, matrix, clustered)
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
    clusterer = PeopleClusterer.from_settings(cluster_settings, model, distances).fit(matrix[rows], photos[rows])
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


def cluster(spark: SparkSession, out: str, cluster_settings: dict) -> str:
    use_driver_cpus(spark)  # HDBSCAN runs here, on the driver
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    previous = extract_previous_assignments(spark, out)
    labels, applied = extract_labels(spark, out)
    added = new_label_rows(labels, applied, previous)  # before any work: a wrong label stops here
    applied = pd.concat([applied, added], ignore_index=True) if len(added) else applied
    meta, matrix = to_matrix(extract_faces(spark, out).toArrow())
    constraints = Constraints(applied)
    distances = model_distances(meta, matrix, clustered_faces(meta, matrix, cluster_settings, constraints))
    if distances and not distances.measured:
        print(f"cluster: distances {distances.source}", flush=True)
    assignments, people = cluster_faces(meta, matrix, cluster_settings, run_id, constraints, previous, distances)
    if len(added):
        write_table(spark.createDataFrame(applied.astype({"label_row": "int64"}), schema=LABELS_APPLIED.schema),
                    out, "labels_applied", files=1)
    write_people_tables(spark, out, assignments, people)
    return run_id


def summary(spark: SparkSession, out: str) -> dict:
    assignments = spark.read.parquet(ASSIGNMENTS.path(out))
    people = spark.read.parquet(PEOPLE.path(out))
    return {"faces": assignments.count(), "people": people.count(),
            "noise_faces": assignments.where((F.col("person_id") == -1) & F.col("clustered")).count(),
            "left_out": {row["left_out"]: row["count"] for row in
                         assignments.where(~F.col("clustered")).groupBy("left_out").count().orderBy("left_out").collect()},
            "people_in_several_albums": people.where(F.col("n_albums") > 1).count()}


def build_parser() -> argparse.ArgumentParser:
    return job_parser("cluster", __doc__)


@user_errors
def main(argv: list[str] | None = None) -> int:
    from facecluster.grouping.knn_hdbscan import knn_device

    parser = build_parser()
    args, settings = parse_job_arguments(parser, argv)
    try:
        knn_device(settings["cluster"]["device"])  # a GPU asked for and missing stops the job before any work
    except RuntimeError as exc:
        parser.exit(2, f"facecluster: {exc}\n")
    with job_session(settings, args.out, "cluster") as spark:
        cluster(spark, args.out, settings["cluster"])
        counts = summary(spark, args.out)
    print(f"cluster: {counts['faces']} faces -> {counts['people']} people "
          f"({counts['noise_faces']} faces seen once or unsure, {sum(counts['left_out'].values())} too poor to cluster), "
          f"{counts['people_in_several_albums']} people in more than one album")
    return 0


if __name__ == "__main__":
    sys.exit(main())
