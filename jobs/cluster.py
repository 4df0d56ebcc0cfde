"""cluster: `faces` -> `assignments` (face -> person) and `people` (one row per person).

Up to cluster.distributed_from faces, HDBSCAN runs on the driver over the embeddings of one
model, read as Arrow straight into one float32 matrix; above, or with cluster.algorithm
distributed, people are found on the executors cell by cell (facecluster/grouping/cells.py) and
the driver holds no faces. Faces embedded by different models are refused.

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
from pyspark.sql.types import StructType

from facecluster.core import tables
from facecluster.core.catalogue import ASSIGNMENTS, CELLS, FACES, LABELS_APPLIED, LABEL_LOG, PEOPLE
from facecluster.grouping.cells import Cells
from facecluster.grouping.clustering import NOISE, PeopleClusterer, check_one_model
from facecluster.curation.labels import (APPLIED_COLUMNS, Constraints, LabelError, apply_constraints, check_labels, parse_label_log,
                                snapshot, stable_person_ids)
from facecluster.grouping.distributed import (chosen_algorithm, left_out_on_executors, obey_labels, people_on_executors,
                                              people_rows, previous_for_labels, sample_faces, stable_ids, step)
from facecluster.grouping.distributed import model_distances as distributed_distances
from facecluster.grouping.incremental import add_to_people
from facecluster.grouping.people import assignments_table, people_table, with_covers
from facecluster.grouping.quality import NOT_A_FACE, clarity, left_out, min_clarity
from facecluster.grouping.people_tables import (extract_faces, to_matrix,  # noqa: F401 (to_matrix: benchmarks)
                                       write_people_tables)
from facecluster.core.job_arguments import job_parser
from facecluster.core.runtime import (batches_of_faces, parse_job_arguments, table_path, use_driver_cpus,
                                      user_errors)
from facecluster.output.session import job_session
from facecluster.core.tables import write_table


def extract_previous_assignments(spark: SparkSession, out: str) -> pd.DataFrame | None:
    """face_id -> person_id of the last run: what person ids and labels refer to."""
    path = ASSIGNMENTS.path(out)
    if not tables.exists(spark, path):
        return None
    return spark.read.parquet(path).select("face_id", "person_id", "probability", "outlier_score").toPandas()


def extract_cells(spark: SparkSession, out: str) -> Cells | None:
    """The cells the last run on the executors made (facecluster.grouping.cells.Cells), if any."""
    path = CELLS.path(out)
    return Cells.from_frame(spark.read.parquet(path).toPandas()) if tables.exists(spark, path) else None


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
    if constraints is None:  # (an empty Constraints is falsy, yet may hold a chosen picture)
        constraints = Constraints(pd.DataFrame(columns=APPLIED_COLUMNS))
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
    people = with_covers(people, pd.Series(person_ids, index=meta["face_id"].to_numpy()), constraints.covers)
    return (assignments_table(meta["face_id"], person_ids, probabilities, outlier_scores, reasons, face_clarity, run_id),
            people)


def cluster(spark: SparkSession, out: str, cluster_settings: dict) -> str:
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    if cluster_settings["algorithm"] == "distributed" or (
            cluster_settings["algorithm"] == "auto"
            and chosen_algorithm(spark.read.parquet(FACES.path(out)).count(), cluster_settings) == "distributed"):
        with batches_of_faces(spark):
            return cluster_on_executors(spark, out, cluster_settings, run_id)
    use_driver_cpus(spark)  # HDBSCAN runs here, on the driver
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


def cluster_on_executors(spark: SparkSession, out: str, cluster_settings: dict, run_id: str) -> str:
    """cluster() for archives larger than one machine (facecluster.grouping.distributed): the same
    tables, labels and person ids, the faces never on the driver."""
    previous = spark.read.parquet(ASSIGNMENTS.path(out)) if tables.exists(spark, ASSIGNMENTS.path(out)) else None
    if previous is not None:
        previous = previous.select("face_id", "person_id", "probability", "outlier_score").localCheckpoint(eager=True)
    labels, applied = extract_labels(spark, out)
    first = int(applied["label_row"].max()) + 1 if len(applied) else 0
    added = new_label_rows(labels, applied, previous_for_labels(previous, labels, first))
    applied = pd.concat([applied, added], ignore_index=True) if len(added) else applied
    constraints = Constraints(applied)
    faces = extract_faces(spark, out)
    step(spark, "faces too poor to cluster")
    model = check_one_model(r.model for r in faces.select("model").distinct().collect())
    faces = left_out_on_executors(faces, cluster_settings, model, set(constraints.member),
                                  constraints.not_faces).localCheckpoint(eager=True)
    clustered = faces.where(F.col("left_out").isNull()).select("face_id", "photo_id", "embedding")
    n_clustered = clustered.count()
    step(spark, "sample of faces")
    sample = sample_faces(clustered, n_clustered)
    distances = distributed_distances(model, sample)
    if distances and not distances.measured:
        print(f"cluster: distances {distances.source}", flush=True)
    incremental = (cluster_settings["mode"] == "incremental" and previous is not None
                   and not previous.where(F.col("person_id") != NOISE).isEmpty())
    found, cells = people_on_executors(spark, clustered, previous if incremental else None, cluster_settings, model,
                                       distances, n_clustered, sample, extract_cells(spark, out) if incremental else None)
    step(spark, "labels")
    found, identity_label = obey_labels(found, constraints)
    found = found.localCheckpoint(eager=True)
    step(spark, "stable person ids")
    ids = stable_ids(found, previous)
    id_of = spark.createDataFrame(pd.DataFrame({"person": list(ids), "person_id": list(ids.values())}),
                                  "person long, person_id long")
    step(spark, "assignments")
    assignments = (faces.select("face_id", "left_out", "clarity")
                   .join(found.join(id_of, "person", "left").drop("person"), "face_id", "left")
                   .select("face_id", F.coalesce("person_id", F.lit(NOISE)).cast("long").alias("person_id"),
                           F.coalesce("probability", F.lit(0.0)).alias("probability"),
                           F.coalesce("outlier_score", F.lit(float("nan"))).alias("outlier_score"),
                           F.col("left_out").isNull().alias("clustered"), "left_out", "clarity",
                           F.lit(run_id).alias("run_id"))
                   .select(*StructType.fromDDL(ASSIGNMENTS.schema).fieldNames())).localCheckpoint(eager=True)
    people = people_rows(assignments, faces)
    if identity_label:
        names = {ids[key]: constraints.names[identity] for identity, key in identity_label.items()
                 if identity in constraints.names and key in ids}
        hidden = [ids[key] for identity, key in identity_label.items() if identity in constraints.hidden and key in ids]
        named = spark.createDataFrame(pd.DataFrame({"person_id": list(names), "given": list(names.values())}),
                                      "person_id long, given string")
        people = (people.join(F.broadcast(named), "person_id", "left")
                  .withColumn("name", F.col("given")).drop("given")
                  .withColumn("hidden", F.col("person_id").isin(hidden)))
    if constraints.covers:  # a few faces: their people looked up, the people table told
        covers = pd.DataFrame({"face_id": list(constraints.covers)})
        held = assignments.join(F.broadcast(spark.createDataFrame(covers, "face_id string")), "face_id") \
            .select("face_id", "person_id").toPandas()
        chosen = with_covers(pd.DataFrame({"person_id": held["person_id"].unique(), "exemplar_face_id": None}),
                             held.set_index("face_id")["person_id"], constraints.covers)
        picked = spark.createDataFrame(chosen.rename(columns={"exemplar_face_id": "cover"}), "person_id long, cover string")
        people = (people.join(F.broadcast(picked), "person_id", "left")
                  .withColumn("exemplar_face_id", F.coalesce("cover", "exemplar_face_id")).drop("cover"))
    if len(added):
        write_table(spark.createDataFrame(applied.astype({"label_row": "int64"}), schema=LABELS_APPLIED.schema),
                    out, "labels_applied", files=1)
    write_table(assignments, out, ASSIGNMENTS.name)
    step(spark, "people")
    write_table(people.select(*StructType.fromDDL(PEOPLE.schema).fieldNames()), out, PEOPLE.name)
    write_table(spark.createDataFrame(cells.to_frame(), CELLS.schema), out, CELLS.name, files=1)
    spark.sparkContext.setJobDescription(None)
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
