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
