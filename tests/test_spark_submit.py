"""Every job is a plain Spark application: spark-submit jobs/<job>.py runs it with the same settings."""
import shutil

import pandas as pd
import pytest

from tests.conftest import ARCHIVE, spark_submit

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_the_four_jobs_run_under_spark_submit(tmp_path):
    archive = tmp_path / "photos"
    # Two people seen once in each of three albums, and a photo without people. HDBSCAN needs more than three
    # faces before it can name any group that is not the whole set, hence two people rather than one.
    chosen = [("2019_birthday", "img5.jpg"), ("2021_wedding", "img6.jpg"), ("2023_holiday", "img10.jpg"),
              ("2019_birthday", "img44.jpg"), ("2021_wedding", "img43.jpg"), ("2023_holiday", "img45.jpg"),
              ("2019_birthday", "dogs.jpg")]
    for album, name in chosen:
        (archive / album).mkdir(parents=True, exist_ok=True)
        shutil.copy(ARCHIVE / album / name, archive / album / name)
    out = tmp_path / "out"
    common = ["--out", str(out)]
    printed = {job: spark_submit(job, [*extra, *common], "local[2]", tmp_path)
               for job, extra in [("ingest", [str(archive)]), ("embed", ["--embedder", "dlib"]), ("cluster", []),
                                       ("people", [])]}
    assert "ingest: 7 photos" in printed["ingest"]
    assert "7 photos (6 with faces, 1 without, 0 errors), 6 faces" in printed["embed"]
    assert "cluster: 6 faces -> 2 people" in printed["cluster"]
    people = pd.read_parquet(out / "people")
    assert people["n_albums"].tolist() == [3, 3]


def _events(log_dir) -> list[dict]:
    import json

    logs = sorted(p for p in log_dir.rglob("events_*") if p.is_file())
    assert logs, "no event log written"  # Spark 4 rolls its log: a folder of event files
    return [json.loads(line) for log in logs for line in log.read_text().splitlines() if line.strip()]


def test_what_the_user_gives_spark_submit_wins_and_the_ui_tells_the_steps_apart(tmp_path):
    """--name, --conf and spark-defaults.conf over the package's defaults; --config shipped with
    --files and named as on the submitting machine, read where the driver runs; each Spark job
    described by its step. Read back from Spark's event log."""
    archive = tmp_path / "photos" / "album"
    archive.mkdir(parents=True)
    shutil.copy(ARCHIVE / "2019_birthday" / "img5.jpg", archive / "_DSC0001.jpg")
    events = tmp_path / "events"
    events.mkdir()
    shipped = tmp_path / "submitter" / "mine.yaml"
    shipped.parent.mkdir()
    shipped.write_text("spark:\n  conf:\n    spark.sql.files.maxPartitionBytes: 16m\n")
    defaults = tmp_path / "spark-conf"
    defaults.mkdir()
    (defaults / "spark-defaults.conf").write_text("spark.sql.execution.arrow.maxRecordsPerBatch 5\n")
    driver_side = tmp_path / "driver"
    driver_side.mkdir()  # the driver's working folder holds no mine.yaml: it comes with --files
    import os

    os.environ["SPARK_CONF_DIR"] = str(defaults)
    try:
        printed = spark_submit("ingest", [str(tmp_path / "photos"), "--out", str(tmp_path / "out"),
                                          "--config", "submitter/mine.yaml"], "local[2]", driver_side,
                               ["--name", "my-job", "--conf", "spark.sql.shuffle.partitions=7",
                                "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir=file:{events}",
                                "--conf", "spark.eventLog.compress=false",
                                "--files", str(shipped)])
    finally:
        del os.environ["SPARK_CONF_DIR"]
    assert "ingest: 1 photos" in printed
    log = _events(events)
    properties = next(e for e in log if e["Event"] == "SparkListenerEnvironmentUpdate")["Spark Properties"]
    properties = dict(properties) if isinstance(properties, list) else properties
    assert properties["spark.app.name"] == "my-job"
    assert properties["spark.sql.shuffle.partitions"] == "7", "spark-submit's --conf wins over the defaults"
    assert properties["spark.sql.execution.arrow.maxRecordsPerBatch"] == "5", "spark-defaults.conf wins"
    assert properties["spark.sql.files.maxPartitionBytes"] == "16m", "the shipped --config was read"
    assert properties["spark.driver.memory"] == "4g", "the package's defaults fill what is unset"
    described = {e["Properties"].get("spark.job.description", "") for e in log if e["Event"] == "SparkListenerJobStart"}
    assert described and all(d.startswith("facecluster ingest") for d in described), described
