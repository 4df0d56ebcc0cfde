"""Progress lines a person can read: photos done of the total, photos per second, time left."""
import time

import pytest

from facecluster.core.progress import PhotoProgress, progress_line


def test_a_progress_line_says_done_total_rate_and_time_left():
    assert progress_line("embed", 1200, 8554, elapsed=375.0) == (
        "embed: 1,200 / 8,554 photos (14%), 3.2 photos/s, about 38 min left")
    # Photos done by an earlier run do not count towards this run's rate.
    assert progress_line("embed", 600, 1000, elapsed=100.0, done_at_start=500) == (
        "embed: 600 / 1,000 photos (60%), 1.0 photos/s, about 7 min left")
    assert progress_line("embed", 0, 10, elapsed=0.0) == "embed: 0 / 10 photos (0%)"


@pytest.mark.spark
def test_progress_follows_the_tasks_spark_has_done(spark):
    lines = []
    progress = PhotoProgress(spark, "embed", total=40, every=0.3, out=lambda line, flush: lines.append(line))
    with progress.round(40):
        spark.sparkContext.parallelize(range(8), 8).map(lambda x: time.sleep(0.4) or x).count()
    assert lines, "nothing was printed while Spark worked"
    done = [int(line.split(" / ")[0].split()[-1].replace(",", "")) for line in lines]
    assert done == sorted(done) and done[-1] <= 40 and any(0 < d < 40 for d in done)
    assert progress.done == 40
