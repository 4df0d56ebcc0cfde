"""Fault-injection points for the tests of killed runs (tests/test_resume.py, test_journeys.py).

When FACECLUSTER_TEST_HOLD names a folder, a point is armed by a file of its name there: the
first process to reach an armed point writes its pid to FOLDER/held and waits there until it is
killed, so that a test's kill lands in a known state (a task running, a table written but not yet
published) on a fast machine and a slow one alike. Every later visit, a retried task included,
finds the point taken and goes on. Unset (always, outside tests), a point costs one lookup.
"""
from __future__ import annotations

import os
import time

HOLD = "FACECLUSTER_TEST_HOLD"


def hold_for_kill(point: str) -> None:
    folder = os.environ.get(HOLD)
    if not folder or not os.path.exists(os.path.join(folder, point)):
        return
    try:
        os.close(os.open(os.path.join(folder, "taken"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    with open(os.path.join(folder, "held.tmp"), "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(os.path.join(folder, "held.tmp"), os.path.join(folder, "held"))
    while True:
        time.sleep(1)
