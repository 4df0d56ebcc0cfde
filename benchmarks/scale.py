"""Clustering at scale: exact HDBSCAN (the hdbscan library) against kNN-graph HDBSCAN.

    .venv/bin/python benchmarks/scale.py fit                 # fit the generator to LFW dlib distances, draw the PNG
    .venv/bin/python benchmarks/scale.py run --sizes 10000 100000 1000000 --dims 128 512
    .venv/bin/python benchmarks/scale.py job --size 1000000     # the cluster job: read, cluster, write
    .venv/bin/python benchmarks/scale.py graph --size 100000 --probes 8 32   # the kNN graph on Spark's executors
    python3 benchmarks/scale.py run --sizes 1000000 --dims 128 512 --exact-max 0 --device cuda   # on a GPU

`fit` reads the cached LFW embeddings (benchmarks/lfw.py embed-all), measures same-person and
different-person distances (one face per photo), fits facecluster.measuring.synthetic to them and saves
docs/synthetic_vs_lfw.png (both histograms side by side) and .cache/synthetic_space.json.

`run` generates synthetic faces for each size and dimension and clusters them, each in a child
process (peak memory is that process's max RSS): kNN-graph HDBSCAN always, exact HDBSCAN up
to --exact-max faces (the library runs Prim's algorithm over all pairs above 60 dimensions:
hours at 100K). Prints wall time per stage, peak memory, kNN recall (against exact search on
1,000 faces, by brute force), agreement with exact (ARI) where exact ran, and pairwise F against the truth.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.measuring.synthetic import FaceSpace, fit_to_distances, generate, pair_distances  # noqa: E402

SPACE_FILE = ROOT / ".cache" / "synthetic_space.json"


def lfw_distances(cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    from facecluster.measuring.evaluation import central_faces, person_from_folder

    faces = central_faces(pd.read_parquet(cache / "faces"), pd.read_parquet(cache / "photo_status"))
    X = np.stack(faces["embedding"].to_numpy()).astype(np.float32)
    labels = pd.factorize(person_from_folder(faces["path"]))[0]
    same, different = pair_distances(X, labels, pairs=20000)
    return same, different, X, labels


def fit(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    same, different, X, _ = lfw_distances(Path(args.cache))
    space = fit_to_distances(same, different, dimension=X.shape[1])
    SPACE_FILE.parent.mkdir(exist_ok=True)
    SPACE_FILE.write_text(json.dumps(asdict(space)))
    Xs, labels = generate(20000, space)
    s_same, s_different = pair_distances(Xs, labels, pairs=20000)
    print(f"LFW dlib: same person median {np.median(same):.3f} (sd {same.std():.3f}), different "
          f"{np.median(different):.3f} (sd {different.std():.3f})")
    print(f"synthetic: same person median {np.median(s_same):.3f} (sd {s_same.std():.3f}), different "
          f"{np.median(s_different):.3f} (sd {s_different.std():.3f}); fitted {space}")
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    bins = np.linspace(0, 1.4, 71)
    for ax, (title, a, b) in zip(axes, [("LFW, dlib embeddings", same, different),
                                        ("synthetic (facecluster.measuring.synthetic)", s_same, s_different)]):
        ax.hist(a, bins=bins, density=True, alpha=0.6, label="same person")
        ax.hist(b, bins=bins, density=True, alpha=0.6, label="different people")
        ax.set_title(title)
        ax.set_xlabel("Euclidean distance between unit embeddings")
        ax.legend()
    figure.tight_layout()
    figure.savefig(ROOT / "docs" / "synthetic_vs_lfw.png", dpi=110)
    print(f"saved {ROOT / 'docs' / 'synthetic_vs_lfw.png'}")


def child(size: int, dim: int, method: str, device: str = "auto") -> dict:
    from facecluster.measuring.metrics import pairwise_scores

    space = FaceSpace(**{**json.loads(SPACE_FILE.read_text()), "dimension": dim})
    X, truth = generate(size, space, seed=size + dim)
    started = time.perf_counter()
    result: dict = {}
    if method == "exact":
        import hdbscan

        model = hdbscan.HDBSCAN(min_cluster_size=2, min_samples=2, gen_min_span_tree=True,
                                core_dist_n_jobs=1).fit(X.astype(np.float64))
        labels = model.labels_
        tree = model.minimum_spanning_tree_.to_numpy()
        result["tree_weight"] = float(tree[:, 2].sum())
        result["seconds"] = time.perf_counter() - started
        result["stages"] = {"all": result["seconds"]}
    else:
        from facecluster.grouping.knn_hdbscan import KnnHDBSCAN, knn_device

        result["device"] = knn_device(device)
        model = KnnHDBSCAN(min_cluster_size=2, min_samples=2, device=device).fit(X)
        labels = model.labels_
        result["tree_weight"] = float(model.minimum_spanning_tree_[:, 2].sum())
        result["stages"] = model.timings_
        result["joining_edges"] = model.joining_edges_
        result["seconds"] = time.perf_counter() - started
    # Memory and time of the clustering: the recall check below is no part of it.
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if method == "knn":
        result["recall"] = knn_recall(X, model.neighbours_)
    result["labels_file"] = str(ROOT / ".cache" / f"labels-{size}-{dim}-{method}.npy")
    np.save(result["labels_file"], labels)
    result["people"] = int(len(set(labels.tolist()) - {-1}))
    result["noise"] = float(np.mean(labels == -1))
    result["f"] = pairwise_scores(truth.tolist(), labels)["f"]
    result["true_people"] = int(len(set(truth.tolist())))
    return result


def knn_recall(X: np.ndarray, neighbours: np.ndarray, queries: int = 1000) -> float:
    """Share of the true k nearest neighbours that the graph holds, on a sample of faces; the
    truth by exact search (TorchIndex on the CPU), so that it depends on no faiss index."""
    from facecluster.grouping.knn_hdbscan import TorchIndex

    k = neighbours.shape[1]
    rows = np.random.default_rng(0).choice(len(X), size=min(queries, len(X)), replace=False)
    _, truth = TorchIndex(X, device="cpu").search(rows, k)
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, neighbours[rows])]))


def run(args) -> None:
    from sklearn.metrics import adjusted_rand_score

    print(f"{'faces':>9} {'dim':>4} {'method':>10} {'seconds':>8} {'stages (s)':>34} {'peak MB':>8} "
          f"{'kNN recall':>10} {'ARI vs exact':>12} {'tree weight':>12} {'people':>8} {'noise':>6} {'F':>6}")
    for dim in args.dims:
        for size in args.sizes:
            results = {}
            for method in (["exact"] if size <= args.exact_max else []) + ["knn"]:
                done = subprocess.run([sys.executable, __file__, "child", str(size), str(dim), method, args.device],
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"{size:>9} {dim:>4} {method:>6} failed: {done.stderr[-800:]}")
                    continue
                results[method] = json.loads(done.stdout.strip().splitlines()[-1])
            exact = results.get("exact")
            for method, r in results.items():
                ari = adjusted_rand_score(np.load(exact["labels_file"]), np.load(r["labels_file"])) if exact else None
                stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())
                name = f"{method} ({r['device']})" if "device" in r else method
                print(f"{size:>9} {dim:>4} {name:>10} {r['seconds']:>8.1f} {stages:>34} {r['peak_mb']:>8.0f} "
                      f"{r.get('recall', float('nan')):>10.3f} {ari if ari is not None else float('nan'):>12.4f} "
                      f"{r['tree_weight']:>12.2f} {r['people']:>8} {r['noise']:>6.3f} {r['f']:>6.3f}", flush=True)
            if "exact" not in results and size > args.exact_max:
                print(f"{size:>9} {dim:>4}  exact not run: Prim over all pairs, about "
                      f"{63 * (size / 10000) ** 2 / 3600:.1f} h at the library's measured 63 s per 10K")


def job(args) -> None:
    """The cluster job (jobs/cluster.py) end to end on synthetic faces written as a faces table:
    read into one float32 matrix, cluster, write assignments and people."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from facecluster.core.runtime import start_spark
    from facecluster.core.settings import load_settings
    from facecluster.jobs import cluster

    space = FaceSpace(**{**json.loads(SPACE_FILE.read_text()), "dimension": args.dim})
    X, truth = generate(args.size, space, seed=7)
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as work:
        out = Path(work)
        ids = np.char.add("face", np.arange(args.size).astype(str))
        (out / "faces").mkdir()
        (out / "photos").mkdir()
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), args.dim).cast(pa.list_(pa.float32()))
        pq.write_table(pa.table({"face_id": ids, "photo_id": ids, "face_px": np.full(args.size, 100.0, np.float32),
                                 "det_score": np.ones(args.size, np.float32), "embedding": embedding, "model": np.full(args.size, "dlib-resnet-v1")}),
                       out / "faces" / "part-0.parquet")
        pq.write_table(pa.table({"photo_id": ids, "albums": pa.array([["album"]] * args.size)}),
                       out / "photos" / "part-0.parquet")
        settings = load_settings(overrides=["cluster.algorithm=knn"])
        spark = start_spark(settings)
        timings = {}
        started = time.perf_counter()
        meta, matrix = cluster.to_matrix(cluster.extract_faces(spark, str(out)).toArrow())
        timings["read into a float32 matrix"] = time.perf_counter() - started
        started = time.perf_counter()
        assignments, people = cluster.cluster_faces(meta, matrix, settings["cluster"], "bench")
        timings["cluster (kNN HDBSCAN, split, prune, people)"] = time.perf_counter() - started
        started = time.perf_counter()
        cluster.write_people_tables(spark, str(out), assignments, people)
        timings["write assignments and people"] = time.perf_counter() - started
        from facecluster.measuring.metrics import pairwise_scores

        generated_order = assignments["face_id"].str[len("face"):].astype(int).to_numpy()  # rows come sorted by face_id
        f = pairwise_scores(truth[generated_order].tolist(), assignments["person_id"].to_numpy())["f"]
        print(f"cluster job on {args.size:,} synthetic {args.dim}-d faces: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
              + f"; {len(people):,} people, pairwise F {f:.3f}; driver peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        spark.stop()


def graph(args) -> None:
    """The kNN graph searched on Spark's executors (jobs/knn_graph.py, Spark local mode with
    conf/local.yaml) on synthetic faces: wall time and recall for each number of probes."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from facecluster.core.runtime import start_spark
    from facecluster.core.settings import load_settings
    from facecluster.jobs.knn_graph import knn_graph

    space = FaceSpace(**{**json.loads(SPACE_FILE.read_text()), "dimension": args.dim})
    X, _ = generate(args.size, space, seed=7)
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as work:
        out = Path(work)
        (out / "faces").mkdir()
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), args.dim).cast(pa.list_(pa.float32()))
        pq.write_table(pa.table({"face_id": np.arange(args.size).astype(str), "embedding": embedding,
                                 "model": np.full(args.size, "dlib-resnet-v1")}), out / "faces" / "part-0.parquet")
        spark = start_spark(load_settings())
        for probes in args.probes:
            started = time.perf_counter()
            done = knn_graph(spark, str(out), k=32, probes=probes)
            seconds = time.perf_counter() - started
            edges = pq.read_table(out / "knn_graph", columns=["face_id", "neighbour_id"]).to_pandas()
            neighbours = np.full((args.size, 32), -1, dtype=np.int64)
            face = edges["face_id"].astype(np.int64).to_numpy()
            order = np.argsort(face, kind="stable")
            face, neighbour = face[order], edges["neighbour_id"].astype(np.int64).to_numpy()[order]
            slot = np.arange(len(face)) - np.searchsorted(face, face)
            neighbours[face, slot] = neighbour
            print(f"{args.size:,} {args.dim}-d faces, {done['lists']} lists, {probes} probes: {seconds:.1f} s, "
                  f"recall {knn_recall(X, neighbours):.3f} (Spark local mode, {os.cpu_count()} cores)", flush=True)
        spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit")
    p.add_argument("--cache", default=str(ROOT / ".cache" / "lfw_dlib"))
    p.set_defaults(run=fit)
    p = sub.add_parser("run")
    p.add_argument("--sizes", nargs="+", type=int, default=[10000, 100000, 1000000])
    p.add_argument("--dims", nargs="+", type=int, default=[128, 512])
    p.add_argument("--exact-max", type=int, default=20000)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the kNN graph is searched")
    p.set_defaults(run=run)
    p = sub.add_parser("graph")
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--probes", nargs="+", type=int, default=[8, 32])
    p.set_defaults(run=graph)
    p = sub.add_parser("job")
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.set_defaults(run=job)
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:6])))
        return
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
