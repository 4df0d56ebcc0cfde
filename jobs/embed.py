"""embed: the `photos` table -> `faces` (one row per face) and `photo_status` (one row per photo).

Executors decode each photo, find faces with MTCNN, cut each face from the full-resolution
photo and embed it (see udfs/). A photo that cannot be read becomes an error row; the job
goes on. Every face row names the model that embedded it.

    spark-submit jobs/embed.py --out OUT [--embedder dlib|facenet] [--config conf/cluster.yaml]
"""
from __future__ import annotations

import argparse
import functools
import math
import re
import sys
import time
import uuid

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster.core import tables
from facecluster.core.catalogue import EMBED_PARTS, FACES, PHOTOS, PHOTO_STATUS, face_id_column
from facecluster.core.errors import UserError
from facecluster.core.progress import PhotoProgress
from facecluster.curation.forgetting import Forgotten
from facecluster.core.job_arguments import job_parser
from facecluster.core.run_reader import run_models
from facecluster.core.runtime import describe, parse_job_arguments, table_path, user_errors
from facecluster.output.session import job_session
from facecluster.udfs.embed_photos import RESULT_SCHEMA, embed_photo_batches
from facecluster.udfs.embedders import model_id, resolve_embedder

PHOTOS_PER_TASK = 256  # a task's worth of work: minutes, not hours, so a lost task costs little
PARTS = EMBED_PARTS.name
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*(\.[A-Za-z0-9_+-]+)*")  # no '/', no '..'


def extract_photos(spark: SparkSession, out: str) -> DataFrame:
    return spark.read.parquet(PHOTOS.path(out)).select("photo_id", "album", "path", "content")


def extract_done(spark: SparkSession, out: str, model: str) -> DataFrame | None:
    """Result rows of the rounds already committed for this model; None before the first."""
    parts = table_path(out, PARTS)
    if not tables.exists(spark, parts):
        return None
    done = spark.read.schema(RESULT_SCHEMA).option("recursiveFileLookup", "true").parquet(parts)
    return done.where(F.col("model") == model)


def photos_to_embed(photos: DataFrame, done: DataFrame | None) -> DataFrame:
    return photos if done is None else photos.join(done.select("photo_id"), "photo_id", "left_anti")


def round_ranges(n_photos: int, photos_per_round: int) -> list[tuple[str | None, str | None]]:
    """Ranges of photo_id (sha256 hex, uniform) holding about photos_per_round photos each;
    None is an open end."""
    rounds = max(1, math.ceil(n_photos / photos_per_round))
    bounds = [f"{(i << 32) // rounds:08x}" for i in range(1, rounds)]
    return list(zip([None, *bounds], [*bounds, None]))


def in_range(low: str | None, high: str | None) -> Column:
    condition = F.lit(True)
    if low is not None:
        condition = condition & (F.col("photo_id") >= low)
    if high is not None:
        condition = condition & (F.col("photo_id") < high)
    return condition


def embed_photos(photos: DataFrame, embed_settings: dict, weights_path: str | None, n_tasks: int) -> DataFrame:
    """One RESULT_SCHEMA row per photo: status and its faces, computed on the executors."""
    return (photos.repartition(n_tasks, "photo_id")
            .mapInPandas(functools.partial(embed_photo_batches, settings=embed_settings,
                                           weights_path=weights_path), RESULT_SCHEMA))


def faces_table(results: DataFrame) -> DataFrame:
    return (results.select("photo_id", "album", "path", "model", F.explode("faces").alias("face"))
            .select(face_id_column(F.col("photo_id"), F.col("face.face_index")).alias("face_id"),
                    "photo_id", "album", "path",
                    F.col("face.face_index").alias("face_index"),
                    F.col("face.box").alias("box"), F.col("face.landmarks").alias("landmarks"),
                    F.col("face.det_score").alias("det_score"), F.col("face.face_px").alias("face_px"),
                    F.col("face.embedding").alias("embedding"), "model",
                    F.col("face.thumb").alias("thumb")))


def photo_status_table(results: DataFrame) -> DataFrame:
    return results.select("photo_id", "status", "error", "width", "height", "n_faces", "model")


def current_results(done: DataFrame, photos: DataFrame) -> DataFrame:
    """One result per photo of the photos table now (album and path as ingest last saw them)."""
    return (done.dropDuplicates(["photo_id"]).drop("album", "path")
            .join(photos.select("photo_id", "album", "path"), "photo_id"))


def photos_per_round(spark: SparkSession, setting) -> int:
    if setting != "auto":
        return int(setting)
    return max(2000, 4 * spark.sparkContext.defaultParallelism * PHOTOS_PER_TASK)


def embed(spark: SparkSession, out: str, embed_settings: dict, weights_path: str | None) -> dict:
    """Embed the photos not yet done for this model, one committed round at a time, then
    publish `faces` and `photo_status` from every round. Killed and run again, it goes on
    where it stopped; run again when done, it embeds nothing."""
    model = model_id(embed_settings)
    if not MODEL_ID.fullmatch(model):  # it names the embed rounds' tables: a path in it would write outside OUT
        raise UserError(f"model id {model!r} (from {embed_settings['head'] or embed_settings['facenet_weights']}) "
                        f"is not one facecluster writes: letters, digits and . _ + - only")
    photos = extract_photos(spark, out)
    done = extract_done(spark, out, model)
    todo = photos_to_embed(photos, done)
    n_photos = photos.count()
    n_todo = n_photos if done is None else todo.count()
    if weights_path and n_todo:
        spark.sparkContext.addFile(weights_path)  # executors on other machines get their own copy
    if embed_settings["head"] and n_todo:
        spark.sparkContext.addFile(embed_settings["head"])
    per_round = photos_per_round(spark, embed_settings["photos_per_round"])
    n_tasks = max(spark.sparkContext.defaultParallelism, math.ceil(min(per_round, n_todo) / PHOTOS_PER_TASK))
    ranges = round_ranges(n_todo, per_round) if n_todo else []
    started = planned = time.monotonic()
    progress = PhotoProgress(spark, "embed", n_photos, done_before=n_photos - n_todo)
    for number, (low, high) in enumerate(ranges, 1):
        describe(spark, "embed", f"round {number} of {len(ranges)}, {n_todo} photos to embed of {n_photos} ({out})")
        results = embed_photos(todo.where(in_range(low, high)), embed_settings, weights_path, n_tasks)
        with progress.round(round(n_todo / len(ranges))):
            tables.write_table(results, out, f"{PARTS}/{model}-{low or '00000000'}-{uuid.uuid4().hex[:8]}")
        if len(ranges) > 1:
            print(f"embed: round {number}/{len(ranges)} committed, {time.monotonic() - started:.0f} s", flush=True)
    embedded = time.monotonic()
    done = extract_done(spark, out, model)
    # (No photos at all: an empty table. Built from a Python list only then, since that
    # starts Python workers of its own.)
    results = current_results(done if done is not None else spark.createDataFrame([], RESULT_SCHEMA), photos)
    results = results.persist(StorageLevel.MEMORY_AND_DISK)  # read, deduplicated and joined once for both tables
    tables.write_table(Forgotten.read(spark, out).drop(faces_table(results), "face_id"), out, FACES.name)
    tables.write_table(photo_status_table(results), out, PHOTO_STATUS.name)
    results.unpersist()
    return {"embedded_now": n_todo, "already_done": n_photos - n_todo,
            "seconds": {"embedding": embedded - planned, "publishing": time.monotonic() - embedded}}


def summary(spark: SparkSession, out: str) -> dict:
    status = spark.read.parquet(PHOTO_STATUS.path(out))
    counts = {r["status"]: r["count"] for r in status.groupBy("status").count().collect()}
    models = [r["model"] for r in spark.read.parquet(FACES.path(out)).select("model").distinct().collect()]
    return {"photos": sum(counts.values()), "ok": counts.get("ok", 0), "no_face": counts.get("no_face", 0),
            "error": counts.get("error", 0), "faces": int(status.agg(F.sum("n_faces")).first()[0] or 0),
            "models": models}


def build_parser() -> argparse.ArgumentParser:
    return job_parser("embed", __doc__)


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, settings = parse_job_arguments(parser, argv)
    try:
        embed_settings, weights = resolve_embedder(settings["embed"], run_models(args.out))
    except RuntimeError as exc:
        parser.exit(2, f"facecluster: {exc}\n")
    with job_session(settings, args.out, "embed") as spark:
        work = embed(spark, args.out, embed_settings, weights)
        counts = summary(spark, args.out)
    print(f"embed ({model_id(embed_settings)}): {counts['photos']} photos "
          f"({counts['ok']} with faces, {counts['no_face']} without, {counts['error']} errors), "
          f"{counts['faces']} faces -> {table_path(args.out, 'faces')}; "
          f"embedded now {work['embedded_now']}, done before {work['already_done']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
