"""forget: remove a person or a photo from every table of a run, and keep them out of later runs.

    facecluster forget --out OUT --person ID
    facecluster forget --out OUT --photo PATH_OR_PHOTO_ID

A person: their faces, embeddings, thumbnails, assignments, identities, kNN-graph edges and labels go; the photos
they are in stay (other people may be in them). A photo: the photo's bytes and every face found
in it go, with all that refers to them. Every table that held them is rewritten whole (the
embed job's committed rounds too), `people` and `person_albums` are recomputed without them,
and the gallery page (OUT/report), the cells of a run on the executors (OUT/cells) and any
half-written table (OUT/_staging) are deleted.

To keep them out of later runs, OUT/forgotten lists keyed digests of the forgotten photo and
face ids, never the ids themselves: ingest drops a forgotten photo if the archive still holds
it, and embed drops a forgotten face if its photo is embedded again. A forget killed half way
is finished by the next command on OUT (facecluster/curation/forgetting.py).
"""
from __future__ import annotations

import argparse
import re
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from facecluster.core.catalogue import ASSIGNMENTS, FACES, LABEL_LOG, LABELS_APPLIED, PHOTOS
from facecluster.curation import forgetting

from facecluster.core import tables
from facecluster.core.errors import UserError
from facecluster.core.job_arguments import job_parser
from facecluster.core.runtime import parse_job_arguments, qualified, table_path, user_errors
from facecluster.output.session import job_session


def find_targets(spark: SparkSession, out: str, person: int | None, photo: str | None) -> tuple[list, list]:
    """(photo ids, face ids) to forget; a clear error when nothing matches."""
    for table in (PHOTOS, FACES) + ((ASSIGNMENTS,) if person is not None else ()):
        if not tables.exists(spark, table.path(out)):
            raise UserError(f"{out} has no {table.name} table: nothing to forget there yet")
    faces = spark.read.parquet(FACES.path(out)).select("face_id", "photo_id")
    if person is not None:
        face_ids = [r.face_id for r in spark.read.parquet(ASSIGNMENTS.path(out))
                    .where(F.col("person_id") == person).select("face_id").collect()]
        if person < 0 or not face_ids:
            raise UserError(f"no person {person} in {out}")
        return [], face_ids
    photos = spark.read.parquet(PHOTOS.path(out)).select("photo_id", "paths")
    if re.fullmatch(r"[0-9a-f]{64}", photo):
        chosen = photos.where(F.col("photo_id") == photo)
    else:
        wanted = qualified(photo)
        chosen = photos.where(F.exists("paths", lambda p: (p == wanted) | (p == photo)))
    photo_ids = [r.photo_id for r in chosen.select("photo_id").collect()]
    if not photo_ids:
        raise UserError(f"no photo {photo} in {out}")
    face_ids = [r.face_id for r in faces.where(F.col("photo_id").isin(photo_ids)).collect()]
    return photo_ids, face_ids


def label_lines_about(spark: SparkSession, out: str, person: int | None, face_ids: list) -> list[int]:
    """The lines of labels.csv (0 = the first after the header) that speak of what is forgotten:
    those naming one of the faces; for a person, also every label that put one of their faces in
    a group (their name, merges, the rest of them confirmed when a face was moved out), and the
    lines not applied yet that name their person id."""
    from facecluster.curation.labels import check_labels, faces_of_line, parse_label_log

    lines, applied_up_to = set(), -1
    applied_path = LABELS_APPLIED.path(out)
    if tables.exists(spark, applied_path):
        applied = spark.read.parquet(applied_path).select("label_row", "face_id", "relation").toPandas()
        applied_up_to = int(applied["label_row"].max()) if len(applied) else -1
        if person is not None:
            mine = applied["face_id"].isin(face_ids) & (applied["relation"] == "member")
            lines |= set(applied.loc[mine, "label_row"].astype(int))
    text = tables.read_text(spark, table_path(out, LABEL_LOG))
    if text is not None:
        log = check_labels(parse_label_log(text))
        gone = set(face_ids)
        lines |= {i for i, faces in log["face_id"].map(faces_of_line).items() if faces and set(faces) <= gone}
        if person is not None:
            named = (log["person_id"] == person) | (log["other_person_id"] == person)
            lines |= set(log.index[named.fillna(False) & (log.index > applied_up_to)])
    return sorted(int(line) for line in lines)


def label_faces_kept(spark: SparkSession, out: str, face_ids: list, blanked: list[int]) -> dict[int, str]:
    """Lines of labels.csv that name forgotten faces beside faces that stay (one action on many
    faces), and are not blanked whole: line -> the faces that stay. Those lines lose the forgotten
    faces only, so forgetting one photo does not take back what was done to the others."""
    from facecluster.curation.labels import check_labels, faces_of_line, parse_label_log

    text = tables.read_text(spark, table_path(out, LABEL_LOG))
    if text is None:
        return {}
    gone, blanked = set(face_ids), set(blanked)
    kept = {}
    for line, faces in check_labels(parse_label_log(text))["face_id"].map(faces_of_line).items():
        staying = [f for f in faces if f not in gone]
        if line not in blanked and len(staying) < len(faces):
            kept[int(line)] = " ".join(staying)
    return kept


def forget(spark: SparkSession, out: str, person: int | None = None, photo: str | None = None) -> dict:
    """Forget a person or a photo: recorded first, then carried out (facecluster/curation/forgetting.py)."""
    finished_before = forgetting.finish_pending(spark, out)
    try:
        photo_ids, face_ids = find_targets(spark, out, person, photo)
    except UserError:
        if finished_before:  # the interrupted forget was this one, run again
            return {"photos": 0, "faces": 0, "tables": [], "finished_interrupted": True}
        raise
    blanked = label_lines_about(spark, out, person, face_ids)
    work = forgetting.start(spark, out, photo_ids, face_ids, blanked,
                            label_faces_kept(spark, out, face_ids, blanked))
    rewritten = forgetting.finish(spark, out, work)
    return {"photos": len(photo_ids), "faces": len(face_ids), "tables": rewritten,
            "finished_interrupted": finished_before}


def build_parser() -> argparse.ArgumentParser:
    return job_parser("forget", __doc__)


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, settings = parse_job_arguments(parser, argv)
    with job_session(settings, args.out, "forget", finish_forget=False) as spark:
        done = forget(spark, args.out, args.person, args.photo)
    if done["finished_interrupted"] and not done["tables"]:
        print("forget: the forget that was interrupted is finished; nothing else matched")
    else:
        print(f"forget: {done['photos']} photos and {done['faces']} faces removed from {', '.join(done['tables'])}; "
              f"people and person_albums recomputed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
