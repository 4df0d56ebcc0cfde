"""Progress a person can read while Spark works: photos done of the total, photos per second and
the time left, printed every PROGRESS_EVERY seconds from Spark's status tracker (the tasks done
of the stage that runs), where Spark's own console bars would show stage numbers."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

PROGRESS_EVERY = 20.0  # seconds


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(what: str, done: float, total: int, elapsed: float, done_at_start: float = 0.0) -> str:
    """'embed: 1,200 / 8,554 photos (14%), 3.2 photos/s, about 38 min left'."""
    rate = (done - done_at_start) / elapsed if elapsed > 0 else 0.0
    line = f"{what}: {int(done):,} / {total:,} photos ({100 * done / max(total, 1):.0f}%)"
    if rate > 0:
        line += f", {rate:.1f} photos/s, about {_duration((total - done) / rate)} left"
    return line


def stage_share(spark) -> float | None:
    """Share of tasks done in the largest stage running now; None when none runs."""
    tracker = spark.sparkContext.statusTracker()
    stages = [tracker.getStageInfo(stage) for stage in tracker.getActiveStageIds()]
    stages = [s for s in stages if s is not None and s.numTasks]
    if not stages:
        return None
    largest = max(stages, key=lambda s: s.numTasks)
    return largest.numCompletedTasks / largest.numTasks


class PhotoProgress:
    """Photos done of `total` across rounds; `round(photos)` wraps the Spark work of one round."""

    def __init__(self, spark, what: str, total: int, done_before: int = 0, every: float = PROGRESS_EVERY, out=print):
        self.spark, self.what, self.total, self.every, self.out = spark, what, total, every, out
        self.done = float(done_before)
        self.done_at_start = float(done_before)
        self.started = time.monotonic()

    @contextmanager
    def round(self, photos: int):
        stop = threading.Event()
        base = self.done

        def report():
            while not stop.wait(self.every):
                share = stage_share(self.spark)
                if share is not None:
                    self.done = base + share * photos
                self.out(progress_line(self.what, self.done, self.total, time.monotonic() - self.started,
                                       self.done_at_start), flush=True)

        thread = threading.Thread(target=report, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        self.done = base + photos
