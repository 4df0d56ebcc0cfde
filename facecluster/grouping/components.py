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
    """Every edge points from a node to its component's smallest node: no node is both a leaf
    and a centre, and no leaf has two centres."""
    down = _both_ways(edges).where(F.col("dst") < F.col("src"))
    return (down.select(F.col("dst").alias("node")).intersect(down.select(F.col("src").alias("node"))).isEmpty()
            and down.groupBy("src").count().where(F.col("count") > 1).isEmpty())


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


def minimum_spanning_forest(edges: DataFrame, checkpoint=None) -> DataFrame:
    """edges (src, dst: long, weight: double, undirected) -> the edges of a minimum spanning
    forest (src < dst, weight), by Borůvka's rounds: every component takes its cheapest edge
    out, the components those edges link become one (connected_components over the components),
    and the edges inside a component are dropped, until no edge leaves any component; at most
    log2(nodes) rounds. Ties go by (weight, src, dst), so the chosen edges never close a cycle."""
    checkpoint = checkpoint or (lambda frame: frame.localCheckpoint(eager=True))
    pairs = (edges.where(F.col("src") != F.col("dst"))
             .select(F.least("src", "dst").cast("long").alias("a"), F.greatest("src", "dst").cast("long").alias("b"),
                     F.col("weight").cast("double"))
             .groupBy("a", "b").agg(F.min("weight").alias("weight")))
    pairs = checkpoint(pairs)
    label = checkpoint(pairs.select(F.col("a").alias("node")).union(pairs.select(F.col("b").alias("node")))
                       .distinct().withColumn("component", F.col("node")))
    forest = None
    for _ in range(MAX_ROUNDS):
        crossing = (pairs.join(label.select(F.col("node").alias("a"), F.col("component").alias("ca")), "a")
                    .join(label.select(F.col("node").alias("b"), F.col("component").alias("cb")), "b")
                    .where(F.col("ca") != F.col("cb")))
        pairs = checkpoint(crossing.select("a", "b", "weight"))
        if pairs.isEmpty():
            break
        key = F.struct("weight", "a", "b").alias("key")
        ends = crossing.select(F.col("ca").alias("component"), key).unionByName(
            crossing.select(F.col("cb").alias("component"), key))
        chosen = checkpoint(ends.groupBy("component").agg(F.min("key").alias("key"))
                            .select("key.a", "key.b", "key.weight").distinct())
        forest = chosen if forest is None else checkpoint(forest.unionByName(chosen))
        linked = (chosen.join(label.select(F.col("node").alias("a"), F.col("component").alias("src")), "a")
                  .join(label.select(F.col("node").alias("b"), F.col("component").alias("dst")), "b")
                  .select("src", "dst"))
        merged = connected_components(linked, checkpoint).withColumnRenamed("component", "merged")
        label = checkpoint(label.join(merged, label["component"] == merged["node"], "left")
                           .select(label["node"], F.coalesce("merged", label["component"]).alias("component")))
    else:
        raise RuntimeError(f"the spanning forest did not settle in {MAX_ROUNDS} rounds")
    if forest is None:
        return edges.sparkSession.createDataFrame([], "src long, dst long, weight double")
    return forest.select(F.col("a").alias("src"), F.col("b").alias("dst"), "weight")
