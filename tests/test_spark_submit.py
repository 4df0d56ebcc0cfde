"""Every job is a plain Spark application: spark-submit jobs/<job>.py runs it with the same settings."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ARCHIVE, ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_the_four_jobs_run_under_spark_submit(tmp_path):
    archive = tmp_path / "photos"
    for album, name in [("2019_birthday", "img5.jpg"), ("2019_birthday", "dogs.jpg"), ("2021_wedding", "img6.jpg"),
                        ("2023_holiday", "img10.jpg")]:
        (archive / album).mkdir(parents=True, exist_ok=True)
        shutil.copy(ARCHIVE / album / name, archive / album / name)
    out = tmp_path / "out"
    spark_submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    common = ["--out", str(out), "--config", str(ROOT / "conf" / "local.yaml"), "--embedder", "dlib"]
    printed = {}
    for job, extra in [("ingest", [str(archive)]), ("embed", []), ("cluster", []), ("people", [])]:
        done = subprocess.run([str(spark_submit), "--master", "local[2]", str(ROOT / "jobs" / f"{job}.py"), *extra, *common],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        printed[job] = done.stdout
    assert "ingest: 4 photos" in printed["ingest"]
    assert "4 photos (3 with faces, 1 without, 0 errors), 3 faces" in printed["embed"]
    assert "cluster: 3 faces -> 1 people" in printed["cluster"]  # img5, img6, img10: one person in three albums
    people = pd.read_parquet(out / "people")
    assert people["n_albums"].tolist() == [3]
