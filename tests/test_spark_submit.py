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
