"""One command at a time on an output root.

Two commands writing one output root at once would replace each other's tables (two runs), or
undo each other (a forget beside a run that still holds the forgotten faces in memory). Every
command that writes takes OUT/_lock first; a second one refuses at once and says who holds it.

On a local disk the lock is an flock on OUT/_lock: the kernel drops it when its process dies,
so a killed run never leaves a stale lock behind. Hadoop filesystems (hdfs://, s3a://) have no
such lock; there the lock is a file created only if absent (atomic on HDFS), deleted when the
command ends, and one left by a killed driver must be deleted by hand: the message says so.
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager

from facecluster.core.errors import UserError

LOCK = "_lock"  # '_' first: Spark and Parquet readers skip it


class OutputBusy(UserError):
    pass


def _holder(command: str) -> str:
    return json.dumps({"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                       "started": time.strftime("%Y-%m-%d %H:%M:%S")})


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"`facecluster {holder['command']}` (pid {holder['pid']} on {holder['host']}, since {holder['started']})"
    except (ValueError, KeyError, TypeError):
        return "another facecluster command"


def local_path(out: str) -> str | None:
    """The local folder of an output root, or None for a Hadoop filesystem URI."""
    if out.startswith("file://"):
        return out[len("file://"):]
    if out.startswith("file:"):
        return out[len("file:"):]
    return None if "://" in out else out


@contextmanager
def output_lock(out: str, command: str, create: bool = False, spark=None):
    """Hold OUT/_lock while the block runs. create: make OUT if it does not exist (ingest, run);
    otherwise a missing OUT is an error that names it. spark: needed for a Hadoop filesystem."""
    folder = local_path(out)
    if folder is None:
        with _hadoop_lock(out, command, spark):
            yield
        return
    if not os.path.isdir(folder):
        if not create:
            raise UserError(f"{out} is not an output root of facecluster (no such folder); "
                            f"start with `facecluster run PHOTOS --out {out}`")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot make the output root {out}: {exc.strerror or exc}") from None
    import fcntl

    path = os.path.join(folder, LOCK)
    try:
        handle = open(path, "a+")
    except OSError as exc:  # a read-only disk or folder: every command writes there, so say it now
        raise UserError(f"cannot write to the output root {out} ({exc.strerror or exc}): {command} writes its "
                        "tables there; give an --out where you may write (to look at a run on read-only "
                        "storage, use the notebook or `facecluster export`)") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise OutputBusy(f"{out} is in use by {_describe(handle.read())}; run this again when it has "
                             f"finished (one command at a time on an output root)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(_holder(command))
        handle.flush()
        yield
        handle.truncate(0)  # the holder is gone: no stale name for the next reader
    finally:
        handle.close()  # closing drops the flock


@contextmanager
def _hadoop_lock(out: str, command: str, spark):
    if spark is None:
        raise UserError(f"{out}: a Hadoop filesystem output root is locked through Spark")
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"{out.rstrip('/')}/{LOCK}")
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.createNewFile(path):
        from facecluster.core.tables import read_text

        text = read_text(spark, f"{out.rstrip('/')}/{LOCK}") or ""
        raise OutputBusy(f"{out} is in use by {_describe(text)}; run this again when it has finished. If no "
                         f"facecluster command is running on it (a driver was killed), delete {out}/{LOCK}")
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(_holder(command).encode()))
    finally:
        stream.close()
    try:
        yield
    finally:
        fs.delete(path, False)
