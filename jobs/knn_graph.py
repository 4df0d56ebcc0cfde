"""knn_graph: the k nearest neighbours of every face, searched on the executors.

The first stage of clustering past one machine (docs/benchmarks.md, "Past one machine"): the faces are
split by an inverted file. k-means centres are trained on a sample on the driver (faiss); each
face is stored in the list of its nearest centre and looked for in the lists of its `probes`
nearest centres. One task searches one list exactly, and a face's neighbours from its probed
lists are merged into its k nearest. With probes = lists the graph is exact; fewer probes
trade recall for work (each face is shuffled probes + 1 times).

    spark-submit jobs/knn_graph.py --out OUT [--k 32] [--lists auto] [--probes 16]

Writes OUT/knn_graph: face_id, neighbour_id, distance; k rows per face (fewer only when the
lists a face was looked for in hold fewer other faces: few probes on a small archive).
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from facecluster.core.catalogue import FACES, KNN_GRAPH
from facecluster.core.job_arguments import job_parser
from facecluster.core.runtime import batches_of_faces, parse_job_arguments, table_path, use_driver_cpus, user_errors
from facecluster.output.session import job_session
from facecluster.core.tables import write_table

GRAPH = KNN_GRAPH.name
SAMPLE = 100_000  # faces the k-means centres are trained on
ROUTED_SCHEMA = "list_id int, face_id string, embedding array<float>, stored boolean"
EDGE_SCHEMA = "face_id string, neighbour_id string, distance float"


def lists_for(n_faces: int) -> int:
    """About 4 sqrt(N) lists, faiss's rule of thumb for an inverted file: a list of a million
    faces' graph holds about 250 faces, searched by about probes x 250 queries."""
    return int(min(65_536, max(1, round(4 * math.sqrt(n_faces)))))


def extract_embeddings(spark: SparkSession, out: str) -> DataFrame:
    from facecluster.grouping.clustering import check_one_model

    faces = spark.read.parquet(FACES.path(out)).select("face_id", "embedding", "model")
    check_one_model(r.model for r in faces.select("model").distinct().collect())
    return faces.drop("model")


def train_centres(sample: np.ndarray, n_lists: int, seed: int = 0) -> np.ndarray:
    import faiss

    n_lists = min(n_lists, len(sample))
    kmeans = faiss.Kmeans(sample.shape[1], n_lists, niter=20, seed=seed, max_points_per_centroid=256)
    kmeans.train(np.ascontiguousarray(sample, dtype=np.float32))
    return kmeans.centroids


def route_faces(batches: Iterator[pd.DataFrame], centres: np.ndarray, probes: int) -> Iterator[pd.DataFrame]:
    """Each face: a stored row in its nearest list, a query row in each of its probes nearest."""
    import faiss

    index = faiss.IndexFlatL2(centres.shape[1])
    index.add(centres)
    for batch in batches:
        X = np.stack(batch["embedding"].to_numpy()).astype(np.float32)
        _, nearest = index.search(X, probes)
        stored = pd.DataFrame({"list_id": nearest[:, 0], "face_id": batch["face_id"].to_numpy(),
                               "embedding": list(X), "stored": True})
        queries = pd.DataFrame({"list_id": nearest.ravel(), "face_id": np.repeat(batch["face_id"].to_numpy(), probes),
                                "embedding": list(np.repeat(X, probes, axis=0)), "stored": False})
        yield pd.concat([stored, queries], ignore_index=True).astype({"list_id": "int32"})


def search_list(rows: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k nearest stored faces of every query face of one list, the face itself excluded."""
    import faiss

    stored, queries = rows[rows["stored"]], rows[~rows["stored"]]
    if stored.empty or queries.empty:
        return pd.DataFrame({"face_id": [], "neighbour_id": [], "distance": []})
    base = np.stack(stored["embedding"].to_numpy()).astype(np.float32)
    asked = np.stack(queries["embedding"].to_numpy()).astype(np.float32)
    squared, found = faiss.knn(asked, base, min(k + 1, len(base)))
    face_ids = np.repeat(queries["face_id"].to_numpy(), found.shape[1])
    neighbour_ids = stored["face_id"].to_numpy()[found.ravel()]
    edges = pd.DataFrame({"face_id": face_ids, "neighbour_id": neighbour_ids,
                          "distance": np.sqrt(np.clip(squared.ravel(), 0, None)).astype(np.float32)})
    return edges[edges["face_id"] != edges["neighbour_id"]]


def nearest_k(edges: DataFrame, k: int) -> DataFrame:
    """A face's k nearest over all the lists it was looked for in."""
    rank = F.row_number().over(Window.partitionBy("face_id").orderBy("distance", "neighbour_id"))
    return edges.withColumn("rank", rank).where(F.col("rank") <= k).drop("rank")


def knn_graph(spark: SparkSession, out: str, k: int = 32, n_lists: int | str = "auto", probes: int = 16) -> dict:
    use_driver_cpus(spark)  # the k-means centres are trained on the driver
    faces = extract_embeddings(spark, out)
    n_faces = faces.count()
    n_lists = lists_for(n_faces) if n_lists == "auto" else int(n_lists)
    fraction = min(1.0, 1.2 * SAMPLE / max(1, n_faces))
    sample = faces.sample(fraction=fraction, seed=0).limit(SAMPLE).select("embedding").toPandas()["embedding"]
    centres = train_centres(np.stack(sample.to_numpy()), n_lists)
    probes = min(probes, len(centres))
    routed = faces.mapInPandas(functools.partial(route_faces, centres=centres, probes=probes), ROUTED_SCHEMA)

    def search(rows: pd.DataFrame) -> pd.DataFrame:
        return search_list(rows, k)

    edges = routed.groupBy("list_id").applyInPandas(search, EDGE_SCHEMA)
    with batches_of_faces(spark):
        write_table(nearest_k(edges, k), out, GRAPH)
    return {"faces": n_faces, "lists": len(centres), "probes": probes, "k": k}


def build_parser() -> argparse.ArgumentParser:
    return job_parser("knn-graph", __doc__)


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, settings = parse_job_arguments(parser, argv)
    if args.k < 1 or args.probes < 1 or not (args.lists == "auto" or args.lists.isdigit() and int(args.lists) >= 1):
        parser.exit(2, "knn-graph: --k, --probes and --lists must be positive (--lists may be auto)\n")
    with job_session(settings, args.out, "knn-graph") as spark:
        try:
            done = knn_graph(spark, args.out, args.k, args.lists, args.probes)
        except ValueError as exc:
            parser.exit(2, f"knn-graph: {exc}\n")
    print(f"knn-graph: {done['faces']} faces, {done['k']} neighbours each, {done['lists']} lists, "
          f"{done['probes']} probed per face -> {table_path(args.out, GRAPH)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
