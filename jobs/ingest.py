"""ingest: a folder tree of photos, or a Parquet table of image bytes -> the `photos` table.

One row per distinct photo: photo_id is the sha256 of its bytes, so the same file copied
into two albums is one photo seen in two albums. `album` and `path` name its first
occurrence; `albums` and `paths` keep every one.

A folder archive is ingested incrementally: `photo_files` remembers each file's path, size and
modification time with its photo_id, and a later run reads the bytes of new or changed files
only (Spark's binaryFile source lists files without reading them when `content` is not
selected). Re-reading a whole archive on every run would cost terabytes for a large one.

    spark-submit jobs/ingest.py PHOTOS --out OUT [--config conf/cluster.yaml]
"""
from __future__ import annotations

import argparse
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster import tables
from facecluster.runtime import add_settings_arguments, parse_job_arguments, qualified, start_spark, table_path
from facecluster.tables import write_table

FILES = "photo_files"  # path, album, length, modified, photo_id: what the last ingest read

PHOTO_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif")
INGEST_RANGES = 200  # ranges of a Parquet source, whose size is not known before reading it
BYTES_PER_RANGE = 64 << 20  # a folder's ranges: ~64 MB files, so a small archive is not 200 tiny tasks

_PHOTO_NAME = r"(?i)\.(" + "|".join(PHOTO_EXTENSIONS) + r")$"


def list_photo_files(spark: SparkSession, root: str) -> DataFrame:
    """Every file under root whose name says it is a photo: path, length, modified; no bytes read."""
    files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(root)
    listed = files.where(F.col("path").rlike(_PHOTO_NAME)).select(
        "path", "length", F.col("modificationTime").alias("modified"))
    # Spark's file scan skips files of 0 bytes without a word; they are photos the user has
    # and must come out as error rows, so they are taken from the listing and added back.
    every = (spark.createDataFrame([(path,) for path in files.inputFiles()], "path string")
             .withColumn("path", F.regexp_replace("path", "^file:///", "file:/")))  # as the scan writes it
    empty = (every.where(F.col("path").rlike(_PHOTO_NAME)).join(listed.select("path"), "path", "left_anti")
             .withColumn("length", F.lit(0).cast("long")).withColumn("modified", F.lit(None).cast("timestamp")))
    return listed.unionByName(empty)


def read_photo_files(spark: SparkSession, listed: DataFrame) -> DataFrame:
    """path, content of the listed files (0-byte files as empty content)."""
    paths = [r.path for r in listed.where(F.col("length") > 0).select("path").collect()]
    read = (spark.read.format("binaryFile").load(paths).select("path", "content") if paths
            else spark.createDataFrame([], "path string, content binary"))
    empty = listed.where(F.col("length") == 0).select("path", F.lit(b"").cast("binary").alias("content"))
    return read.unionByName(empty)


def extract_photo_files(spark: SparkSession, root: str) -> DataFrame:
    """Every file under root whose name says it is a photo: path, content, length, modified."""
    files = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(root)
             .where(F.col("path").rlike(_PHOTO_NAME))
             .select("path", "content", "length", F.col("modificationTime").alias("modified")))
    listed = list_photo_files(spark, root)
    empty = (listed.where(F.col("length") == 0).join(files.select("path"), "path", "left_anti")
             .withColumn("content", F.lit(b"").cast("binary")))
    return files.unionByName(empty)


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
    photo_id = F.sha2(F.col("content"), 256)
    if "photo_id" in files.columns:  # known files keep the id computed when their bytes were read
        photo_id = F.coalesce(F.col("photo_id"), photo_id)
    keyed = files.withColumn("photo_id", photo_id) \
        .withColumn("album", F.coalesce(F.col("album"), F.lit(""))) \
        .withColumn("path", F.coalesce(F.col("path"), F.col("photo_id")))
    first = F.min(F.struct("path", "album"))
    return (keyed.groupBy("photo_id")
            .agg(first.alias("first"),
                 F.sort_array(F.collect_set("album")).alias("albums"),
                 F.sort_array(F.collect_set("path")).alias("paths"),
                 F.first("content", ignorenulls=True).alias("content"))
            .select("photo_id", F.col("first.album").alias("album"), F.col("first.path").alias("path"),
                    "albums", "paths", "content",
                    F.length("content").cast("long").alias("n_bytes"),
                    F.current_timestamp().alias("ingested_at")))


def known_files(listed: DataFrame, previous: DataFrame) -> DataFrame:
    """Listed files unchanged since the last ingest (same path, size and time): with their photo_id."""
    return listed.join(previous.select("path", "length", "modified", "photo_id"),
                       ["path", "length", "modified"], "inner")


def incremental_photos(spark: SparkSession, root: str, out: str) -> tuple[DataFrame, DataFrame]:
    """(photos table, listed files) reading only the bytes of files new or changed since the
    last ingest; the bytes of known photos come from the last photos table."""
    previous_path = table_path(out, FILES)
    if not tables.exists(spark, previous_path) or not tables.exists(spark, table_path(out, "photos")):
        files = album_from_path(extract_photo_files(spark, root), root)
        return photos_table(files), files.drop("content")
    listed = album_from_path(list_photo_files(spark, root), root).persist()
    known = known_files(listed, spark.read.parquet(previous_path))
    new = listed.join(known.select("path"), "path", "left_anti")
    every = known.withColumn("content", F.lit(None).cast("binary")) \
        .unionByName(new.join(read_photo_files(spark, new), "path").withColumn("photo_id", F.sha2("content", 256)))
    kept = spark.read.parquet(table_path(out, "photos")).select("photo_id", F.col("content").alias("kept"))
    photos = (photos_table(every).join(kept, "photo_id", "left")
              .withColumn("content", F.coalesce("content", "kept"))
              .withColumn("n_bytes", F.length("content").cast("long"))
              .drop("kept"))
    return photos, listed


def ingest(spark: SparkSession, source: str, out: str, source_format: str = "folder") -> DataFrame:
    from jobs.forget import drop_forgotten, extract_forgotten

    listed, ranges = None, INGEST_RANGES
    if source_format == "parquet":
        photos = photos_table(extract_photo_table(spark, source))
    else:
        photos, listed = incremental_photos(spark, source, out)
        total = listed.agg(F.sum("length")).first()[0] or 0
        ranges = max(1, -(-total // BYTES_PER_RANGE))
    photos = drop_forgotten(photos, extract_forgotten(spark, out), "photo_id")
    # Range-partitioned and sorted by photo_id, so that embed's rounds (ranges of photo_id)
    # read only the files of their range.
    photos = photos.repartitionByRange(ranges, "photo_id").sortWithinPartitions("photo_id")
    written = spark.read.parquet(write_table(photos, out, "photos"))
    if listed is not None:
        files = (written.select("photo_id", F.explode("paths").alias("path"))
                 .join(listed.select("path", "album", "length", "modified"), "path")
                 .select("path", "album", "length", "modified", "photo_id"))
        write_table(files, out, FILES, files=1)
    return written


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
