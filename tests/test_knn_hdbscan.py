"""kNN-graph HDBSCAN keeps the exact answer (the hdbscan library) on faces shaped like real ones."""
import numpy as np
import pytest

from facecluster.grouping.knn_hdbscan import KnnHDBSCAN
from facecluster.measuring.synthetic import FaceSpace, generate, identity_sizes, pair_distances

# Fitted to dlib's LFW distances by benchmarks/scale.py fit (kept here so the test needs no cache).
DLIB_LIKE = FaceSpace(dimension=128, common=2.70, noise=0.227, noise_spread=0.2, common_spread=0.1)


def exact(X):
    import hdbscan

    model = hdbscan.HDBSCAN(min_cluster_size=2, min_samples=2, gen_min_span_tree=True, core_dist_n_jobs=1)
    model.fit(X.astype(np.float64))
    return model.labels_, model.minimum_spanning_tree_.to_numpy()[:, 2].sum()


def test_identity_sizes_are_heavy_tailed_with_singletons():
    sizes = identity_sizes(20000, singleton_share=0.3)
    assert sizes.sum() == 20000
    assert (sizes == 1).sum() == 6000
    assert sizes.max() >= 50 and np.median(sizes[sizes > 1]) <= 3


def test_generated_distances_separate_people_like_faces():
    X, labels = generate(5000, DLIB_LIKE)
    assert np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    same, different = pair_distances(X, labels, 3000)
    assert 0.25 < np.median(same) < 0.435 < np.median(different) < 0.65  # 0.435: dlib's threshold on LFW


def test_knn_graph_hdbscan_agrees_with_exact_hdbscan():
    from sklearn.metrics import adjusted_rand_score

    X, _ = generate(10000, DLIB_LIKE, seed=1)
    expected_labels, expected_weight = exact(X)
    model = KnnHDBSCAN(min_cluster_size=2, min_samples=2, k=32).fit(X)
    assert model.minimum_spanning_tree_.shape == (len(X) - 1, 3)
    weight = model.minimum_spanning_tree_[:, 2].sum()
    assert abs(weight - expected_weight) / expected_weight <= 1e-4
    assert adjusted_rand_score(expected_labels, model.labels_) >= 0.98
    people, expected_people = len(set(model.labels_) - {-1}), len(set(expected_labels) - {-1})
    assert abs(people - expected_people) <= 0.02 * expected_people
    assert abs(np.mean(model.labels_ == -1) - np.mean(expected_labels == -1)) <= 0.02


def test_a_graph_that_falls_apart_is_joined_with_real_edges():
    # Far-apart tight groups of 6 faces with k = 3: every group is its own kNN component.
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 64))
    X = np.repeat(centres, 6, axis=0) + rng.normal(size=(180, 64)) * 0.01
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    expected_labels, expected_weight = exact(X)
    model = KnnHDBSCAN(min_cluster_size=2, min_samples=2, k=3).fit(X)
    assert model.joining_edges_ >= 29  # 30 components need at least 29 edges to become one tree
    assert np.isfinite(model.minimum_spanning_tree_[:, 2]).all()
    assert model.minimum_spanning_tree_[:, 2].sum() == pytest.approx(expected_weight, rel=1e-4)
    assert len(set(model.labels_) - {-1}) == 30
    assert (model.labels_ == expected_labels).all() or len(set(zip(model.labels_, expected_labels))) == 30


def test_components_search_from_their_rim_only(monkeypatch):
    """Large components look outside themselves from at most JOIN_SEARCHES_PER_COMPONENT faces
    (forced to 2 here, for groups of 40): the tree is still connected with real edges, the
    people are the same, and the tree is heavier than exact by little."""
    from facecluster.grouping import knn_hdbscan

    rng = np.random.default_rng(1)
    X = np.repeat(rng.normal(size=(12, 64)), 40, axis=0) + rng.normal(size=(480, 64)) * 0.05
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    every_face = KnnHDBSCAN(min_cluster_size=2, min_samples=2, k=8).fit(X)
    monkeypatch.setattr(knn_hdbscan, "JOIN_SEARCHES_PER_COMPONENT", 2)
    rim = KnnHDBSCAN(min_cluster_size=2, min_samples=2, k=8).fit(X)
    assert rim.joining_edges_ >= 11
    assert np.isfinite(rim.minimum_spanning_tree_[:, 2]).all() and len(rim.minimum_spanning_tree_) == len(X) - 1
    assert len(set(zip(rim.labels_, every_face.labels_))) == len(set(every_face.labels_)) == 12
    weight, exact_weight = rim.minimum_spanning_tree_[:, 2].sum(), every_face.minimum_spanning_tree_[:, 2].sum()
    assert exact_weight <= weight <= exact_weight * 1.05


@pytest.mark.parametrize("product", ["bfloat16", "int8"])
def test_the_cpu_graph_is_the_exact_graph(monkeypatch, product):
    """facecluster.grouping.exact_knn compares every pair once, in bfloat16 (below 256 dimensions) or
    int8 (from 256; forced here at 128), and re-ranks in float32. Its graph must be faiss's
    brute force one; blocks are forced small so that tiles are read by rows and by columns and
    the last block is partial. One photo appears twice (distance 0)."""
    from facecluster.grouping import exact_knn
    from facecluster.grouping.knn_hdbscan import KnnIndex

    X, _ = generate(3000, DLIB_LIKE, seed=4)
    X[7] = X[2900]
    monkeypatch.setattr(exact_knn, "BLOCK", 512)
    monkeypatch.setattr(exact_knn, "INT8_FROM", 0 if product == "int8" else 10**6)
    distances, found = exact_knn.ExactSearch(X).graph(16)
    expected_distances, expected = KnnIndex(X, exact=True).search(np.arange(len(X)), 16)
    recall = np.mean([len(set(a) & set(b)) / 16 for a, b in zip(found, expected)])
    assert recall >= 0.999  # float32 ties may swap two equally near faces
    # Squared: faiss puts the copies of one photo 0.0008 apart (the root of its rounding), here 0.
    assert np.allclose(distances ** 2, expected_distances ** 2, atol=1e-5)
    assert (np.diff(distances, axis=1) >= 0).all()
    assert (found != np.arange(len(X))[:, None]).all()
    assert found[7, 0] == 2900 and found[2900, 0] == 7 and distances[7, 0] == 0
    # Fewer faces than k + 1: every other face, nearest first.
    few_distances, few = exact_knn.ExactSearch(X[:5]).graph(32)
    assert few.shape == (5, 4) and sorted(few[0]) == [1, 2, 3, 4]
    assert np.allclose(few_distances[0], np.sort(np.linalg.norm(X[1:5] - X[0], axis=1)), atol=1e-5)


def test_one_odd_face_does_not_coarsen_the_int8_product(monkeypatch):
    """int8's step comes from the faces' range; a blank or broken embedding far outside it is
    clipped and searched in float32 instead, and everyone keeps the exact graph."""
    from facecluster.grouping import exact_knn
    from facecluster.grouping.knn_hdbscan import KnnIndex

    X, people = generate(3000, DLIB_LIKE, seed=5)
    monkeypatch.setattr(exact_knn, "BLOCK", 512)
    monkeypatch.setattr(exact_knn, "INT8_FROM", 0)
    clean_scale = exact_knn.ExactSearch(X).scale
    X[11] = 0
    X[11, 0] = 1.0
    search = exact_knn.ExactSearch(X)
    assert search.wide[11] and search.wide.sum() <= 3
    assert search.scale >= clean_scale / exact_knn.INT8_RANGE_MARGIN  # without clipping: 5.8 times coarser
    distances, found = search.graph(16)
    expected_distances, expected = KnnIndex(X, exact=True).search(np.arange(len(X)), 16)
    assert np.mean([len(set(a) & set(b)) / 16 for a, b in zip(found, expected)]) >= 0.999
    assert np.allclose(distances ** 2, expected_distances ** 2, atol=1e-5)
    assert set(found[11]) == set(expected[11])
    # Looking outside its person: the odd face's nearest of the others, and the others' too.
    rows = np.array([11, 0, 1])
    other_distances, other = search.nearest_other(rows, people, 8)
    for row, near in zip(rows, other):
        brute = np.linalg.norm(X - X[row], axis=1)
        brute[people == people[row]] = np.inf
        assert set(near) == set(np.argsort(brute)[:8])


def test_the_approximate_index_keeps_the_clustering():
    """Above EXACT_BELOW faces the kNN graph comes from an HNSW index; forced here at 20K faces,
    its clustering must stay that of the exact graph."""
    from sklearn.metrics import adjusted_rand_score

    from facecluster.measuring.metrics import pairwise_scores

    X, truth = generate(20000, DLIB_LIKE, seed=3)
    exact_graph = KnnHDBSCAN().fit(X)
    ivf_graph = KnnHDBSCAN(exact_below=0).fit(X)
    assert adjusted_rand_score(exact_graph.labels_, ivf_graph.labels_) >= 0.95
    f_exact = pairwise_scores(truth.tolist(), exact_graph.labels_)["f"]
    assert pairwise_scores(truth.tolist(), ivf_graph.labels_)["f"] >= f_exact - 0.01


def test_the_gpu_search_finds_the_exact_graph_and_clustering(monkeypatch):
    # TorchIndex is what runs on a GPU; here it runs the same code on torch's CPU device.
    from sklearn.metrics import adjusted_rand_score

    from facecluster.grouping import exact_knn, knn_hdbscan
    from facecluster.grouping.knn_hdbscan import KnnIndex, TorchIndex

    X, _ = generate(3000, DLIB_LIKE, seed=2)
    rows = np.arange(len(X))
    expected_distances, expected = KnnIndex(X, exact=True).search(rows, 8)
    distances, found = TorchIndex(X, device="cpu").search(rows, 8)
    assert (found == expected).mean() >= 0.999  # float32 ties may swap two equally near faces
    assert np.allclose(distances, expected_distances, atol=1e-4)
    # Each face's nearest faces of another group (as components look outside themselves):
    # torch's search against the CPU's bfloat16 one, with blocks forced small on the CPU side.
    group = np.repeat(np.arange(30), 100)
    group[:600] = 0  # one group of 600 faces among groups of 100
    asked = np.r_[0:700:7, 2990:3000]
    torch_distances, torch_other = TorchIndex(X, device="cpu").nearest_other(asked, group, 4)
    monkeypatch.setattr(exact_knn, "BLOCK", 256)
    cpu_distances, cpu_other = KnnIndex(X, exact=True).nearest_other(asked, group, 4)
    assert (group[cpu_other] != group[asked][:, None]).all()
    assert np.allclose(cpu_distances, torch_distances, atol=1e-4)
    assert (cpu_other == torch_other).mean() >= 0.99
    brute = np.linalg.norm(X[asked][:, None] - X[None], axis=2)
    brute[group[asked][:, None] == group[None]] = np.inf
    assert np.allclose(cpu_distances, np.sort(brute, axis=1)[:, :4], atol=1e-4)
    # Fewer faces of other groups than asked for: inf and -1.
    few_distances, few = KnnIndex(X, exact=True).nearest_other(np.array([0]), np.r_[np.zeros(2998), 1, 2], 4)
    assert sorted(few[0, :2]) == [2998, 2999] and (few[0, 2:] == -1).all() and np.isinf(few_distances[0, 2:]).all()
    # The whole estimator with every search (graph and component joining) done by TorchIndex.
    with_faiss = KnnHDBSCAN(k=8, device="cpu").fit(X)
    monkeypatch.setattr(knn_hdbscan, "KnnIndex", lambda X, exact, ef_search: TorchIndex(X, device="cpu"))
    with_torch = KnnHDBSCAN(k=8, device="cpu").fit(X)
    assert with_torch.joining_edges_ > 0  # k = 8 leaves components to join
    assert adjusted_rand_score(with_faiss.labels_, with_torch.labels_) >= 0.99
    assert with_torch.minimum_spanning_tree_[:, 2].sum() == pytest.approx(
        with_faiss.minimum_spanning_tree_[:, 2].sum(), rel=1e-5)


def test_a_gpu_asked_for_and_missing_is_an_error():
    import torch

    from facecluster.grouping.knn_hdbscan import knn_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert knn_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match="cluster.device = cuda"):
        knn_device("cuda")


def test_a_cell_with_fewer_faces_than_min_samples_is_clustered():
    """A cell of a larger archive may hold two faces (the distributed algorithm's smallest cells):
    with min_samples 2 each face has one neighbour, whose distance is its core distance."""
    X = np.array([[1.0, 0.0, 0.0], [0.99, 0.1, 0.0]], dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    alone = KnnHDBSCAN(min_samples=2, device="cpu").fit(X)
    part = KnnHDBSCAN(min_samples=2, device="cpu", part_of_larger=True).fit(X)
    assert alone.labels_.tolist() == [-1, -1]  # HDBSCAN never selects all it is given
    assert part.labels_.tolist() == [0, 0]  # a part of a larger archive may be one person


def test_a_cell_that_is_one_person_and_a_few_strangers_finds_that_person():
    """HDBSCAN cannot select all it is given: in a cell of one person and 30 strangers it picked
    a piece of the person (11% of their faces) and left the rest noise. A cell of a larger archive
    left that much noise is taken for one person; a cell of many people is clustered as before."""
    X, truth = generate(0, DLIB_LIKE, sizes=np.r_[5000, np.ones(30, dtype=int)], seed=5)
    whole = KnnHDBSCAN(min_samples=2, device="cpu").fit(X).labels_[truth == 0]
    part = KnnHDBSCAN(min_samples=2, device="cpu", part_of_larger=True).fit(X).labels_[truth == 0]
    assert (whole == -1).mean() > 0.8
    assert (part == np.bincount(part[part >= 0]).argmax()).mean() > 0.99
    many, _ = generate(3000, DLIB_LIKE, seed=6)
    alone = KnnHDBSCAN(min_samples=2, device="cpu").fit(many).labels_
    assert (alone >= 0).mean() > 0.3
    assert (KnnHDBSCAN(min_samples=2, device="cpu", part_of_larger=True).fit(many).labels_ == alone).all()
