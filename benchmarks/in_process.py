"""Commands that embed photos in their own process (evaluate pairs, evaluate identify, verify,
identify): one process against one worker per core, side by side on the same LFW photos, and
whether they agree.

    .venv/bin/python benchmarks/in_process.py [--photos 160]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.core.settings import load_settings  # noqa: E402
from facecluster.recognition.photo_faces import embed_in_process, photo_rows  # noqa: E402

LFW = ROOT.parent / "shared" / "data" / "lfw"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=160)
    args = parser.parse_args()
    paths = sorted(str(p) for p in LFW.rglob("*.jpg"))[:args.photos]
    rows = photo_rows(paths)
    settings = load_settings(overrides=["embed.embedder=dlib"])["embed"]
    cores = len(os.sched_getaffinity(0))
    results = {}
    for workers in (1, cores):
        started = time.perf_counter()
        faces, status = embed_in_process(rows, settings, None, workers=workers)
        seconds = time.perf_counter() - started
        results[workers] = faces.sort_values("face_id")
        print(f"{'one process' if workers == 1 else f'{workers} workers':<12} {len(rows)} photos in {seconds:6.1f} s "
              f"= {len(rows) / seconds:5.2f} photos/s, {len(faces)} faces", flush=True)
    a, b = (np.stack(results[w]["embedding"].to_numpy()) for w in (1, cores))
    print(f"same faces: {results[1]['face_id'].tolist() == results[cores]['face_id'].tolist()}, "
          f"largest embedding difference {np.abs(a - b).max():.2e}")


if __name__ == "__main__":
    main()
