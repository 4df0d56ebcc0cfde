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
from stat import S_ISREG
from typing import Iterator
from datetime import datetime, timezone

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from facecluster.core import tables
from facecluster.core.catalogue import PHOTOS, PHOTO_FILES
from facecluster.core.errors import UserError
from facecluster.curation.forgetting import Forgotten
from facecluster.core.lock import local_path
from facecluster.core.job_arguments import job_parser
from facecluster.core.runtime import parse_job_arguments, table_path, user_errors
from facecluster.output.session import job_session
from facecluster.core.tables import write_table
from facecluster.udfs.taken import HEAD_BYTES, exif_taken_at

FILES = PHOTO_FILES.name

PHOTO_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif")
INGEST_RANGES = 200  # ranges of a Parquet source, whose size is not known before reading it
BYTES_PER_RANGE = 64 << 20  # a folder's ranges: ~64 MB files, so a small archive is not 200 tiny tasks
BATCH = "batch"  # photos/batch=N: the photos first seen by the N-th ingest of a folder
PLACE = ["album", "path", "albums", "paths"]  # where a photo is in the archive: what a later ingest may change

_PHOTO_NAME = r"(?i)\.(" + "|".join(PHOTO_EXTENSIONS) + r")$"
_GLOB = re.compile(r"([\\\[\]{}*?])")  # what Hadoop reads as a pattern in a path


def list_photo_files(spark: SparkSession, root: str) -> DataFrame:
    """Every file under root whose name says it is a photo: path, length, modified, local_name
    (the file's name as bytes where it is not valid UTF-8, else null) and root (the archive's
    root as the listing writes it, the start of every path); no bytes read. Every name counts:
    `_DSC0001.jpg` is how cameras name photos, though Spark's file source hides such names."""
    folder = local_path(root)
    if folder is not None:
        return list_local_photo_files(spark, folder)
    return list_hadoop_photo_files(spark, root)


_STATUS = re.compile(r"\w*Status\{path=(.*?); isDirectory=(true|false)(?:; length=(\d+))?.*?; modification_time=(\d+)")


def list_hadoop_photo_files(spark: SparkSession, root: str) -> DataFrame:
    """list_photo_files for a Hadoop file system (hdfs://, s3a://, ...), listed through Hadoop's
    own FileSystem, which hides no name (Spark's file source leaves out those that start with _
    or .). A folder at a time, its entries handed over as one text: all of LFW (9,546 photos in
    5,750 folders) listed in 28 s on two busy cores, against 116 s asking the JVM for each file's
    fields one by one; an archive's albums hold far more photos per folder."""
    jvm = spark.sparkContext._jvm
    top = jvm.org.apache.hadoop.fs.Path(root)
    fs = top.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(top):
        raise UserError(f"{root} does not exist")
    named = fs.makeQualified(top).toString().rstrip("/")
    pattern = re.compile(_PHOTO_NAME)
    rows, folders, seen = [], [named], set()
    while folders:
        folder = folders.pop()
        if folder in seen:
            continue
        seen.add(folder)
        try:
            # commons-lang's ArrayUtils takes the array as an Object, which py4j can hand it
            entries = jvm.org.apache.commons.lang3.ArrayUtils.toString(fs.listStatus(jvm.org.apache.hadoop.fs.Path(folder)))
        except Exception as exc:  # noqa: BLE001 - Hadoop cannot name some entries (a colon in a name)
            raise UserError(f"cannot list {folder} through Hadoop: {str(exc).splitlines()[0]}") from None
        for path, is_folder, length, modified in _STATUS.findall(entries):
            if is_folder == "true":
                folders.append(path)
            elif pattern.search(path):
                rows.append((path, int(length or 0), datetime.fromtimestamp(int(modified) / 1000, tz=timezone.utc),
                             None, named))
    return spark.createDataFrame(rows, LISTING_SCHEMA)


LISTING_SCHEMA = "path string, length long, modified timestamp, local_name binary, root string"


def list_local_photo_files(spark: SparkSession, root: str) -> DataFrame:
    """list_photo_files for a folder on this machine, listed by Python rather than by Hadoop:
    Hadoop follows a symbolic link that points back up the tree about 40 levels deep (every
    photo below it read 41 times), cannot see a file whose name is not valid UTF-8 and hides
    names that start with _ or . Here a folder that is its own ancestor is not entered again, and
    such a name is kept with its undecodable bytes written as \\xNN. Something that is not a
    regular file (a pipe, a device) is listed with no bytes, so that it becomes an error row
    without ever being opened."""
    if not os.path.isdir(root):
        raise UserError(f"{root} is not a folder of photos" if os.path.exists(root) else f"{root} does not exist")
    pattern = re.compile(_PHOTO_NAME.encode())
    top = os.fsencode(os.path.abspath(root))
    named = "file:" + os.path.abspath(root).rstrip("/")
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
            size = stat.st_size if S_ISREG(stat.st_mode) else 0
            rows.append(("file:" + path, size, modified, local_name, named))
    return spark.createDataFrame(rows, LISTING_SCHEMA)


def _read_local_files(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas: (path, local_name) -> (path, content) read by Python on the executors, so
    that every name Python can open is read (Spark's file source hides _ and . names and fails on
    some others); a file gone since the listing is left out."""
    for rows in batches:
        read = []
        for path, local_name in zip(rows["path"], rows["local_name"]):
            name = bytes(local_name) if local_name is not None else local_path(path)
            try:
                with open(name, "rb") as handle:
                    read.append((path, handle.read()))
            except FileNotFoundError:
                continue
        yield pd.DataFrame(read, columns=["path", "content"])


def _hidden_from_spark(path: str) -> bool:
    """Names Spark's file source leaves out of a listing, even named one by one."""
    name = path.rsplit("/", 1)[-1]
    return name.startswith(".") or (name.startswith("_") and "=" not in name)


def read_photo_files(spark: SparkSession, listed: DataFrame) -> DataFrame:
    """path, content of the listed files (0-byte files as empty content). Files that went from
    the archive since they were listed are left out; they will not be in photo_files either."""
    readable = listed.where(F.col("length") > 0)
    empty = listed.where(F.col("length") == 0).select("path", F.lit(b"").cast("binary").alias("content"))
    local = local_path(listed.select("root").first()[0]) is not None if not listed.isEmpty() else True
    if local:
        tasks = max(spark.sparkContext.defaultParallelism, -(-readable.count() // 2_000))
        read = readable.select("path", "local_name").repartition(tasks).mapInPandas(
            _read_local_files, "path string, content binary")
        return read.unionByName(empty)
    paths = [r.path for r in readable.select("path").collect()]
    plain = [p for p in paths if not _hidden_from_spark(p)]
    read = (spark.read.format("binaryFile").option("ignoreMissingFiles", "true")
            .load([_GLOB.sub(r"\\\1", p) for p in plain]).select("path", "content") if plain  # a name is no pattern
            else spark.createDataFrame([], "path string, content binary"))
    hidden = [p for p in paths if _hidden_from_spark(p)]
    if hidden:  # Spark's sources will not open these names: the driver reads them through Hadoop
        read = read.unionByName(spark.createDataFrame(_read_through_hadoop(spark, hidden), "path string, content binary"))
    return read.unionByName(empty)


def _read_through_hadoop(spark: SparkSession, paths: list[str]) -> list[tuple[str, bytes]]:
    """(path, bytes) of each file still there, read on the driver through Hadoop."""
    read = ((path, tables.read_bytes(spark, path)) for path in paths)
    return [(path, content) for path, content in read if content is not None]


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


def album_from_path(files: DataFrame) -> DataFrame:
    """album = the folder directly under the archive's root ('' for photos at the root itself),
    from the root the listing wrote (file:///x and file:/x name one folder, listed as file:/x)."""
    relative = F.expr("substring(path, length(root) + 2)")
    return files.withColumn("album", F.when(F.instr(relative, "/") > 0,
                                            F.substring_index(relative, "/", 1)).otherwise(F.lit("")))


def photos_table(files: DataFrame) -> DataFrame:
    """path, content, album -> one row per distinct photo (the photos table)."""
    # Every empty file (or pipe, or row without bytes) is a photo of its own, so that each
    # becomes its own error row rather than one row for all of them.
    photo_id = F.when(F.length("content") > 0, F.sha2(F.col("content"), 256)).otherwise(
        F.sha2(F.concat(F.lit("empty file: "), F.coalesce(F.col("path"), F.lit(""))).cast("binary"), 256))
    if "photo_id" in files.columns:  # known files keep the id computed when their bytes were read
        photo_id = F.coalesce(F.col("photo_id"), photo_id)
    keyed = files.withColumn("photo_id", photo_id) \
        .withColumn("album", F.coalesce(F.col("album"), F.lit(""))) \
        .withColumn("path", F.coalesce(F.col("path"), F.col("photo_id")))
    first = F.min(F.struct("path", "album"))
    # The file time only stands in where EXIF has no date: the oldest copy's, as copying resets it.
    modified = F.unix_timestamp(F.col("modified")) if "modified" in files.columns else F.lit(None).cast("long")
    photos = (keyed.groupBy("photo_id")
              .agg(first.alias("first"),
                   F.sort_array(F.collect_set("album")).alias("albums"),
                   F.sort_array(F.collect_set("path")).alias("paths"),
                   F.first("content", ignorenulls=True).alias("content"),
                   F.min(modified).alias("file_time")))
    taken = taken_at(F.substring("content", 1, HEAD_BYTES), F.col("file_time"))
    return (photos.withColumn("taken", taken)
            .select("photo_id", F.col("first.album").alias("album"), F.col("first.path").alias("path"),
                    "albums", "paths", "content",
                    F.length("content").cast("long").alias("n_bytes"),
                    F.current_timestamp().alias("ingested_at"),
                    "taken.taken_at", "taken.taken_at_offset", "taken.taken_at_source"))


@F.pandas_udf(T.StructType([T.StructField("taken_at", T.TimestampNTZType()), T.StructField("taken_at_offset", T.StringType()),
                             T.StructField("taken_at_source", T.StringType())]))
def taken_at(heads: pd.Series, file_times: pd.Series) -> pd.DataFrame:
    """When each photo was taken: EXIF's DateTimeOriginal (source 'exif', the camera's clock, with
    its offset where written), else the file's modification time (source 'file', in UTC), else
    nothing (a Parquet source has no file times)."""
    rows = []
    for head, file_time in zip(heads, file_times):
        taken, offset = exif_taken_at(head)
        if taken is not None:
            rows.append((taken, offset, "exif"))
        elif file_time is not None and not pd.isna(file_time):
            rows.append((datetime.fromtimestamp(int(file_time), tz=timezone.utc).replace(tzinfo=None), "+00:00", "file"))
        else:
            rows.append((None, None, None))
    return pd.DataFrame(rows, columns=["taken_at", "taken_at_offset", "taken_at_source"])


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
    new = extract_photo_files(spark, new)
    return photos_table(known.withColumn("content", F.lit(None).cast("binary")).unionByName(new, allowMissingColumns=True))


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
        listed = album_from_path(list_photo_files(spark, source)).persist()
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
                 .join(listed.select("path", "album", "length", "modified", "root"), "path")
                 .select("path", "album", "length", "modified", "photo_id", "root"))
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
