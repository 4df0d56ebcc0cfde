"""forget: remove a person or a photo from every table of a run, and keep them out of later runs.

    facecluster forget --out OUT --person ID
    facecluster forget --out OUT --photo PATH_OR_PHOTO_ID

A person: their faces, embeddings, thumbnails, assignments, identities, kNN-graph edges and labels go; the photos
they are in stay (other people may be in them). A photo: the photo's bytes and every face found
in it go, with all that refers to them. Every table that held them is rewritten whole (the
embed job's committed rounds too), `people` and `person_albums` are recomputed without them,
and the gallery page (OUT/report) and any half-written table (OUT/_staging) are deleted.

To keep them out of later runs, OUT/forgotten lists SHA-256 digests of the forgotten photo and
face ids, never the ids themselves: ingest drops a forgotten photo if the archive still holds
it, and embed drops a forgotten face if its photo is embedded again.
"""
from __future__ import annotations

import argparse
import re
import sys

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster import tables
from facecluster.runtime import add_settings_arguments, parse_job_arguments, qualified, start_spark, table_path

FORGOTTEN = "forgotten"
FACE_TABLES = ("faces", "assignments", "identities", "knn_graph")


def digest(column: Column) -> Column:
    return F.sha2(column, 256)


def extract_forgotten(spark: SparkSession, out: str) -> DataFrame | None:
    path = table_path(out, FORGOTTEN)
    return spark.read.parquet(path) if tables.exists(spark, path) else None


def drop_forgotten(table: DataFrame, forgotten: DataFrame | None, key: str) -> DataFrame:
    """Rows of `table` whose `key` column (photo_id or face_id) was not forgotten."""
    if forgotten is None:
        return table
    return table.join(forgotten.select(F.col("digest").alias("_forgotten")),
                      digest(F.col(key)) == F.col("_forgotten"), "left_anti")


def find_targets(spark: SparkSession, out: str, person: int | None, photo: str | None) -> tuple[list, list]:
    """(photo ids, face ids) to forget; a clear error when nothing matches."""
    faces = spark.read.parquet(table_path(out, "faces")).select("face_id", "photo_id")
    if person is not None:
        face_ids = [r.face_id for r in spark.read.parquet(table_path(out, "assignments"))
                    .where(F.col("person_id") == person).select("face_id").collect()]
        if person < 0 or not face_ids:
            raise ValueError(f"no person {person} in {out}")
        return [], face_ids
    photos = spark.read.parquet(table_path(out, "photos")).select("photo_id", "paths")
    if re.fullmatch(r"[0-9a-f]{64}", photo):
        chosen = photos.where(F.col("photo_id") == photo)
    else:
        wanted = qualified(photo)
        chosen = photos.where(F.exists("paths", lambda p: (p == wanted) | (p == photo)))
    photo_ids = [r.photo_id for r in chosen.select("photo_id").collect()]
    if not photo_ids:
        raise ValueError(f"no photo {photo} in {out}")
    face_ids = [r.face_id for r in faces.where(F.col("photo_id").isin(photo_ids)).collect()]
    return photo_ids, face_ids


def without(table: DataFrame, photo_ids: list, face_ids: list) -> DataFrame:
    if "photo_id" in table.columns and photo_ids:
        table = table.where(~F.col("photo_id").isin(photo_ids))
    for column in ("face_id", "neighbour_id"):  # neighbour_id: the other end of a knn_graph edge
        if column in table.columns and face_ids:
            table = table.where(~F.col(column).isin(face_ids))
    return table


def results_without(parts: DataFrame, photo_ids: list, face_ids: list) -> DataFrame:
    """Embed results (a row per photo with its faces nested) without the forgotten photos and faces."""
    parts = without(parts, photo_ids, [])
    if face_ids:
        gone = F.array(*[F.lit(f) for f in face_ids])
        kept = F.filter("faces", lambda face: ~F.array_contains(
            gone, F.concat_ws(":", F.col("photo_id"), face["face_index"].cast("string"))))
        parts = parts.withColumn("faces", kept).withColumn("n_faces", F.size("faces"))
    return parts


def _relabelled(labels: pd.DataFrame, person: int | None, face_ids: set) -> pd.DataFrame:
    """labels.csv with the lines about the forgotten replaced by 'forgotten' lines (the log keeps
    its length, so the lines already applied keep their numbers)."""
    about = labels["face_id"].isin(face_ids)
    if person is not None:
        about |= labels["person_id"].astype(str).eq(str(person)) | labels["other_person_id"].astype(str).eq(str(person))
    labels.loc[about, :] = ""
    labels.loc[about, "action"] = "forgotten"
    return labels


def forget(spark: SparkSession, out: str, person: int | None = None, photo: str | None = None) -> dict:
    import os
    import shutil

    from jobs import cluster, people

    photo_ids, face_ids = find_targets(spark, out, person, photo)
    rewritten = []
    names = spark.read.parquet(table_path(out, "people")).select("person_id", "name").toPandas()
    for name in ("photos", "photo_files", "photo_status", *FACE_TABLES, "labels_applied"):
        if tables.exists(spark, table_path(out, name)):
            tables.write_table(without(spark.read.parquet(table_path(out, name)), photo_ids, face_ids), out, name)
            rewritten.append(name)
    parts_root = table_path(out, "embed_parts")
    if tables.exists(spark, parts_root):
        for name in tables.children(spark, parts_root):
            part = f"embed_parts/{name}"
            tables.write_table(results_without(spark.read.parquet(table_path(out, part)), photo_ids, face_ids),
                               out, part)
            rewritten.append(part)
    # people and person_albums from what is left (a centroid or exemplar may have been theirs)
    meta, matrix = cluster.to_matrix(cluster.extract_faces(spark, out).toArrow())
    assigned = spark.read.parquet(table_path(out, "assignments")).select("face_id", "person_id").toPandas()
    labels = meta[["face_id"]].merge(assigned, on="face_id", how="left")["person_id"].fillna(-1).to_numpy()
    from facecluster.people import people_table

    table = people_table(meta, matrix, labels.astype("int64"))
    table["name"] = table["person_id"].map(names.set_index("person_id")["name"])
    assignments = spark.read.parquet(table_path(out, "assignments")).toPandas()
    cluster.write_people_tables(spark, out, assignments, table)
    people.people_view(spark, out)
    # keep them out of later runs: digests only
    keys = [(d, "photo") for d in photo_ids] + [(d, "face") for d in face_ids]
    new = spark.createDataFrame(keys, "id string, kind string").select(digest(F.col("id")).alias("digest"), "kind")
    old = extract_forgotten(spark, out)
    tables.write_table(new if old is None else old.unionByName(new).distinct(), out, FORGOTTEN, files=1)
    # files outside the tables (local output roots)
    if "://" not in out:
        labels_csv = os.path.join(out, "labels.csv")
        if os.path.exists(labels_csv):
            log = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
            _relabelled(log, person, set(face_ids)).to_csv(labels_csv, index=False)
        for leftover in ("report", "_staging"):
            shutil.rmtree(os.path.join(out, leftover), ignore_errors=True)
    return {"photos": len(photo_ids), "faces": len(face_ids), "tables": rewritten}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="forget", description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output root of a run")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--person", type=int, help="person id")
    target.add_argument("--photo", help="photo path (as ingested) or photo_id")
    add_settings_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, settings = parse_job_arguments(parser, argv)
    spark = start_spark(settings)
    try:
        done = forget(spark, args.out, args.person, args.photo)
    except ValueError as exc:
        parser.exit(2, f"forget: {exc}\n")
    print(f"forget: {done['photos']} photos and {done['faces']} faces removed from {', '.join(done['tables'])}; "
          f"people and person_albums recomputed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
