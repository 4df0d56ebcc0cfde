"""Forgetting photos and faces: every table without them, and later runs keeping them out.

OUT/forgotten holds keyed digests of the forgotten photo and face ids, never the ids: HMAC-SHA256
with a random key kept in OUT/_forget_key. Ingest drops a forgotten photo if the archive still
holds it; embed drops a forgotten face if its photo is embedded again. With a plain hash, whoever
held a copy of the forgotten table and a photo could test whether that photo had been forgotten;
with the key, only whoever holds the output root itself can, and they hold the rest of the run.
(An output root whose forgotten table predates the key keeps plain SHA-256 digests.)

The key cannot be made again: without it no digest matches and every forgotten photo would come
back. So each digest row carries a check of the key that made it (`key_check`), and every
command on an output root whose key is missing or is another key stops before any work, saying
so, rather than bring the forgotten back.

A forget must finish even when it is killed half way, or the faces would come back from the
tables it had not reached yet (the embed rounds, the label snapshot). So it first writes what it
is about to do, OUT/_forget_pending.json (digests and label lines only), and the digests into
`forgotten`; then it rewrites the tables; then it deletes the pending file. Every command on the
output root finishes a pending forget before it starts (facecluster.output.session.job_session).
"""
from __future__ import annotations

import hmac
import json
import secrets
from hashlib import sha256

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster.core import tables
from facecluster.core.catalogue import (ASSIGNMENTS, CELLS, EMBED_PARTS, FACE_TABLES, FACES, FORGET_KEY, FORGET_PENDING,
                                        FORGOTTEN, LABEL_LOG, LABELS_APPLIED, PEOPLE, PHOTO_STATUS, PHOTO_TABLES,
                                        face_id_column)
from facecluster.core.errors import UserError
from facecluster.core.runtime import table_path

PENDING = FORGET_PENDING
BLOCK = 64  # SHA-256's block size in bytes, for HMAC's padding
KEY_CHECK = b"facecluster: the key of this output root's forgotten digests"


class Forgotten:
    """The forgotten digests of an output root and the key that makes them."""

    def __init__(self, key: bytes | None, digests: DataFrame | None):
        self.key = key
        self.digests = digests

    @classmethod
    def read(cls, spark: SparkSession, out: str, create_key: bool = False) -> "Forgotten":
        path = FORGOTTEN.path(out)
        digests = spark.read.parquet(path) if tables.exists(spark, path) else None
        key_text = tables.read_text(spark, table_path(out, FORGET_KEY))
        if key_text is None and digests is None and create_key:
            key_text = secrets.token_hex(32)
            tables.write_text(spark, table_path(out, FORGET_KEY), key_text)
        forgotten = cls(bytes.fromhex(key_text.strip()) if key_text else None, digests)
        forgotten.check_key(out)
        return forgotten

    def key_check(self) -> str | None:
        """A digest of the key itself, stored beside the digests it made (never the key)."""
        return None if self.key is None else hmac.new(self.key, KEY_CHECK, sha256).hexdigest()[:16]

    def check_key(self, out: str) -> None:
        """Stop when the digests were made with a key this output root no longer holds."""
        if self.digests is None or "key_check" not in self.digests.columns:
            return  # nothing forgotten yet, or digests from before the key (plain SHA-256)
        made_with = {row[0] for row in self.digests.select("key_check").distinct().collect() if row[0]}
        if not made_with or self.key_check() in made_with:
            return
        if self.key is None:
            problem = f"{table_path(out, FORGET_KEY)} is missing"
        else:
            problem = f"{table_path(out, FORGET_KEY)} is not the key the forgotten photos were recorded with"
        raise UserError(
            f"{problem}: without it every photo and person forgotten on {out} would come back. Put the file back "
            f"from a backup of the output root (it cannot be made again). To go on without it, knowing that the "
            f"forgotten photos may come back, delete {table_path(out, FORGET_KEY)} and {FORGOTTEN.path(out)}, then "
            "forget them again.")

    def digest(self, value: str) -> str:
        if self.key is None:
            return sha256(value.encode("utf-8")).hexdigest()
        return hmac.new(self.key, value.encode("utf-8"), sha256).hexdigest()

    def digest_column(self, column: Column) -> Column:
        """Spark's HMAC-SHA256 of a string column, equal to digest() (Spark has no HMAC function)."""
        text = column.cast("binary")
        if self.key is None:
            return F.sha2(text, 256)
        key = self.key.ljust(BLOCK, b"\0")
        inner, outer = bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)
        inner_hash = F.unhex(F.sha2(F.concat(F.lit(inner), text), 256))
        return F.sha2(F.concat(F.lit(outer), inner_hash), 256)

    def drop(self, table: DataFrame, key: str) -> DataFrame:
        """Rows of `table` whose `key` column (photo_id or face_id) was not forgotten."""
        if self.digests is None:
            return table
        return table.join(F.broadcast(self.digests.select(F.col("digest").alias("_forgotten"))),
                          self.digest_column(F.col(key)) == F.col("_forgotten"), "left_anti")


def without(table: DataFrame, forgotten: Forgotten, photos: list[str], faces: list[str]) -> DataFrame:
    """`table` without the rows of the photos and faces whose digests are given."""
    if "photo_id" in table.columns and photos:
        table = table.where(~forgotten.digest_column(F.col("photo_id")).isin(photos))
    for column in ("face_id", "neighbour_id"):  # neighbour_id: the other end of a knn_graph edge
        if column in table.columns and faces:
            table = table.where(~forgotten.digest_column(F.col(column)).isin(faces))
    return table


def results_without(parts: DataFrame, forgotten: Forgotten, photos: list[str], faces: list[str]) -> DataFrame:
    """Embed results (a row per photo with its faces nested) without the forgotten photos and faces."""
    parts = without(parts, forgotten, photos, [])
    if faces:
        gone = F.array(*[F.lit(f) for f in faces])
        face_id = lambda face: face_id_column(F.col("photo_id"), face["face_index"])  # noqa: E731
        kept = F.filter("faces", lambda face: ~F.array_contains(gone, forgotten.digest_column(face_id(face))))
        parts = parts.withColumn("faces", kept).withColumn("n_faces", F.size("faces"))
    return parts


def start(spark: SparkSession, out: str, photo_ids: list[str], face_ids: list[str], label_rows: list[int],
          label_faces_kept: dict[int, str] | None = None) -> dict:
    """Record a forget before any table changes (OUT/_forget_pending.json: digests and label lines);
    finish() carries it out, the digests into `forgotten` first."""
    forgotten = Forgotten.read(spark, out, create_key=True)
    pending = {"photos": sorted({forgotten.digest(p) for p in photo_ids}),
               "faces": sorted({forgotten.digest(f) for f in face_ids}),
               "label_rows": sorted(set(int(r) for r in label_rows)),
               "label_faces_kept": {str(line): faces for line, faces in (label_faces_kept or {}).items()}}
    tables.write_text(spark, table_path(out, PENDING), json.dumps(pending))
    return pending


def pending(spark: SparkSession, out: str) -> dict | None:
    text = tables.read_text(spark, table_path(out, PENDING))
    return json.loads(text) if text else None


def finish(spark: SparkSession, out: str, work: dict) -> list[str]:
    """Carry out a recorded forget; safe to repeat (a forget killed while finishing is finished again).
    Returns the tables rewritten."""
    from facecluster.grouping.people_tables import recompute_people

    forgotten = Forgotten.read(spark, out)
    photos, faces, label_rows = work["photos"], work["faces"], set(work["label_rows"])
    check = forgotten.key_check()
    new = spark.createDataFrame([(d, "photo", check) for d in photos] + [(d, "face", check) for d in faces],
                                "digest string, kind string, key_check string")
    merged = new if forgotten.digests is None else forgotten.digests.unionByName(new, allowMissingColumns=True)
    tables.write_table(merged.distinct(), out, FORGOTTEN.name, files=1)
    rewritten = []
    for name in (table.name for table in (*PHOTO_TABLES, *FACE_TABLES)):
        if not tables.exists(spark, table_path(out, name)):
            continue
        table = spark.read.parquet(table_path(out, name))
        if photos and "photo_id" in table.columns or faces and {"face_id", "neighbour_id"} & set(table.columns):
            tables.write_table(without(table, forgotten, photos, faces), out, name)  # a photo's bytes only if it goes
            rewritten.append(name)
    applied = LABELS_APPLIED.path(out)
    if tables.exists(spark, applied):
        kept = without(spark.read.parquet(applied), forgotten, [], faces).where(~F.col("label_row").isin(list(label_rows)))
        tables.write_table(kept, out, LABELS_APPLIED.name, files=1)
        rewritten.append(LABELS_APPLIED.name)
    parts_root = EMBED_PARTS.path(out)
    if tables.exists(spark, parts_root):
        for name in tables.children(spark, parts_root):
            part = f"{EMBED_PARTS.name}/{name}"
            tables.write_table(results_without(spark.read.parquet(table_path(out, part)), forgotten, photos, faces),
                               out, part)
            rewritten.append(part)
    if tables.exists(spark, FACES.path(out)):
        recount_faces(spark, out)
    if all(tables.exists(spark, table_path(out, name)) for name in (ASSIGNMENTS.name, PEOPLE.name)):
        recompute_people(spark, out)
    log = table_path(out, LABEL_LOG)
    text = tables.read_text(spark, log)
    faces_kept = {int(line): kept for line, kept in work.get("label_faces_kept", {}).items()}
    if text is not None and (label_rows or faces_kept):
        from facecluster.curation.labels import blank_label_lines

        tables.write_text(spark, log, blank_label_lines(text, label_rows, faces_kept))
    # A gallery page and half-written tables may hold them; the cells' centres are means of sampled
    # faces (a cell of few faces is nearly one face): the next run makes new ones.
    for leftover in ("report", "_staging", CELLS.name):
        tables.delete(spark, table_path(out, leftover))
    forget_copies(out)
    tables.delete(spark, table_path(out, PENDING))
    return rewritten


def forget_copies(out: str) -> None:
    """The copies outside the tables: this machine's cache of the run (the review page's faces:
    thumbnails, ids, embeddings) is deleted, and every export and gallery page written elsewhere
    is written again without what was forgotten (facecluster/output/copies.py)."""
    import shutil
    from pathlib import Path

    from facecluster.core.run_reader import run_cache_folder
    from facecluster.output.copies import recorded
    from facecluster.output.export import refresh_exports
    from facecluster.viewing.report import write_report

    shutil.rmtree(run_cache_folder(out), ignore_errors=True)
    missed = refresh_exports(out)
    for page in recorded(out, "reports"):
        if Path(page["to"]).exists():
            try:
                write_report(out, page["to"])
            except (OSError, KeyError) as exc:
                missed.append(f"{page['to']}: {exc}")
    for where in missed:
        print(f"facecluster: a copy of {out} may still hold what was forgotten: {where}", flush=True)


def finish_pending(spark: SparkSession, out: str) -> bool:
    """Finish a forget that was killed half way; True when there was one."""
    work = pending(spark, out)
    if work is None:
        return False
    print(f"facecluster: finishing a forget that was interrupted on {out} ...", flush=True)
    finish(spark, out, work)
    return True


def recount_faces(spark: SparkSession, out: str) -> None:
    """photo_status.n_faces from the faces left: a forgotten person's faces no longer count."""
    status = spark.read.parquet(PHOTO_STATUS.path(out))
    counts = spark.read.parquet(FACES.path(out)).groupBy("photo_id").agg(F.count("*").alias("_left"))
    recounted = (status.join(counts, "photo_id", "left")
                 .withColumn("n_faces", F.coalesce(F.col("_left"), F.lit(0)).cast(status.schema["n_faces"].dataType))
                 .select(status.columns))
    tables.write_table(recounted, out, PHOTO_STATUS.name)
