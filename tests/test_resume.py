"""The embed job resumes: a re-run does no work twice, a killed run finishes where it stopped,
and a reader never sees half a table."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from facecluster.core.settings import with_changes
from facecluster.core.tables import write_table
from facecluster.jobs import embed, ingest
from tests.compare import assert_same_tables, read
from tests.conftest import ARCHIVE, ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROUND = 3  # photos per round: 17 photos make six rounds


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume") / "photos"
    for album in ("2019_birthday", "2021_wedding"):
        shutil.copytree(ARCHIVE / album, root / album)
    (root / "2021_wedding" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off")
    return root


@pytest.fixture(scope="module")
def embed_settings(settings):
    return with_changes(settings, {"embed.photos_per_round": ROUND})["embed"]


@pytest.fixture(scope="module")
def reference(spark, archive, embed_settings, tmp_path_factory):
    """An uninterrupted run: its output root."""
    out = tmp_path_factory.mktemp("reference") / "out"
    ingest.ingest(spark, str(archive), str(out))
    work = embed.embed(spark, str(out), embed_settings, None)
    assert (work["embedded_now"], work["already_done"]) == (17, 0)
    return out


def test_a_second_run_embeds_nothing_and_writes_no_duplicates(spark, reference, embed_settings):
    before = read(reference, "faces", "face_id")
    work = embed.embed(spark, str(reference), embed_settings, None)
    assert (work["embedded_now"], work["already_done"]) == (0, 17)
    after = read(reference, "faces", "face_id")
    assert after["face_id"].is_unique and len(after) == len(before)
    assert_same_tables(reference, reference)


def _start_embed(out, photos_per_round=ROUND, env=None):
    # --verbose: Spark's warnings ("Lost task") are what shows a killed worker's task was run again.
    command = [sys.executable, "-m", "facecluster.cli", "embed", "--out", str(out), "--embedder", "dlib", "--verbose",
               "--set", f"embed.photos_per_round={photos_per_round}", "--set", "spark.master=local[2,4]"]
    # A session of its own, so that killing the group takes the JVM and its Python workers too.
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _committed_rounds(out):
    parts = out / "embed_parts"
    return [p for p in parts.iterdir() if p.is_dir()] if parts.is_dir() else []


def _wait_for(condition, process, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the job ended before it could be killed:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "timed out waiting for the job"
        time.sleep(0.2)


def test_a_killed_driver_resumes_to_the_same_tables(spark, archive, embed_settings, reference, tmp_path):
    out = tmp_path / "out"
    from facecluster.udfs.failpoints import HOLD

    hold = tmp_path / "hold"
    hold.mkdir()
    ingest.ingest(spark, str(archive), str(out))
    job = _start_embed(out, env={HOLD: str(hold)})
    _wait_for(lambda: len(_committed_rounds(out)) >= 1, job, timeout=900)
    (hold / "worker").touch()  # the next task waits: the job cannot finish before the kill
    _wait_for(lambda: (hold / "held").exists(), job, timeout=900)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    try:  # Spark's Python daemon keeps a process group of its own: the held worker goes too
        os.kill(int((hold / "held").read_text()), signal.SIGKILL)
    except ProcessLookupError:
        pass
    done_before = len(_committed_rounds(out))
    assert 1 <= done_before < 6, "the kill must land between the first and the last round"
    assert not (out / "faces").exists()  # published only once every round is in

    work = embed.embed(spark, str(out), embed_settings, None)
    assert 0 < work["embedded_now"] < 17 and work["embedded_now"] + work["already_done"] == 17
    assert_same_tables(out, reference)


def test_a_killed_python_worker_is_retried_and_nothing_is_lost(spark, archive, reference, tmp_path):
    from facecluster.udfs.failpoints import HOLD

    out, hold = tmp_path / "out", tmp_path / "hold"
    hold.mkdir()
    (hold / "worker").touch()
    ingest.ingest(spark, str(archive), str(out))
    # The first worker to start a task waits there until killed (udfs/failpoints.py): the kill
    # hits a running task on a fast machine and a slow one alike.
    job = _start_embed(out, photos_per_round=100, env={HOLD: str(hold)})
    _wait_for(lambda: (hold / "held").exists(), job, timeout=900)
    os.kill(int((hold / "held").read_text()), signal.SIGKILL)
    output, _ = job.communicate(timeout=900)
    assert job.returncode == 0, output[-3000:]
    assert "Lost task" in output  # the kill did hit a running task, and Spark ran it again
    assert "embedded now 17" in output
    assert_same_tables(out, reference)


def test_a_failed_write_leaves_the_old_table_whole(spark, tmp_path):
    from pyspark.sql import functions as F

    out = str(tmp_path)
    write_table(spark.range(100).repartition(4), out, "numbers")

    @F.udf("long")
    def fails_on_77(n):
        if n == 77:
            raise ValueError("a photo the job cannot survive")
        return n

    with pytest.raises(Exception, match="a photo the job cannot survive"):
        write_table(spark.range(1000, 1100).union(spark.range(77, 78)).repartition(4)
                    .select(fails_on_77("id").alias("id")), out, "numbers")
    kept = pd.read_parquet(tmp_path / "numbers")
    assert sorted(kept["id"]) == list(range(100))
