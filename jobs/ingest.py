"""ingest: a folder tree of photos, or a Parquet table of image bytes -> the `photos` table.

One row per distinct photo: photo_id is the sha256 of its bytes, so the same file copied
into two albums is one photo seen in two albums. `album` and `path` name its first
occurrence; `albums` and `paths` keep every one.

A folder archive is ingested incrementally: `photo_files` remembers each file's path, size and
modification time with its photo_id, and a later run reads the bytes of new or changed files
only (Spark's binaryFile source lists files without reading them when `content` is not
selected). Re-reading a whole archive on every run would cost terabytes for a large one, and
so would rewriting it: the photos of each ingest are a batch of their own (photos/batch=N),
written once. A later ingest rewrites an earlier batch only when one of its photos moved
(copied into another album, renamed, or gone from the archive), and then only that batch.

    spark-submit jobs/ingest.py PHOTOS --out OUT [--config conf/cluster.yaml]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import datetime, timezone
from urllib.parse import unquote

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster.core import tables
from facecluster.core.catalogue import PHOTOS, PHOTO_FILES
from facecluster.core.errors import UserError
from facecluster.curation.forgetting import Forgotten
from facecluster.core.lock import local_path
from facecluster.core.job_arguments import job_parser
from facecluster.core.runtime import parse_job_arguments, qualified, table_path, user_errors
from facecluster.output.session import job_session
from facecluster.core.tables import write_table

FILES = PHOTO_FILES.name

PHOTO_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif")
INGEST_RANGES = 200  # ranges of a Parquet source, whose size is not known before reading it
BYTES_PER_RANGE = 64 << 20  # a folder's ranges: ~64 MB files, so a small archive is not 200 tiny tasks
FILES_PER_LISTING_TASK = 20_000
BATCH = "batch"  # photos/batch=N: the photos first seen by the N-th ingest of a folder
PLACE = ["album", "path", "albums", "paths"]  # where a photo is in the archive: what a later ingest may change

_PHOTO_NAME = r"(?i)\.(" + "|".join(PHOTO_EXTENSIONS) + r")$"
_GLOB = re.compile(r"([\\\[\]{}*?])")  # what Hadoop reads as a pattern in a path


def list_photo_files(spark: SparkSession, root: str) -> DataFrame:
    """Every file under root whose name says it is a photo: path, length, modified, local_name
    (the file's name as bytes where it is not valid UTF-8, else null); no bytes read."""
    folder = local_path(root)
    if folder is not None:
        return list_local_photo_files(spark, folder)
    if not tables.exists(spark, root):
        raise UserError(f"{root} does not exist")
    files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(root)
    paths = [unquote(path) for path in files.inputFiles()]  # listed as URIs: "IMG%20%5B1%5D.jpg"
    # A file scan splits by bytes, a task per few files; a listing reads no bytes, so a task takes
    # many thousands of files (a task per 8 LFW photos made listing 9,500 files take 30 s).
    tasks = max(spark.sparkContext.defaultParallelism, -(-len(paths) // FILES_PER_LISTING_TASK))
    listed = files.where(F.col("path").rlike(_PHOTO_NAME)).select(
        "path", "length", F.col("modificationTime").alias("modified")).coalesce(tasks)
    # Spark's file scan skips files of 0 bytes without a word; they are photos the user has
    # and must come out as error rows, so they are taken from the listing and added back.
    every = spark.createDataFrame([(path,) for path in paths], "path string")
    empty = (every.where(F.col("path").rlike(_PHOTO_NAME)).join(listed.select("path"), "path", "left_anti")
             .withColumn("length", F.lit(0).cast("long")).withColumn("modified", F.lit(None).cast("timestamp")))
    return listed.unionByName(empty).withColumn("local_name", F.lit(None).cast("binary"))


def list_local_photo_files(spark: SparkSession, root: str) -> DataFrame:
    """list_photo_files for a folder on this machine, listed by Python rather than by Hadoop:
    Hadoop follows a symbolic link that points back up the tree about 40 levels deep (every
    photo below it read 41 times) and cannot see a file whose name is not valid UTF-8. Here a
    folder that is its own ancestor is not entered again, and such a name is kept with its
    undecodable bytes written as \\xNN (the bytes are then read by the driver)."""
    if not os.path.isdir(root):
        raise UserError(f"{root} is not a folder of photos" if os.path.exists(root) else f"{root} does not exist")
    pattern = re.compile(_PHOTO_NAME.encode())
    top = os.fsencode(os.path.abspath(root))
    ancestors = {top: frozenset()}
    rows = []
    for folder, folders, names in os.walk(top, followlinks=True):
        here = os.stat(folder)
        mine = ancestors.pop(folder) | {(here.st_dev, here.st_ino)}
        inside = []
        for name in folders:
            try:
                child = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            if (child.st_dev, child.st_ino) not in mine:  # else a loop back up the tree
                inside.append(name)
                ancestors[os.path.join(folder, name)] = mine
        folders[:] = inside
        for name in names:
            if not pattern.search(name):
                continue
            full = os.path.join(folder, name)
            try:
                stat = os.stat(full)
            except OSError:  # a broken link, or gone since it was listed
                continue
            try:
                path, local_name = full.decode("utf-8"), None
            except UnicodeDecodeError:
                path, local_name = full.decode("utf-8", "backslashreplace"), full
            modified = datetime.fromtimestamp(stat.st_mtime_ns // 1_000_000 / 1000, tz=timezone.utc)
            rows.append(("file:" + path, stat.st_size, modified, local_name))
    return spark.createDataFrame(rows, "path string, length long, modified timestamp, local_name binary")


def read_photo_files(spark: SparkSession, listed: DataFrame) -> DataFrame:
    """path, content of the listed files (0-byte files as empty content). Files that went from
    the archive since they were listed are left out; they will not be in photo_files either."""
    readable = listed.where((F.col("length") > 0) & F.col("local_name").isNull())
    paths = [r.path for r in readable.select("path").collect()]
    paths = [p for p in paths if local_path(p) is None or os.path.exists(local_path(p))]
    read = (spark.read.format("binaryFile").option("ignoreMissingFiles", "true")
            .load([_GLOB.sub(r"\\\1", p) for p in paths]).select("path", "content") if paths  # a name is no pattern
            else spark.createDataFrame([], "path string, content binary"))
    odd = []  # names the JVM cannot open: read here
    for row in listed.where((F.col("length") > 0) & F.col("local_name").isNotNull()).select("path", "local_name").collect():
        try:
            with open(bytes(row.local_name), "rb") as handle:
                odd.append((row.path, handle.read()))
        except OSError:
            continue
    if odd:
        read = read.unionByName(spark.createDataFrame(odd, "path string, content binary"))
    empty = listed.where(F.col("length") == 0).select("path", F.lit(b"").cast("binary").alias("content"))
    return read.unionByName(empty)


def extract_photo_files(spark: SparkSession, listed: DataFrame) -> DataFrame:
    """The listed photo files with their bytes (a column `content` added)."""
    return listed.join(read_photo_files(spark, listed), "path")


def extract_photo_table(spark: SparkSession, source: str) -> DataFrame:
    """A Parquet table of image bytes: needs `content`; `path` and `album` are kept when present."""
    if not tables.exists(spark, source):
        raise UserError(f"{source} does not exist")
    table = spark.read.parquet(source)
    if "content" not in table.columns:
        raise UserError(f"{source} has no 'content' column of image bytes (columns: {', '.join(table.columns)})")
    path = F.col("path") if "path" in table.columns else F.lit(None).cast("string")
    album = F.col("album") if "album" in table.columns else F.lit(None).cast("string")
    # A row without bytes is kept as an empty photo, so that it comes out as an error row, not lost.
    content = F.coalesce(F.col("content").cast("binary"), F.lit(b"").cast("binary"))
    return table.select(path.alias("path"), content.alias("content"), album.alias("album"))


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


def in_ranges(photos: DataFrame, ranges: int) -> DataFrame:
    """Range-partitioned and sorted by photo_id, so that embed's rounds (ranges of photo_id)
    read only the row groups of their range."""
    return photos.repartitionByRange(ranges, "photo_id").sortWithinPartitions("photo_id")


def ranges_for(n_bytes: int) -> int:
    return max(1, -(-n_bytes // BYTES_PER_RANGE))


def photos_now(spark: SparkSession, listed: DataFrame, stored: DataFrame, out: str) -> DataFrame:
    """The photos the archive holds now, as photos_table rows; only the bytes of files new or
    changed since the last ingest are read, so the content of known photos is null."""
    # A file remembered whose photo is no longer stored (a batch lost by hand) is read again.
    previous = spark.read.parquet(table_path(out, FILES)).join(stored.select("photo_id"), "photo_id", "left_semi")
    known = known_files(listed, previous)
    new = listed.join(known.select("path"), "path", "left_anti")
    new = extract_photo_files(spark, new).withColumn("photo_id", F.sha2("content", 256))
    return photos_table(known.withColumn("content", F.lit(None).cast("binary")).unionByName(new))


def moved_batches(stored: DataFrame, now: DataFrame) -> list:
    """Batches holding a photo whose place in the archive changed since it was written: copied
    into another album, moved, or gone."""
    place_now = now.select("photo_id", *[F.col(c).alias(f"now_{c}") for c in PLACE])
    changed = F.col("now_path").isNull()
    for column in PLACE:
        changed = changed | ~F.col(column).eqNullSafe(F.col(f"now_{column}"))
    return sorted(r[BATCH] for r in stored.join(place_now, "photo_id", "left").where(changed)
                  .select(BATCH).distinct().collect())


def add_batch(spark: SparkSession, listed: DataFrame, out: str, forgotten: Forgotten) -> None:
    """Write the photos seen for the first time as a new batch, and rewrite the place columns
    of the earlier batches whose photos moved; the bytes of an unmoved batch are never rewritten."""
    stored = spark.read.parquet(PHOTOS.path(out)).select("photo_id", BATCH, *PLACE)
    now = forgotten.drop(photos_now(spark, listed, stored, out), "photo_id").persist(StorageLevel.MEMORY_AND_DISK)
    fresh = now.join(stored.select("photo_id"), "photo_id", "left_anti")
    if not fresh.isEmpty():
        batch = stored.agg(F.max(BATCH)).first()[0] + 1
        n_bytes = fresh.agg(F.sum("n_bytes")).first()[0] or 0
        write_table(in_ranges(fresh, ranges_for(n_bytes)), out, f"photos/{BATCH}={batch}")
    for batch in moved_batches(stored, now):
        name = f"photos/{BATCH}={batch}"
        written = spark.read.parquet(table_path(out, name))
        # inner join: a photo whose every file left the archive leaves the photos table too
        moved = written.drop(*PLACE).join(now.select("photo_id", *PLACE), "photo_id").select(written.columns)
        write_table(moved.sortWithinPartitions("photo_id"), out, name)
    now.unpersist()


def ingest(spark: SparkSession, source: str, out: str, source_format: str = "folder") -> DataFrame:
    """Write the photos table (and, for a folder, photo_files); returns the photos table."""
    forgotten = Forgotten.read(spark, out)
    photos_path = PHOTOS.path(out)
    listed = None
    if source_format == "folder":
        listed = album_from_path(list_photo_files(spark, source), source).persist()
        if listed.isEmpty():
            raise UserError(f"no photos under {source} (looked for files ending in "
                            f"{', '.join('.' + e for e in PHOTO_EXTENSIONS)})")
    if (listed is not None and tables.exists(spark, table_path(out, FILES)) and tables.exists(spark, photos_path)
            and BATCH in spark.read.parquet(photos_path).columns):
        add_batch(spark, listed, out, forgotten)
    else:  # the first ingest, a Parquet source (read whole each time), or a run from before batches
        if listed is None:
            photos, ranges = photos_table(extract_photo_table(spark, source)), INGEST_RANGES
        else:
            photos = photos_table(extract_photo_files(spark, listed))
            ranges = ranges_for(listed.agg(F.sum("length")).first()[0] or 0)
        photos = forgotten.drop(photos, "photo_id").withColumn(BATCH, F.lit(1))
        write_table(in_ranges(photos, ranges), out, PHOTOS.name)
    written = spark.read.parquet(photos_path)
    if listed is not None:
        files = (written.select("photo_id", F.explode("paths").alias("path"))
                 .join(listed.select("path", "album", "length", "modified"), "path")
                 .select("path", "album", "length", "modified", "photo_id"))
        write_table(files, out, FILES, files=1)
        listed.unpersist()
    return written


def check_source(source: str, source_format: str) -> None:
    """A local archive that is not there stops the job before Spark starts or OUT is made."""
    folder = local_path(source)
    if folder is None:
        return
    if not os.path.exists(folder):
        raise UserError(f"{source} does not exist")
    if source_format == "folder" and not os.path.isdir(folder):
        raise UserError(f"{source} is not a folder of photos (for a Parquet table of photos, add --format parquet)")


def build_parser() -> argparse.ArgumentParser:
    return job_parser("ingest", __doc__)


@user_errors
def main(argv: list[str] | None = None) -> int:
    args, settings = parse_job_arguments(build_parser(), argv)
    check_source(args.photos, args.source_format)
    with job_session(settings, args.out, "ingest", create=True) as spark:
        photos = ingest(spark, args.photos, args.out, args.source_format)
        print(f"ingest: {photos.count()} photos -> {table_path(args.out, 'photos')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
