"""The session of a command on an output root: OUT locked for it (facecluster/core/lock.py),
Spark started, and what a killed command left recovered before any work."""
from __future__ import annotations

from contextlib import contextmanager

from facecluster.core.catalogue import STAGING
from facecluster.core.lock import local_path, output_lock
from facecluster.core.runtime import describe, start_spark, table_path


@contextmanager
def job_session(settings: dict, out: str, command: str, create: bool = False, finish_forget: bool = True):
    """The job's Spark session, with OUT locked for the job (facecluster/core/lock.py). A local OUT is
    locked before Spark starts, so a busy or missing output root is refused at once. A forget
    that was killed half way is finished first (facecluster/curation/forgetting.py)."""
    spark = None if local_path(out) is not None else start_spark(settings, command)  # a Hadoop lock needs Spark
    with output_lock(out, command, create, spark):
        spark = spark or start_spark(settings, command)
        describe(spark, command, out)
        _recover(spark, out, finish_forget)
        yield spark


def _recover(spark, out: str, finish_forget: bool) -> None:
    """What a killed command left: half-written tables (nobody else writes while we hold the
    lock, so all of OUT/_staging is garbage) and an unfinished forget."""
    from facecluster.core import tables
    from facecluster.curation import forgetting

    tables.delete(spark, table_path(out, STAGING))
    forgetting.Forgotten.read(spark, out)  # stops when the key of the forgotten digests is gone
    if finish_forget:
        forgetting.finish_pending(spark, out)


def finish_interrupted_forget(out: str) -> None:
    """For the commands that read a run without Spark (label, review, report, export): a forget
    killed half way is finished first, with Spark in local mode, so that none of them shows or
    writes what was forgotten."""
    from pyarrow import fs

    from facecluster.core.catalogue import FORGET_PENDING
    from facecluster.core.run_reader import filesystem_of
    from facecluster.core.settings import load_settings

    filesystem, base = filesystem_of(out)
    if filesystem.get_file_info(f"{base}/{FORGET_PENDING}").type != fs.FileType.File:
        return
    with job_session(load_settings(), out, "forget"):
        pass
