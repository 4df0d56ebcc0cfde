"""Adding an album to a run: the incremental run's time and quality against a full run.

LFW photos (by default 100 people with most photos, at most 10 each, plus 200 people seen once) are spread
over four albums at random; 10% of them, drawn at random, are held back as a new album. Then,
each step a `facecluster run` (Spark local mode, dlib):
  1. the four albums                                   (the existing run)
  2. the same output root after the new album is added  (incremental: only the new photos are
     embedded, their faces join the existing people or make new ones)
  3. a full re-cluster of that root (cluster.mode=full), same embeddings
  4. a fresh run over all five albums                  (the full run's time)
and prints times, the incremental/full time ratio, and pairwise F of 2, 3 and 4.

    .venv/bin/python benchmarks/incremental.py [--lfw ../shared/data/lfw]     # 1,200 photos, 4 minutes
    .venv/bin/python benchmarks/incremental.py --people 1154 --per-person 1000 --seen-once 2798   # all of LFW, about 25 minutes
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.measuring.evaluation import evaluate_run, format_report, lfw_subset  # noqa: E402


STEPS: dict[str, str] = {}  # run -> its "time:" line (seconds per step)


def facecluster(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "facecluster"), *args], check=True, stdout=subprocess.PIPE,
                          text=True)
    seconds = time.perf_counter() - started
    STEPS[f"{len(STEPS) + 1}. {args[0]} {Path(args[1]).name}"] = next((line.strip() for line in done.stdout.splitlines()
                                      if line.strip().startswith("time:")), "")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(ROOT.parent / "shared" / "data" / "lfw"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--new-share", type=float, default=0.1)
    parser.add_argument("--people", type=int, default=100, help="people with most photos taken")
    parser.add_argument("--per-person", type=int, default=10, help="at most this many photos of each")
    parser.add_argument("--seen-once", type=int, default=200, help="people with a single photo added")
    args = parser.parse_args()

    lfw = Path(args.lfw)
    photos = pd.Series({str(p): p.parent.name for p in sorted(lfw.glob("*/*.jpg"))})
    chosen = photos.loc[lfw_subset(photos, n_people=args.people, per_person=args.per_person,
                                   n_distractors=args.seen_once, seed=args.seed)]
    rng = np.random.default_rng(args.seed)
    new = rng.random(len(chosen)) < args.new_share
    albums = np.where(new, "new_album", [f"album_{k}" for k in rng.integers(0, 4, len(chosen))])
    common = ["--embedder", "dlib"]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        archive, everything = work / "archive", work / "everything"
        labels = []
        for (path, person), album, is_new in zip(chosen.items(), albums, new):
            for root in ([everything] if is_new else [archive, everything]):
                (root / album).mkdir(parents=True, exist_ok=True)
                shutil.copy(path, root / album / Path(path).name)
            labels.append({"path": f"{album}/{Path(path).name}", "person": person})
        labels = pd.DataFrame(labels)
        print(f"{len(chosen)} photos of {chosen.nunique()} people in 4 albums; new album: {int(new.sum())} photos")

        out = work / "out"
        t_first = facecluster("run", str(archive), "--out", str(out), *common)
        for path in (everything / "new_album").iterdir():
            (archive / "new_album").mkdir(exist_ok=True)
            shutil.copy(path, archive / "new_album" / path.name)
        t_incremental = facecluster("run", str(archive), "--out", str(out), *common)
        incremental = evaluate_run(str(out), labels)
        recluster = work / "recluster"
        shutil.copytree(out, recluster)
        t_recluster = facecluster("cluster", "--out", str(recluster), "--set", "cluster.mode=full")
        full_recluster = evaluate_run(str(recluster), labels)
        fresh = work / "fresh"
        t_full = facecluster("run", str(everything), "--out", str(fresh), *common)
        full = evaluate_run(str(fresh), labels)

    print(f"run over the 4 albums:                {t_first:6.1f} s")
    print(f"incremental run with the new album:   {t_incremental:6.1f} s")
    print(f"full run over all 5 albums (fresh):   {t_full:6.1f} s")
    print(f"incremental / full:                   {t_incremental / t_full:6.3f}")
    print(f"full re-cluster of the incremental root: {t_recluster:.1f} s (one Spark application)")
    for run, steps in STEPS.items():
        if steps:
            print(f"  {run}: {steps}")
    print(format_report("incremental run        ", incremental))
    print(format_report("full re-cluster        ", full_recluster))
    print(format_report("fresh full run         ", full))
    print(f"pairwise F: incremental - full re-cluster = "
          f"{incremental['pairwise']['f'] - full_recluster['pairwise']['f']:+.4f}")


if __name__ == "__main__":
    main()
