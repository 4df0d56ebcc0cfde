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
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster.runtime import add_settings_arguments, parse_job_arguments, start_spark, table_path
from udfs.embed_photos import RESULT_SCHEMA, embed_photo_batches
from udfs.embedders import MODEL_IDS, choose_embedder

PHOTOS_PER_TASK = 256  # a task's worth of work: minutes, not hours, so a lost task costs little


def resolve_embedder(embed_settings: dict) -> tuple[dict, str | None]:
    """Settings with embedder 'auto' resolved, and the FaceNet weights path; runs on the driver
    before any work so that missing weights stop the job at once (udfs.facenet names the remedies)."""
    from udfs import facenet

    name = choose_embedder(embed_settings["embedder"], embed_settings["facenet_weights"])
    weights = str(facenet.resolve_weights(embed_settings["facenet_weights"])) if name == "facenet" else None
    return {**embed_settings, "embedder": name}, weights


def extract_photos(spark: SparkSession, out: str) -> DataFrame:
    return spark.read.parquet(table_path(out, "photos")).select("photo_id", "album", "path", "content")


def embed_photos(photos: DataFrame, embed_settings: dict, weights_path: str | None, n_tasks: int) -> DataFrame:
    """One RESULT_SCHEMA row per photo: status and its faces, computed on the executors."""
    return (photos.repartition(n_tasks, "photo_id")
            .mapInPandas(functools.partial(embed_photo_batches, settings=embed_settings,
                                           weights_path=weights_path), RESULT_SCHEMA))


def faces_table(results: DataFrame) -> DataFrame:
    return (results.select("photo_id", "album", "path", "model", F.explode("faces").alias("face"))
            .select(F.concat_ws(":", "photo_id", F.col("face.face_index").cast("string")).alias("face_id"),
                    "photo_id", "album", "path",
                    F.col("face.face_index").alias("face_index"),
                    F.col("face.box").alias("box"), F.col("face.landmarks").alias("landmarks"),
                    F.col("face.det_score").alias("det_score"), F.col("face.face_px").alias("face_px"),
                    F.col("face.embedding").alias("embedding"), "model",
                    F.col("face.thumb").alias("thumb")))


def photo_status_table(results: DataFrame) -> DataFrame:
    return results.select("photo_id", "status", "error", "width", "height", "n_faces", "model")


def task_count(spark: SparkSession, photos: DataFrame) -> int:
    return max(spark.sparkContext.defaultParallelism, math.ceil(photos.count() / PHOTOS_PER_TASK))


def embed(spark: SparkSession, out: str, embed_settings: dict, weights_path: str | None) -> None:
    photos = extract_photos(spark, out)
    if weights_path:
        spark.sparkContext.addFile(weights_path)  # executors on other machines get their own copy
    results = embed_photos(photos, embed_settings, weights_path, task_count(spark, photos))
    # The executors' results are written once, then split: the models never run twice.
    staged = table_path(out, "embed_staging")
    results.write.mode("overwrite").parquet(staged)
    results = spark.read.parquet(staged)
    faces_table(results).write.mode("overwrite").parquet(table_path(out, "faces"))
    photo_status_table(results).write.mode("overwrite").parquet(table_path(out, "photo_status"))
    _remove(spark, staged)


def _remove(spark: SparkSession, path: str) -> None:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(hadoop_path, True)


def summary(spark: SparkSession, out: str) -> dict:
    status = spark.read.parquet(table_path(out, "photo_status"))
    counts = {r["status"]: r["count"] for r in status.groupBy("status").count().collect()}
    models = [r["model"] for r in spark.read.parquet(table_path(out, "faces")).select("model").distinct().collect()]
    return {"photos": sum(counts.values()), "ok": counts.get("ok", 0), "no_face": counts.get("no_face", 0),
            "error": counts.get("error", 0), "faces": int(status.agg(F.sum("n_faces")).first()[0] or 0),
            "models": models}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="embed", description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output root holding the photos table")
    add_settings_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, settings = parse_job_arguments(parser, argv)
    try:
        embed_settings, weights = resolve_embedder(settings["embed"])
    except RuntimeError as exc:
        parser.exit(2, f"facecluster: {exc}\n")
    spark = start_spark(settings)
    embed(spark, args.out, embed_settings, weights)
    counts = summary(spark, args.out)
    print(f"embed ({MODEL_IDS[embed_settings['embedder']]}): {counts['photos']} photos "
          f"({counts['ok']} with faces, {counts['no_face']} without, {counts['error']} errors), "
          f"{counts['faces']} faces -> {table_path(args.out, 'faces')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
