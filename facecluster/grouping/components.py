"""Connected components of a graph too large for one machine, by rounds of DataFrame operations.

Large-star and small-star rounds (Kiveris, Lattanzi, Mirrokni, Rastogi and Vassilvitskii,
"Connected Components in MapReduce and Beyond", SoCC 2014): each round links every node to the
smallest node it knows of, so that the graph shrinks into stars, each centred on its component's
smallest node, in O(log^2 n) rounds. Written with joins and group-bys only, because Spark packages
that need a jar (GraphFrames) cannot be assumed; nothing is collected to the driver but one
count per round.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

MAX_ROUNDS = 200


def _both_ways(edges: DataFrame) -> DataFrame:
    return edges.unionByName(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst"))).distinct()


def _large_star(edges: DataFrame) -> DataFrame:
    """Each node's larger neighbours are linked to the smallest node of its neighbourhood."""
    both = _both_ways(edges)
    smallest = both.groupBy("src").agg(F.least(F.min("dst"), F.col("src")).alias("m"))
    return (both.where(F.col("dst") > F.col("src")).join(smallest, "src")
            .select(F.col("dst").alias("src"), F.col("m").alias("dst")).distinct())


def _small_star(edges: DataFrame) -> DataFrame:
    """Each node and its smaller neighbours are linked to the smallest of them."""
    down = _both_ways(edges).where(F.col("dst") < F.col("src"))
    smallest = down.groupBy("src").agg(F.min("dst").alias("m"))
    linked = down.join(smallest, "src").select(F.col("dst").alias("src"), F.col("m").alias("dst"))
    own = smallest.select("src", F.col("m").alias("dst"))
    return linked.unionByName(own).where(F.col("src") != F.col("dst")).distinct()


def _is_star_forest(edges: DataFrame) -> bool:
    """Every edge points from a node to its component's smallest node: no node is both."""
    down = _both_ways(edges).where(F.col("dst") < F.col("src"))
    return down.select(F.col("dst").alias("node")).intersect(down.select(F.col("src").alias("node"))).isEmpty()


def connected_components(edges: DataFrame, checkpoint=None) -> DataFrame:
    """edges (src, dst: long, undirected) -> (node, component): each node of an edge with the
    smallest node of its component. checkpoint: how a round's edges are cut from their lineage
    (default DataFrame.localCheckpoint; a job on a cluster gives one that writes to its output
    root, which survives a lost executor)."""
    checkpoint = checkpoint or (lambda frame: frame.localCheckpoint(eager=True))
    edges = checkpoint(edges.select(F.col("src").cast("long"), F.col("dst").cast("long"))
                       .where(F.col("src") != F.col("dst")))
    for _ in range(MAX_ROUNDS):
        edges = checkpoint(_small_star(checkpoint(_large_star(edges))))
        if _is_star_forest(edges):
            break
    else:
        raise RuntimeError(f"connected components did not settle in {MAX_ROUNDS} rounds")
    down = _both_ways(edges).where(F.col("dst") < F.col("src"))
    leaves = down.select(F.col("src").alias("node"), F.col("dst").alias("component"))
    centres = down.select(F.col("dst").alias("node"), F.col("dst").alias("component"))
    return leaves.unionByName(centres).distinct()
