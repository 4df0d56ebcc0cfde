"""Reading a run's tables without Spark, wherever the run lies: a local folder, file://, hdfs://,
s3a:// (through pyarrow's file systems), and only the columns asked for, so that looking at a
run never reads the photos' bytes."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from facecluster.core.catalogue import Table
from facecluster.core.lock import local_path


def filesystem_of(out: str | Path):
    """(pyarrow file system, path inside it) of an output root."""
    from pyarrow import fs

    local = local_path(str(out))  # a folder, file:///a or Spark's file:/a
    if local is not None:
        return fs.LocalFileSystem(), str(Path(local).resolve())
    text = str(out)
    if text.startswith("s3a://"):  # Hadoop's name for S3; pyarrow knows it as s3://
        text = "s3://" + text[len("s3a://"):]
    return fs.FileSystem.from_uri(text)


def canonical_name(out: str | Path) -> str:
    """One name per output root, however it was typed: a local folder as file: and its real
    path (a relative name, a link, file:///a and file:/a are one root), a URI as it is."""
    local = local_path(str(out))
    if local is not None:
        return "file:" + os.path.realpath(local)
    return str(out).rstrip("/")


def cache_root() -> Path:
    """Where commands keep local copies of a run's data (the review page's faces)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facecluster"


def run_cache_folder(out: str | Path, cache: Path | None = None) -> Path:
    """This machine's cached copies of one output root's data; forget deletes it whole."""
    return (cache or cache_root() / "review") / hashlib.sha1(canonical_name(out).encode()).hexdigest()[:16]


def has_table(out: str | Path, table: Table) -> bool:
    from pyarrow import fs

    filesystem, base = filesystem_of(out)
    return filesystem.get_file_info(f"{base}/{table.name}").type == fs.FileType.Directory


def table_columns(out: str | Path, table: Table) -> list[str]:
    import pyarrow.dataset as ds

    filesystem, base = filesystem_of(out)
    return ds.dataset(f"{base}/{table.name}", filesystem=filesystem, format="parquet", partitioning="hive").schema.names


# Columns added after runs were written: (table, column) -> the value an older run means.
ADDED_COLUMNS = {("people", "hidden"): False, ("photo_files", "root"): None, ("photos", "taken_at"): None,
                 ("photos", "taken_at_offset"): None, ("photos", "taken_at_source"): None}


def read_table(out: str | Path, table: Table, columns: list[str]) -> pd.DataFrame:
    """The table's rows, only these columns."""
    import pyarrow.dataset as ds

    filesystem, base = filesystem_of(out)
    dataset = ds.dataset(f"{base}/{table.name}", filesystem=filesystem, format="parquet", partitioning="hive")
    absent = [c for c in columns if c not in dataset.schema.names]
    missing = [c for c in absent if (table.name, c) not in ADDED_COLUMNS]
    if missing:
        raise KeyError(f"{table.name} has no column {', '.join(missing)} (written by an older version?)")
    frame = dataset.to_table(columns=[c for c in columns if c not in absent]).to_pandas()
    for column in absent:
        frame[column] = ADDED_COLUMNS[(table.name, column)]
    return frame[columns]


def run_models(out: str | Path) -> list[str]:
    """The models that embedded the faces an output root holds; none for a new root (or one this
    machine cannot read without Spark)."""
    from facecluster.core.catalogue import FACES

    try:
        if not has_table(out, FACES):
            return []
        return sorted(read_table(out, FACES, ["model"])["model"].unique())
    except (OSError, KeyError):
        return []
