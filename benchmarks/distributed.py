"""People found on the executors (cluster.algorithm: distributed) on a Spark standalone cluster that
this script starts and stops: a master and two workers on this machine.

    .venv/bin/python benchmarks/distributed.py --sizes 500000 1000000 2000000 --faces-per-cell 250000 \\
        --compare-knn 1000000
    .venv/bin/python benchmarks/distributed.py --recall --sizes 60000 1000000 --runs OUT... \\
        --faces-per-cell 2000 5000 250000
    .venv/bin/python benchmarks/distributed.py --components --sizes 100000 --runs OUT...
    .venv/bin/python benchmarks/distributed.py --compare --runs KEPT/celebs17 KEPT/lfwall --faces-per-cell 2000 5000
    .venv/bin/python benchmarks/distributed.py --gate --sizes 300000

For each size: synthetic 128-d faces (facecluster.measuring.synthetic, archive-like identity
sizes, fitted to dlib's LFW distances) written as a faces and a photos table; `facecluster
cluster` submitted to the standalone cluster with cluster.algorithm=distributed. Prints the wall
time, the driver's peak memory (the Python driver and its JVM together, sampled every 0.2 s),
each stage's run time, shuffle bytes and peak execution memory (from Spark's event log), the
share of each face's 32 nearest faces (brute force on 1,000 sampled faces) found in its home
cell, and pairwise precision / recall / F against the generator's truth. For the sizes given to
--compare-knn the one-machine kNN algorithm runs too (local mode, on the driver) and the
adjusted Rand index between the two, each face in no person counted as its own, is printed.
With --recall, only the home-cell recall for each set and cell size; with --components, the
largest piece of HDBSCAN's tree cut at a few distances (neither starts Spark); with --compare,
kept real runs clustered by knn and by distributed in local mode, against each other and their labels;
with --gate, the quality gate in local mode on the synthetic faces, side by side: as a table
joined back to the faces by face_id, and as a column of each face, in Arrow batches of 16 rows
(the photos' size) and of 10,000 (batches_of_faces); the median of 3 rounds.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.measuring.synthetic import FaceSpace, generate  # noqa: E402

DLIB_LIKE = FaceSpace(dimension=128, common=2.70, noise=0.227, noise_spread=0.2, common_spread=0.1)
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(log: Path, text: str, count: int = 1, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.3)
    raise RuntimeError(f"{log} never said {text!r}")


class Standalone:
    """A master and two one-core workers on loopback, stopped on exit."""

    def __init__(self, home: Path, worker_memory: str):
        self.home, self.worker_memory, self.processes = home, worker_memory, []

    def __enter__(self) -> str:
        from pyspark.find_spark_home import _find_spark_home

        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_HOME": _find_spark_home()}
        port = free_port()

        def launch(name, *args):
            log = self.home / f"{name}.log"
            self.processes.append(subprocess.Popen([str(BIN / "spark-class"), *args], env=env, cwd=self.home,
                                                   start_new_session=True, stdout=log.open("w"),
                                                   stderr=subprocess.STDOUT))
            return log

        master = launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                        "--webui-port", str(free_port()))
        wait_for(master, "I have been elected leader")
        self.url = f"spark://127.0.0.1:{port}"
        for i in (1, 2):
            launch(f"worker{i}", "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1", "--cores",
                   "1", "--memory", self.worker_memory, "--webui-port", str(free_port()),
                   "--work-dir", str(self.home / f"work{i}"))
        wait_for(master, "Registering worker", count=2)
        return self.url

    def __exit__(self, *exc):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def write_archive(out: Path, X: np.ndarray, parts: int = 16) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = np.char.add("face", np.char.zfill(np.arange(len(X)).astype(str), 9))
    for name in ("faces", "photos"):
        (out / name).mkdir(parents=True)
    for part, rows in enumerate(np.array_split(np.arange(len(X)), parts)):
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(X[rows].ravel()), X.shape[1]).cast(pa.list_(pa.float32()))
        pq.write_table(pa.table({"face_id": ids[rows], "photo_id": ids[rows],
                                 "face_px": np.full(len(rows), 100.0, np.float32),
                                 "det_score": np.ones(len(rows), np.float32), "embedding": embedding,
                                 "model": np.full(len(rows), "dlib-resnet-v1")}), out / "faces" / f"part-{part}.parquet")
        pq.write_table(pa.table({"photo_id": ids[rows], "albums": pa.array([["album"]] * len(rows))}),
                       out / "photos" / f"part-{part}.parquet")
    return ids


def peak_memory(pid: int, stop: threading.Event, found: dict) -> None:
    """The largest sum of resident memory of a process and its descendants, sampled."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not stop.is_set():
        try:
            total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            found["peak"] = max(found.get("peak", 0), total)
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.2)


def run_cluster(out: Path, master: str, settings: list[str], events: Path) -> dict:
    command = [str(BIN / "facecluster"), "cluster", "--out", str(out), "--set", f"spark.master={master}",
               "--set", "spark.conf.spark.eventLog.enabled=true", "--set", f"spark.conf.spark.eventLog.dir={events}",
               "--set", "spark.conf.spark.eventLog.compress=false",
               *settings]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop, memory = threading.Event(), {}
    sampler = threading.Thread(target=peak_memory, args=(process.pid, stop, memory), daemon=True)
    sampler.start()
    output = process.communicate()[0]
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"facecluster cluster failed:\n{output[-4000:]}")
    return {"seconds": time.perf_counter() - started, "driver_peak_mb": memory.get("peak", 0) / 2**20,
            "output": output.strip().splitlines()[-1]}


def stage_figures(events: Path) -> list[dict]:
    """Per stage of the last application in the event log: name, run time summed over tasks,
    shuffle bytes written and read, peak execution memory of its largest task."""
    last = sorted(events.iterdir(), key=lambda p: p.stat().st_mtime)[-1]
    files = sorted(last.iterdir()) if last.is_dir() else [last]  # Spark 4 writes a folder of rolled files
    lines = [line for path in files if not path.name.startswith("appstatus") for line in path.read_text().splitlines()]
    stages, step_of = [], {}
    for line in lines:
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("Event") == "SparkListenerJobStart":
            what = (event.get("Properties") or {}).get("spark.job.description") or "reading and writing tables"
            step_of.update({stage: what.replace("facecluster cluster: ", "") for stage in event.get("Stage IDs", [])})
        if event.get("Event") != "SparkListenerStageCompleted":
            continue
        info = event["Stage Info"]
        values = {a["Name"]: a.get("Value", 0) for a in info.get("Accumulables", [])}
        stages.append({"stage": info["Stage ID"], "name": step_of.get(info["Stage ID"], "?"),
                       "tasks": info["Number of Tasks"],
                       "run_s": float(values.get("internal.metrics.executorRunTime", 0)) / 1000,
                       "shuffle_write_mb": float(values.get("internal.metrics.shuffle.write.bytesWritten", 0)) / 2**20,
                       "shuffle_read_mb": (float(values.get("internal.metrics.shuffle.read.remoteBytesRead", 0))
                                           + float(values.get("internal.metrics.shuffle.read.localBytesRead", 0))) / 2**20,
                       "peak_execution_mb": float(values.get("internal.metrics.peakExecutionMemory", 0)) / 2**20})
    return stages


def clustered_in(nearest: np.ndarray, stored: np.ndarray, ratio: np.ndarray, most: int) -> np.ndarray:
    """(n, w) which of the cells that store a face (cells_and_ratios) cluster it: a cell's task
    keeps at most `most` faces (kept_in_cell)."""
    from facecluster.grouping.cells import kept_in_cell

    kept = stored.copy()
    face, rank = np.nonzero(stored)
    cell = nearest[face, rank]
    for each in np.unique(cell):
        at = cell == each
        kept[face[at], rank[at]] = kept_in_cell(rank[at] == 0, ratio[face[at], rank[at]] - 1.0, most)
    return kept


def cell_recall(X: np.ndarray, faces_per_cell: int, k: int = 32, queries: int = 1000,
                within: float | None = None) -> dict:
    """Share of a sampled face's k nearest faces (brute force) stored in its home cell ("home"),
    and in any cell the face is clustered in ("any": the neighbours some cell clusters it with), with
    the centres cell_centres would train (k-means on up to 200,000 faces), cell_margin's copies
    and the cap on a cell task (clustered_in, most_faces); "home within" and "any within":
    of the neighbours closer than within only (the ones the clustering's rules count)."""
    import faiss

    from facecluster.grouping.cells import cell_margin, cells_and_ratios, cells_for, most_faces, train_cells

    rng = np.random.default_rng(0)
    n_cells = cells_for(len(X), faces_per_cell)
    if n_cells == 1:
        return {"home": 1.0, "any": 1.0, "home within": 1.0, "any within": 1.0}
    sample = X[rng.choice(len(X), min(len(X), 200_000), replace=False)]
    centres = train_cells(sample, n_cells)
    nearest, stored, ratio = cells_and_ratios(X, centres, cell_margin(sample, centres))
    clustered = np.where(clustered_in(nearest, stored, ratio, most_faces(faces_per_cell)), nearest, -1)
    asked = rng.choice(len(X), min(queries, len(X)), replace=False)
    squared, found = faiss.knn(X[asked], X, k + 1)
    own = np.where(clustered[asked] >= 0, clustered[asked], -2)
    where = clustered[found[:, 1:].ravel()].reshape(len(asked), k, -1)
    home = (where == own[:, None, :1]).any(axis=2)
    anywhere = (where[:, :, :, None] == own[:, None, None, :]).any(axis=(2, 3))
    close = np.sqrt(np.clip(squared[:, 1:], 0, None)) <= (np.inf if within is None else within)
    return {"home": float(home.mean()), "any": float(anywhere.mean()),
            "home within": float(home[close].mean()), "any within": float(anywhere[close].mean())}


def recall_table(args) -> None:
    """Home-cell recall on synthetic faces and on real runs' faces tables, for each cell size."""
    import pandas as pd

    from facecluster.recognition.thresholds import distances

    sets = {f"synthetic {size:,}": generate(size, DLIB_LIKE, seed=7)[0] for size in args.sizes}
    for root in args.runs:
        faces = pd.read_parquet(Path(root) / "faces", columns=["embedding", "model"])
        sets[f"{root} ({faces['model'].iloc[0]})"] = np.stack(faces["embedding"].to_numpy()).astype(np.float32)
    close = distances("dlib-resnet-v1").attach
    for name, X in sets.items():
        for faces_per_cell in args.faces_per_cell:
            recall = cell_recall(X, faces_per_cell, within=close)
            print(f"{name:<40} {len(X):>9,} faces, cells of {faces_per_cell:>7,}: recall@32 in the home cell "
                  f"{recall['home']:.3f} (within {close}: {recall['home within']:.3f}), in any of its cells "
                  f"{recall['any']:.3f} ({recall['any within']:.3f})", flush=True)


def scores(out: Path, ids: np.ndarray, truth: np.ndarray) -> tuple[dict, np.ndarray]:
    import pandas as pd

    from facecluster.measuring.metrics import pairwise_scores

    found = pd.read_parquet(out / "assignments", columns=["face_id", "person_id"]).set_index("face_id")["person_id"]
    labels = found.reindex(ids).to_numpy()
    return pairwise_scores(truth.tolist(), labels), labels


def component_table(args) -> None:
    """The largest connected component of each set's faces when mutual-reachability edges (over
    each face's 32 nearest, exact; min_samples 2) up to a distance are kept: how large the pieces
    of HDBSCAN's tree are when it is cut there."""
    import faiss
    import pandas as pd
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sets = {f"synthetic {size:,}": generate(size, DLIB_LIKE, seed=7)[0] for size in args.sizes}
    for root in args.runs:
        faces = pd.read_parquet(Path(root) / "faces", columns=["embedding"])
        sets[str(root)] = np.stack(faces["embedding"].to_numpy()).astype(np.float32)
    for name, X in sets.items():
        squared, found = faiss.knn(X, X, 33)
        distance = np.sqrt(np.clip(squared, 0, None))
        core = distance[:, 2]
        rows, cols = np.repeat(np.arange(len(X)), 32), found[:, 1:].ravel()
        reach = np.maximum(distance[:, 1:].ravel(), np.maximum(core[rows], core[cols]))
        for cut in (0.35, 0.38, 0.41):
            kept = reach <= cut
            graph = coo_matrix((np.ones(kept.sum()), (rows[kept], cols[kept])), shape=(len(X), len(X)))
            _, component = connected_components(graph, directed=False)
            print(f"{name:<40} {len(X):>9,} faces, mutual reachability <= {cut}: largest component "
                  f"{np.bincount(component).max():,} faces", flush=True)


def compare_runs(args) -> None:
    """A real set's kept run (benchmarks/real_photos.py --keep DIR: DIR/SET/out and
    DIR/SET/labels.csv) clustered by `knn` and by `distributed` at each cell size, in local mode:
    ARI between them, people, and the set's scores."""
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from real_photos import score

    for kept in args.runs:
        kept = Path(kept)
        labels = pd.read_csv(kept / "labels.csv")
        work = Path(tempfile.mkdtemp(prefix="compare-", dir=ROOT / ".cache"))
        try:
            found = {}
            for algorithm, faces_per_cell in [("knn", None)] + [("distributed", c) for c in args.faces_per_cell]:
                out = work / f"{algorithm}{faces_per_cell or ''}"
                for table in ("faces", "photos", "photo_status"):
                    shutil.copytree(kept / "out" / table, out / table)
                settings = ["--set", f"cluster.algorithm={algorithm}", "--set", "cluster.mode=full"]
                if faces_per_cell:
                    settings += ["--set", f"cluster.faces_per_cell={faces_per_cell}"]
                run_cluster(out, "local[2]", settings, work)
                assignments = pd.read_parquet(out / "assignments").set_index("face_id")
                found[out.name] = assignments.loc[assignments["clustered"], "person_id"].sort_index()
                report = score(out, labels, kept.name)
                pairwise = report["pairwise"]
                alone = -np.arange(len(found["knn"])) - 2
                one, other = found["knn"].to_numpy(), found[out.name].reindex(found["knn"].index).to_numpy()
                ari = adjusted_rand_score(np.where(one < 0, alone, one), np.where(other < 0, alone, other))
                print(f"{kept.name:<12} {out.name:<20} ARI vs knn {ari:.4f}, people {found[out.name].max() + 1:,}"
                      f" ({len(np.unique(other[other >= 0])):,} distinct), pairwise P {pairwise['precision']:.4f} "
                      f"R {pairwise['recall']:.4f} F {pairwise['f']:.4f}, mixed people {report['mixed_people']}",
                      flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def gate_table(args) -> None:
    import statistics

    import pandas as pd
    from pyspark.sql import functions as F

    from facecluster.core.runtime import batches_of_faces, start_spark
    from facecluster.core.settings import load_settings
    from facecluster.grouping.distributed import _batch_matrix, left_out_on_executors
    from facecluster.grouping.people_tables import extract_faces
    from facecluster.grouping.quality import clarity, left_out, min_clarity

    model = "dlib-resnet-v1"
    settings = load_settings(overrides=["spark.master=local[2]"])
    cluster = settings["cluster"]
    threshold = min_clarity(cluster["min_clarity"], model)

    def joined_back(faces):
        def reasons(batches):
            for batch in batches:
                face_clarity = clarity(_batch_matrix(batch), model)
                reason = left_out(batch["face_px"].to_numpy(dtype=np.float64),
                                  batch["det_score"].to_numpy(dtype=np.float64), face_clarity, cluster, threshold)
                yield pd.DataFrame({"face_id": batch["face_id"].to_numpy(), "clarity": face_clarity,
                                    "left_out": pd.Series(reason, dtype=object).replace("", None).to_numpy()})
        table = faces.select("face_id", "face_px", "det_score", "embedding").mapInPandas(
            reasons, "face_id string, clarity double, left_out string")
        return faces.join(table, "face_id")

    def as_column(faces):
        return left_out_on_executors(faces, cluster, model, set(), set())

    spark = start_spark(settings)
    work = Path(tempfile.mkdtemp(prefix="gate-", dir=ROOT / ".cache"))
    try:
        for size in args.sizes:
            X, _ = generate(size, DLIB_LIKE, seed=7)
            out = work / f"run{size}"
            write_archive(out, X)
            del X
            times: dict = {}
            for _ in range(3):
                for name, gate, batched in (("joined back, batches of 16", joined_back, False),
                                            ("a column, batches of 16", as_column, False),
                                            ("a column, batches of 10,000", as_column, True)):
                    started = time.perf_counter()
                    with batches_of_faces(spark) if batched else contextlib.nullcontext():
                        gated = gate(extract_faces(spark, str(out))).localCheckpoint(eager=True)
                    clustered = gated.where(F.col("left_out").isNull()).count()
                    times.setdefault(name, []).append(time.perf_counter() - started)
            base = statistics.median(times["joined back, batches of 16"])
            print(f"the quality gate on {size:,} faces ({clustered:,} clustered), local[2], median of 3:")
            for name, seconds in times.items():
                print(f"  {name:<30} {statistics.median(seconds):6.1f} s ({', '.join(f'{t:.1f}' for t in seconds)}); "
                      f"{statistics.median(seconds) / base:.2f} of joined back", flush=True)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", type=int, default=[500_000, 1_000_000, 2_000_000])
    parser.add_argument("--recall", action="store_true", help="only the home-cell recall table, no Spark")
    parser.add_argument("--components", action="store_true", help="only the largest components of a cut tree")
    parser.add_argument("--compare", action="store_true", help="kept real runs (--runs): knn against distributed")
    parser.add_argument("--gate", action="store_true", help="only the quality gate, joined back against a column")
    parser.add_argument("--runs", nargs="*", default=[], help="output roots whose faces enter the recall table")
    parser.add_argument("--faces-per-cell", type=int, nargs="+", default=[250_000])
    parser.add_argument("--compare-knn", nargs="*", type=int, default=[], help="sizes also clustered on the driver")
    parser.add_argument("--worker-memory", default="8g")
    parser.add_argument("--keep-labels", help="a folder: each run's person per face saved there (.npy)")
    parser.add_argument("--driver-memory", help="the driver's JVM heap (spark.driver.memory): a small one shows "
                                                "whether the driver's memory grows with the faces")
    args = parser.parse_args()
    if args.recall:
        return recall_table(args)
    if args.components:
        return component_table(args)
    if args.compare:
        return compare_runs(args)
    if args.gate:
        return gate_table(args)
    args.faces_per_cell = args.faces_per_cell[0]
    if args.keep_labels:
        Path(args.keep_labels).mkdir(parents=True, exist_ok=True)
    from sklearn.metrics import adjusted_rand_score

    work = Path(tempfile.mkdtemp(prefix="distributed-", dir=ROOT / ".cache"))
    try:
        with Standalone(work, args.worker_memory) as master:
            print(f"standalone cluster {master}: 2 workers x 1 core, {args.worker_memory} each; "
                  f"{os.cpu_count()} cores on this machine; driver heap {args.driver_memory or 'the default'}", flush=True)
            for size in args.sizes:
                X, truth = generate(size, DLIB_LIKE, seed=7)
                recall = cell_recall(X, args.faces_per_cell)["home"]
                out = work / f"run{size}"
                ids = write_archive(out, X)
                del X
                events = work / f"events{size}"
                events.mkdir()
                settings = ["--set", "cluster.algorithm=distributed", "--set", "cluster.mode=full",
                            "--set", f"cluster.faces_per_cell={args.faces_per_cell}",
                            "--set", "spark.conf.spark.executor.cores=1",
                            "--set", f"spark.conf.spark.executor.memory={args.worker_memory}",
                            "--set", "spark.conf.spark.sql.shuffle.partitions=32"]
                if args.driver_memory:
                    settings += ["--set", f"spark.conf.spark.driver.memory={args.driver_memory}"]
                done = run_cluster(out, master, settings, events)
                found, labels = scores(out, ids, truth)
                if args.keep_labels:
                    np.save(Path(args.keep_labels) / f"distributed{size}.npy", labels)
                print(f"\n{size:,} faces, distributed, faces_per_cell {args.faces_per_cell:,}: "
                      f"{done['seconds']:.0f} s, driver peak {done['driver_peak_mb']:.0f} MB, "
                      f"home-cell recall@32 {recall:.3f}, pairwise P {found['precision']:.4f} "
                      f"R {found['recall']:.4f} F {found['f']:.4f}\n  {done['output']}", flush=True)
                stages = stage_figures(events)
                total = {key: sum(s[key] for s in stages) for key in ("run_s", "shuffle_write_mb")}
                steps: dict = {}
                for stage in stages:  # in the order the steps first ran
                    total_of = steps.setdefault(stage["name"], {"stages": 0, "run_s": 0.0, "shuffle_write_mb": 0.0,
                                                                 "shuffle_read_mb": 0.0, "peak_execution_mb": 0.0})
                    total_of["stages"] += 1
                    for key in ("run_s", "shuffle_write_mb", "shuffle_read_mb"):
                        total_of[key] += stage[key]
                    total_of["peak_execution_mb"] = max(total_of["peak_execution_mb"], stage["peak_execution_mb"])
                for name, figures in steps.items():
                    print(f"  {name[:30]:<30} {figures['stages']:>3} stages {figures['run_s']:>8.1f} core-s  "
                          f"shuffle write {figures['shuffle_write_mb']:>8.1f} MB read {figures['shuffle_read_mb']:>8.1f} MB"
                          f"  peak execution {figures['peak_execution_mb']:>7.1f} MB")
                print(f"  all stages: {total['run_s']:.0f} core-s, shuffle write {total['shuffle_write_mb']:.0f} MB",
                      flush=True)
                if size in args.compare_knn:
                    driver = work / f"knn{size}"
                    shutil.copytree(out, driver, ignore=shutil.ignore_patterns("assignments", "people", "_*"))
                    knn = run_cluster(driver, "local[2]", ["--set", "cluster.algorithm=knn", "--set", "cluster.mode=full"],
                                      events)
                    knn_found, knn_labels = scores(driver, ids, truth)
                    if args.keep_labels:
                        np.save(Path(args.keep_labels) / f"knn{size}.npy", knn_labels)
                    alone = -np.arange(len(ids)) - 2
                    ari = adjusted_rand_score(np.where(knn_labels < 0, alone, knn_labels),
                                              np.where(labels < 0, alone, labels))
                    people = (len(np.unique(labels[labels >= 0])), len(np.unique(knn_labels[knn_labels >= 0])))
                    print(f"  knn on the driver (local[2]): {knn['seconds']:.0f} s, driver peak "
                          f"{knn['driver_peak_mb']:.0f} MB, pairwise P {knn_found['precision']:.4f} "
                          f"R {knn_found['recall']:.4f} F {knn_found['f']:.4f}; ARI distributed vs knn {ari:.4f}, "
                          f"people {people[0]:,} vs {people[1]:,} ({people[0] / people[1] - 1:+.2%})", flush=True)
                    shutil.rmtree(driver)
                shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
