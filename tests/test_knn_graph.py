"""The kNN graph searched on the executors (jobs/knn_graph.py) against exact search on one machine."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from facecluster.measuring.synthetic import FaceSpace, generate

pytestmark = pytest.mark.spark

DLIB_LIKE = FaceSpace(dimension=128, common=2.70, noise=0.227, noise_spread=0.2, common_spread=0.1)


def write_faces(root, X, model="dlib-resnet-v1"):
    ids = [f"face{i:05d}" for i in range(len(X))]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1]).cast(pa.list_(pa.float32()))
    (root / "faces").mkdir(parents=True)
    pq.write_table(pa.table({"face_id": ids, "embedding": embedding, "model": [model] * len(X)}),
                   root / "faces" / "part-0.parquet")
    return np.array(ids)


def graph_of(spark, root, ids):
    """Neighbour rows from the knn_graph table, in the order of ids, nearest first (a face
    with no neighbours found: an empty row)."""
    edges = spark.read.parquet(str(root / "knn_graph")).toPandas().sort_values(["face_id", "distance", "neighbour_id"])
    position = {face: i for i, face in enumerate(ids)}
    rows = edges.groupby("face_id")["neighbour_id"].apply(lambda n: [position[f] for f in n])
    return [rows.get(face, []) for face in ids], edges


def test_with_every_list_probed_the_graph_is_exact(spark, tmp_path):
    from facecluster.grouping.knn_hdbscan import KnnIndex
    from facecluster.jobs.knn_graph import knn_graph

    X, _ = generate(3000, DLIB_LIKE, seed=3)
    ids = write_faces(tmp_path, X)
    done = knn_graph(spark, str(tmp_path), k=8, n_lists=12, probes=12)
    assert done == {"faces": 3000, "lists": 12, "probes": 12, "k": 8}
    found, edges = graph_of(spark, tmp_path, ids)
    expected_distances, expected = KnnIndex(X, exact=True).search(np.arange(len(X)), 8)
    assert all(len(row) == 8 for row in found) and not (edges["face_id"] == edges["neighbour_id"]).any()
    assert np.mean([len(set(a) & set(b)) / 8 for a, b in zip(found, expected)]) >= 0.999  # float ties aside
    assert np.allclose(np.sort(edges.groupby("face_id")["distance"].max().to_numpy()),
                       np.sort(expected_distances[:, -1]), atol=1e-4)


def test_fewer_probes_cost_recall_not_correctness(spark, tmp_path):
    from facecluster.grouping.knn_hdbscan import KnnIndex
    from facecluster.jobs.knn_graph import knn_graph

    X, _ = generate(3000, DLIB_LIKE, seed=4)
    ids = write_faces(tmp_path, X)
    _, expected = KnnIndex(X, exact=True).search(np.arange(len(X)), 8)
    recall = {}
    for probes in (1, 6):
        knn_graph(spark, str(tmp_path), k=8, n_lists=24, probes=probes)
        found, edges = graph_of(spark, tmp_path, ids)
        assert (edges.groupby("face_id").size() <= 8).all()
        recall[probes] = np.mean([len(set(a) & set(b)) / 8 for a, b in zip(found, expected)])
    assert recall[1] < recall[6] <= 1.0


def test_faces_of_two_models_are_refused(spark, tmp_path):
    from facecluster.jobs.knn_graph import knn_graph

    X, _ = generate(200, DLIB_LIKE, seed=5)
    write_faces(tmp_path / "a", X[:100])
    write_faces(tmp_path / "b", X[100:], model="facenet-vggface2")
    (tmp_path / "run").mkdir()
    (tmp_path / "a" / "faces").rename(tmp_path / "run" / "faces")
    (tmp_path / "b" / "faces" / "part-0.parquet").rename(tmp_path / "run" / "faces" / "part-1.parquet")
    with pytest.raises(ValueError, match="different models"):
        knn_graph(spark, str(tmp_path / "run"))
