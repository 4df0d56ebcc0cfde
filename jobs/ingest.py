"""ingest: a folder tree of photos, or a Parquet table of image bytes -> the `photos` table.

One row per distinct photo: photo_id is the sha256 of its bytes, so the same file copied
into two albums is one photo seen in two albums. `album` and `path` name its first
occurrence; `albums` and `paths` keep every one.

    spark-submit jobs/ingest.py PHOTOS --out OUT [--config conf/cluster.yaml]
"""
from __future__ import annotations

import argparse
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster.runtime import add_settings_arguments, parse_job_arguments, qualified, start_spark, table_path
from facecluster.tables import write_table

PHOTO_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif")
INGEST_RANGES = 200  # upper bound; adaptive query execution merges small ranges

_PHOTO_NAME = r"(?i)\.(" + "|".join(PHOTO_EXTENSIONS) + r")$"


def extract_photo_files(spark: SparkSession, root: str) -> DataFrame:
    """Every file under root whose name says it is a photo: path, content."""
    files = (spark.read.format("binaryFile")
             .option("recursiveFileLookup", "true")
             .load(root))
    read = files.where(F.col("path").rlike(_PHOTO_NAME)).select("path", "content")
    # Spark's file scan skips files of 0 bytes without a word; they are photos the user has
    # and must come out as error rows, so they are taken from the listing and added back.
    listed = (spark.createDataFrame([(path,) for path in files.inputFiles()], "path string")
              .withColumn("path", F.regexp_replace("path", "^file:///", "file:/")))  # as the scan writes it
    empty = (listed.where(F.col("path").rlike(_PHOTO_NAME))
             .join(read.select("path"), "path", "left_anti")
             .withColumn("content", F.lit(b"").cast("binary")))
    return read.unionByName(empty)


def extract_photo_table(spark: SparkSession, source: str) -> DataFrame:
    """A Parquet table of image bytes: needs `content`; `path` and `album` are kept when present."""
    table = spark.read.parquet(source)
    if "content" not in table.columns:
        raise ValueError(f"{source} has no 'content' column of image bytes (columns: {', '.join(table.columns)})")
    path = F.col("path") if "path" in table.columns else F.lit(None).cast("string")
    album = F.col("album") if "album" in table.columns else F.lit(None).cast("string")
    return table.select(path.alias("path"), F.col("content").cast("binary").alias("content"), album.alias("album"))


def album_from_path(files: DataFrame, root: str) -> DataFrame:
    """album = the folder directly under root ('' for photos at the root itself)."""
    relative = F.expr(f"substring(path, {len(qualified(root)) + 2})")
    return files.withColumn("album", F.when(F.instr(relative, "/") > 0,
                                            F.substring_index(relative, "/", 1)).otherwise(F.lit("")))


def photos_table(files: DataFrame) -> DataFrame:
    """path, content, album -> one row per distinct photo (the photos table)."""
    keyed = files.withColumn("photo_id", F.sha2(F.col("content"), 256)) \
        .withColumn("album", F.coalesce(F.col("album"), F.lit(""))) \
        .withColumn("path", F.coalesce(F.col("path"), F.col("photo_id")))
    first = F.min(F.struct("path", "album"))
    return (keyed.groupBy("photo_id")
            .agg(first.alias("first"),
                 F.sort_array(F.collect_set("album")).alias("albums"),
                 F.sort_array(F.collect_set("path")).alias("paths"),
                 F.first("content").alias("content"))
            .select("photo_id", F.col("first.album").alias("album"), F.col("first.path").alias("path"),
                    "albums", "paths", "content",
                    F.length("content").cast("long").alias("n_bytes"),
                    F.current_timestamp().alias("ingested_at")))


def ingest(spark: SparkSession, source: str, out: str, source_format: str = "folder") -> DataFrame:
    files = (extract_photo_table(spark, source) if source_format == "parquet"
             else album_from_path(extract_photo_files(spark, source), source))
    # Range-partitioned and sorted by photo_id, so that embed's rounds (ranges of photo_id)
    # read only the files of their range; adaptive execution sizes the files (~64 MB).
    from jobs.forget import drop_forgotten, extract_forgotten

    photos = drop_forgotten(photos_table(files), extract_forgotten(spark, out), "photo_id")
    photos = photos.repartitionByRange(INGEST_RANGES, "photo_id").sortWithinPartitions("photo_id")
    return spark.read.parquet(write_table(photos, out, "photos"))


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="ingest", description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", help="folder of photos (one sub-folder per album) or a Parquet table")
    parser.add_argument("--out", required=True, help="output root for the tables")
    parser.add_argument("--format", dest="source_format", choices=["folder", "parquet"], default="folder")
    add_settings_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_job_arguments(build_parser(), argv)
    spark = start_spark(settings)
    photos = ingest(spark, args.photos, args.out, args.source_format)
    print(f"ingest: {photos.count()} photos -> {table_path(args.out, 'photos')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
