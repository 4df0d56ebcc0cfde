"""Connected components by rounds of DataFrame operations, against scipy on one machine."""
import numpy as np
import pytest

from facecluster.grouping.components import connected_components

pytestmark = pytest.mark.spark


def scipy_components(edges: np.ndarray) -> dict:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_cc

    nodes = np.unique(edges)
    index = {node: i for i, node in enumerate(nodes)}
    rows = [index[a] for a in edges[:, 0]]
    cols = [index[b] for b in edges[:, 1]]
    _, label = scipy_cc(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(nodes), len(nodes))),
                        directed=False)
    smallest = {}
    for node, component in zip(nodes, label):
        smallest[component] = min(smallest.get(component, node), node)
    return {int(node): int(smallest[component]) for node, component in zip(nodes, label)}


def test_components_equal_scipys_on_a_random_graph_with_chains(spark):
    rng = np.random.default_rng(3)
    random_edges = rng.integers(0, 400, size=(260, 2))
    chain = np.stack([np.arange(1000, 1060), np.arange(1001, 1061)], axis=1)[rng.permutation(60)]  # a long path
    edges = np.concatenate([random_edges, chain, [[7, 7]]])  # and a self loop
    frame = spark.createDataFrame([(int(a), int(b)) for a, b in edges], "src long, dst long")
    found = {row["node"]: row["component"] for row in connected_components(frame).collect()}
    expected = scipy_components(edges[edges[:, 0] != edges[:, 1]])
    assert found == expected
    assert len(set(expected.values())) > 10 and expected[1060] == 1000


def test_the_spanning_forest_equals_scipys_minimum_spanning_tree(spark):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    from facecluster.grouping.components import minimum_spanning_forest

    rng = np.random.default_rng(4)
    edges = rng.integers(0, 120, size=(400, 2))
    edges = edges[edges[:, 0] != edges[:, 1]]
    weight = rng.permutation(len(edges)) / len(edges) + 0.01  # distinct weights: one minimum forest
    frame = spark.createDataFrame([(int(a), int(b), float(w)) for (a, b), w in zip(edges, weight)],
                                  "src long, dst long, weight double")
    found = minimum_spanning_forest(frame).toPandas()
    cheapest = {}
    for (a, b), w in zip(edges, weight):  # one undirected edge per pair, its cheapest weight
        key = (int(min(a, b)), int(max(a, b)))
        cheapest[key] = min(cheapest.get(key, np.inf), w)
    rows, cols = zip(*cheapest)
    tree = minimum_spanning_tree(coo_matrix((list(cheapest.values()), (rows, cols)), shape=(120, 120))).tocoo()
    expected = {(min(a, b), max(a, b)) for a, b in zip(tree.row, tree.col)}
    assert {(int(a), int(b)) for a, b in zip(found["src"], found["dst"])} == expected
    assert found["weight"].sum() == pytest.approx(tree.data.sum())
