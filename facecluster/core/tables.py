"""Writing a run's tables whole or not at all.

Spark writes a table as many files, one task at a time; a reader (or the next job) that looks
while a job is writing, or after it was killed, would see half a table. So every table is
written beside its final place, under OUT/_staging (Spark and Parquet readers skip names that
start with '_'), and renamed into place once complete. A rename is atomic on HDFS and on local
disks; on object stores (s3a://) it is a copy, so there the window is shorter but not closed.
"""
from __future__ import annotations

import os
import uuid

from pyspark.sql import DataFrame, SparkSession

from facecluster.core.lock import local_path
from facecluster.core.runtime import table_path
from facecluster.udfs.failpoints import hold_for_kill


def _filesystem(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _filesystem(spark, path)
    return bool(fs.exists(hadoop_path))


def children(spark: SparkSession, path: str) -> list[str]:
    """Names of the entries directly under path (a table's sub-tables, e.g. embed_parts)."""
    fs, hadoop_path = _filesystem(spark, path)
    return [status.getPath().getName() for status in fs.listStatus(hadoop_path)]


def staging_path(out: str, name: str) -> str:
    return table_path(out, f"_staging/{name.replace('/', '-')}-{uuid.uuid4().hex[:12]}")


def move_into_place(spark: SparkSession, staged: str, final: str) -> None:
    """Replace `final` by the complete table at `staged`. The old table is moved aside first
    (a directory renamed onto an existing one would land inside it); a reader then sees the old
    table, the new one, or briefly none, never a mix."""
    fs, source = _filesystem(spark, staged)
    _, target = _filesystem(spark, final)
    fs.mkdirs(target.getParent())
    old = None
    if fs.exists(target):
        _, old = _filesystem(spark, f"{staged}.replaced")
        if not fs.rename(target, old):
            raise OSError(f"cannot move the old table {final} aside")
    if not fs.rename(source, target):
        raise OSError(f"cannot move the new table into {final}")
    if old is not None:
        fs.delete(old, True)


PARTITIONED_BY = {"photos": "batch"}  # a folder's photos: a directory per ingest (jobs/ingest.py)


def write_table(table: DataFrame, out: str, name: str, files: int | None = None) -> str:
    """Write `table` as OUT/name (Parquet), atomically; `files` coalesces small tables."""
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"table name {name!r} would leave the output root")
    spark = table.sparkSession
    final = table_path(out, name)
    staged = staging_path(out, name)
    writer = (table.coalesce(files) if files else table).write
    if PARTITIONED_BY.get(name) in table.columns:
        writer = writer.partitionBy(PARTITIONED_BY[name])
    writer.parquet(staged)
    hold_for_kill(f"table={name.split('/')[0]}")  # tests of a command killed mid-write (udfs/failpoints.py)
    move_into_place(spark, staged, final)
    return final


def read_bytes(spark: SparkSession, path: str) -> bytes | None:
    """A file's bytes through Hadoop's file systems (any URI), or None when absent."""
    fs, hadoop_path = _filesystem(spark, path)
    if not fs.exists(hadoop_path):
        return None
    stream = fs.open(hadoop_path)
    try:
        return bytes(spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()


def read_text(spark: SparkSession, path: str) -> str | None:
    """A small text file of the output root (any Hadoop filesystem), or None when absent."""
    content = read_bytes(spark, path)
    return None if content is None else content.decode("utf-8")


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Replace a small text file whole: written beside it, then renamed into place."""
    folder = local_path(path)
    if folder is not None:  # os.replace: atomic, where Hadoop's rename refuses an existing target
        staged = f"{folder}.{uuid.uuid4().hex[:12]}.tmp"
        with open(staged, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(staged, folder)
        return
    fs, target = _filesystem(spark, path)
    _, staged = _filesystem(spark, f"{path}.{uuid.uuid4().hex[:12]}.tmp")
    stream = fs.create(staged, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
    if fs.exists(target):
        fs.delete(target, False)
    if not fs.rename(staged, target):
        raise OSError(f"cannot move {path} into place")


def delete(spark: SparkSession, path: str) -> None:
    fs, hadoop_path = _filesystem(spark, path)
    fs.delete(hadoop_path, True)
