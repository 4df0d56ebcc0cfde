import numpy as np
import pandas as pd
import pytest

from facecluster.grouping.clustering import MixedModelsError, PeopleClusterer, check_one_model
from facecluster.measuring.metrics import pairwise_scores
from facecluster.grouping.people import number_by_size, people_table


def people_on_a_sphere(sizes, spread=0.15, dimension=128, seed=0):
    """Unit vectors around one random centre per person, plus the truth."""
    rng = np.random.default_rng(seed)
    points, truth = [], []
    for person, size in enumerate(sizes):
        centre = rng.normal(size=dimension)
        centre /= np.linalg.norm(centre)
        noise = rng.normal(size=(size, dimension)) * spread / np.sqrt(dimension)
        members = centre + noise
        points.append(members / np.linalg.norm(members, axis=1, keepdims=True))
        truth += [person] * size
    return np.concatenate(points).astype(np.float32), np.array(truth)


def test_well_separated_people_are_found():
    X, truth = people_on_a_sphere([12, 8, 5, 3, 2])
    clusterer = PeopleClusterer(min_cluster_size=2, min_samples=1).fit(X)
    scores = pairwise_scores(truth, clusterer.labels_)
    assert scores["precision"] == 1.0 and scores["recall"] >= 0.95
    assert len(clusterer.probabilities_) == len(X) and len(clusterer.outlier_scores_) == len(X)
    assert ((clusterer.probabilities_ >= 0) & (clusterer.probabilities_ <= 1)).all()


def test_too_few_faces_are_all_noise():
    clusterer = PeopleClusterer(min_cluster_size=2).fit(np.ones((1, 128), dtype=np.float32))
    assert clusterer.labels_.tolist() == [-1]


def test_mixed_models_are_refused():
    assert check_one_model(["dlib-resnet-v1"] * 3) == "dlib-resnet-v1"
    with pytest.raises(MixedModelsError, match="different models"):
        check_one_model(["dlib-resnet-v1", "facenet-vggface2"])


def test_people_are_numbered_by_size_and_summarised():
    labels = number_by_size(np.array([3, 3, -1, 7, 7, 7]))
    assert labels.tolist() == [1, 1, -1, 0, 0, 0]
    X, _ = people_on_a_sphere([3, 2, 1], dimension=16)
    faces = pd.DataFrame({"face_id": [f"p{i}:0" for i in range(6)], "photo_id": ["a", "b", "c", "d", "d", "e"],
                          "albums": [["x"], ["y"], ["x", "z"], ["x"], ["x"], ["y"]]})
    people = people_table(faces, X, np.array([0, 0, 0, 1, 1, -1]))
    first = people.set_index("person_id").loc[0]
    assert first["n_faces"] == 3 and first["n_photos"] == 3
    assert first["albums"] == ["x", "y", "z"] and first["n_albums"] == 3
    assert first["exemplar_face_id"] in {"p0:0", "p1:0", "p2:0"}
    assert np.linalg.norm(first["centroid"]) == pytest.approx(1.0, abs=1e-5)
    second = people.set_index("person_id").loc[1]
    assert second["n_photos"] == 1  # two faces in one photo


def test_a_stranger_pulled_into_a_person_is_pruned_and_the_person_kept():
    from facecluster.grouping.clustering import prune_strangers

    X, truth = people_on_a_sphere([2, 1], spread=0.2, dimension=64, seed=3)
    # one "person" of the two true faces and the stranger: the stranger goes, the pair stays
    pruned = prune_strangers(X.astype(np.float64), np.array([0, 0, 0]), max_distance=0.5, min_cluster_size=2)
    assert pruned.tolist() == [0, 0, -1]
    # a radius nobody fails keeps everyone; a radius everybody fails leaves only noise
    assert prune_strangers(X.astype(np.float64), np.array([0, 0, 0]), 2.0, 2).tolist() == [0, 0, 0]
    assert prune_strangers(X.astype(np.float64), np.array([0, 0, 0]), 0.01, 2).tolist() == [-1, -1, -1]


def test_two_lookalike_groups_in_one_person_are_split():
    from facecluster.grouping.clustering import split_mixed_people

    X, truth = people_on_a_sphere([4, 3, 1], spread=0.1, dimension=64, seed=5)
    labels = split_mixed_people(X.astype(np.float64), np.zeros(8, dtype=np.int64), max_distance=0.8,
                                min_cluster_size=2)
    assert len(set(labels[:4])) == 1 and len(set(labels[4:7])) == 1 and labels[0] != labels[4]
    assert labels[0] == 0  # the larger group keeps the person's number
    assert labels[7] == -1  # a lone face split off is nobody's
    # a person of one tight group is left alone
    assert (split_mixed_people(X[:4].astype(np.float64), np.zeros(4, dtype=np.int64), 0.8, 2) == 0).all()


def test_faces_too_small_to_recognise_are_kept_but_not_clustered(settings):
    from facecluster.jobs.cluster import cluster_faces

    X, truth = people_on_a_sphere([6, 6, 6])
    tiny = np.arange(len(X)) % 6 == 0  # one face per person came from a crowd in the background
    meta = pd.DataFrame({"face_id": [f"f{i}" for i in range(len(X))], "photo_id": [f"p{i}" for i in range(len(X))],
                         "face_px": np.where(tiny, 12.0, 90.0), "face_score": 1.0, "albums": [["a"]] * len(X),
                         "model": "dlib-resnet-v1"})
    assignments, people = cluster_faces(meta, X, settings["cluster"], "run")
    assert settings["cluster"]["min_face_px"] > 12
    assert (assignments["clustered"] == ~tiny).all()
    assert (assignments["left_out"] == "too small").tolist() == tiny.tolist()
    assert (assignments.loc[tiny, "person_id"] == -1).all()
    assert len(people) == 3 and people["n_faces"].tolist() == [5, 5, 5]
    assert pairwise_scores(truth[~tiny], assignments.loc[~tiny, "person_id"])["f"] == 1.0


def with_near_copies(X, truth, share=0.3, copies=2, distance=0.03, seed=1):
    """X plus, for `share` of its faces, `copies` copies each within `distance` (bursts, re-saves)."""
    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(rng.random(len(X)) < share)
    extra = np.repeat(X[chosen], copies, axis=0)
    noise = rng.normal(size=extra.shape)
    extra = extra + noise / np.linalg.norm(noise, axis=1, keepdims=True) * distance
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    return np.concatenate([X, extra]).astype(np.float32), np.concatenate([truth, np.repeat(truth[chosen], copies)])


def test_near_copies_are_clustered_as_one_face_and_all_take_its_person():
    from facecluster.grouping.clustering import collapse_near_duplicates

    X, truth = with_near_copies(*people_on_a_sphere([40, 30, 20], spread=0.45))
    representatives, group = collapse_near_duplicates(X, 0.1)
    assert len(representatives) == 90  # the copies fold into their original
    assert (group[representatives] == np.arange(len(representatives))).all()
    assert (pd.Series(truth).groupby(group).nunique() == 1).all()  # a group never spans two people
    plain = PeopleClusterer(min_cluster_size=2, min_samples=2).fit(X)
    collapsed = PeopleClusterer(min_cluster_size=2, min_samples=2, duplicate_distance=0.1).fit(X)
    copies = group[np.arange(len(X))]
    assert (pd.Series(collapsed.labels_).groupby(copies).nunique() == 1).all()  # copies share the person
    assert len(collapsed.labels_) == len(X) and len(collapsed.probabilities_) == len(X)
    # Each copied pair is a cluster denser than any person: without collapsing they shatter the people
    assert pairwise_scores(truth, plain.labels_)["f"] < 0.5
    assert pairwise_scores(truth, collapsed.labels_)["f"] > 0.95


def test_the_knn_algorithm_finds_copies_in_its_own_graph():
    X, truth = with_near_copies(*people_on_a_sphere([40, 30, 20], spread=0.45))
    plain = PeopleClusterer(min_cluster_size=2, min_samples=2, algorithm="knn", device="cpu").fit(X)
    collapsed = PeopleClusterer(min_cluster_size=2, min_samples=2, algorithm="knn", device="cpu",
                                duplicate_distance=0.1).fit(X)
    exact = PeopleClusterer(min_cluster_size=2, min_samples=2, duplicate_distance=0.1).fit(X)
    assert len(collapsed.labels_) == len(X)
    assert pairwise_scores(truth, plain.labels_)["f"] < 0.5
    assert pairwise_scores(truth, collapsed.labels_)["f"] > 0.95
    assert pairwise_scores(exact.labels_, collapsed.labels_)["f"] > 0.95  # both algorithms agree


def test_a_burst_larger_than_the_graph_keeps_its_way_to_its_person():
    from facecluster.grouping.duplicates import representatives_graph

    # 60 copies of one face: all of its 32 nearest are copies, its representative must still
    # find the rest of its person (searched again), not stand alone.
    X, truth = people_on_a_sphere([40, 30], spread=0.45)
    burst = np.repeat(X[:1], 60, axis=0) + np.random.default_rng(3).normal(size=(60, X.shape[1])) * 0.002
    burst /= np.linalg.norm(burst, axis=1, keepdims=True)
    X = np.concatenate([X, burst]).astype(np.float32)
    truth = np.concatenate([truth, np.repeat(truth[:1], 60)])
    collapsed = PeopleClusterer(min_cluster_size=2, min_samples=2, algorithm="knn", device="cpu",
                                duplicate_distance=0.1).fit(X)
    assert pairwise_scores(truth, collapsed.labels_)["f"] > 0.95
    distances = np.array([[0.01, 0.02, 0.5], [0.01, 0.3, 0.5], [0.3, 0.5, 0.6]])
    neighbours = np.array([[1, 2, 3], [0, 3, 2], [3, 0, 1]])  # faces 0 and 1 are copies
    group = np.array([0, 0, 1, 2])
    dist, found = representatives_graph(np.vstack([distances, [[0.3, 0.5, 0.6]]]),
                                        np.vstack([neighbours, [[2, 0, 1]]]), np.array([0, 2, 3]), group)
    assert found[0].tolist() == [1, 2, -1] and dist[0].tolist()[:2] == [0.02, 0.5]  # its own copy gone
    assert found[1].tolist() == [2, 0, -1] and dist[1].tolist()[:2] == [0.3, 0.5]  # both copies: once, nearest


def test_a_widely_photographed_person_stays_whole_and_apart_from_others():
    from facecluster.grouping.clustering import split_mixed_people, prune_strangers

    # One person photographed over decades (wide) and a second person: the split keeps the wide
    # person whole (their halves part near their own pair distance), still parts the two
    # people, and the prune keeps the wide person's far faces.
    # (pair distances about 0.63, a wide person for a split at 0.75)
    X, truth = people_on_a_sphere([300, 300], spread=0.5)
    X = X.astype(np.float64)
    labels = split_mixed_people(X, np.zeros(len(X), dtype=np.int64), max_distance=0.75, min_cluster_size=2)
    wide = labels[truth == 0]
    assert (wide != -1).all() and len(set(wide.tolist())) == 1  # nobody of the wide person lost or split off
    assert set(wide.tolist()).isdisjoint(labels[truth == 1].tolist())  # the two people parted
    pruned = prune_strangers(X[truth == 0], np.zeros(300, dtype=np.int64), max_distance=0.35, min_cluster_size=2)
    assert (pruned == 0).mean() > 0.99
    fixed = prune_strangers(X[truth == 0][:15], np.zeros(15, dtype=np.int64), 0.35, 2)
    assert (fixed == -1).any()  # a person of a few faces is still judged at the fixed radius


def test_a_small_group_split_off_a_person_stays_with_them():
    from facecluster.grouping.clustering import split_mixed_people

    X, truth = people_on_a_sphere([20, 20], spread=0.15, seed=4)
    odd = X[:1] * 0.8 + X[20:21] * 0.2  # one odd photo of the first person, between the two
    X = np.concatenate([X, odd / np.linalg.norm(odd)]).astype(np.float64)
    labels = split_mixed_people(X, np.zeros(41, dtype=np.int64), max_distance=0.3, min_cluster_size=2)
    assert labels[40] == labels[0] != -1  # joined the nearest large group, not made noise
    assert labels[0] != labels[20]


def test_a_face_left_out_joins_the_person_holding_most_of_its_nearest_faces():
    from facecluster.grouping.clustering import attach_not_grouped

    X, truth = people_on_a_sphere([30, 30, 1], spread=0.3, seed=5)
    X = X.astype(np.float64)
    labels = truth.copy()
    labels[[0, 1, 60]] = -1  # two faces of person 0 left out, and a stranger
    attached = attach_not_grouped(X, labels, max_distance=0.6, member_distance=0.35)
    assert attached[0] == 0 and attached[1] == 0
    assert attached[60] == -1  # the stranger has no person's faces near: stays out
    assert (attach_not_grouped(X, labels, max_distance=0.01, member_distance=0.35)[[0, 1]] == -1).all()


def test_distances_of_an_unmeasured_model_are_fitted_to_the_archives_faces_sharing_a_photo(settings):
    """A model without measured distances gets the reference model's scaled by the median distance
    of the archive's own pairs of faces in one photo; too few such pairs leave the guessed ones."""
    from facecluster.recognition import thresholds

    rng = np.random.default_rng(0)
    unit = rng.normal(size=(600, 64))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    # a wider model: every distance 2.5 times dlib's scale; 150 photos of 4 faces (900 pairs)
    X = unit * 2.5
    photos = np.repeat(np.arange(150), 4)
    pairs = thresholds.same_photo_distances(X, photos)
    assert len(pairs) == 150 * 6
    first_photo = np.linalg.norm(X[:4, None] - X[None, :4], axis=2)[np.triu_indices(4, 1)]
    assert np.allclose(np.sort(pairs[:6]), np.sort(first_photo))
    fitted = thresholds.distances("facenet-vggface2", X, photos)
    scale = np.median(pairs) / thresholds.SAME_PHOTO_MEDIAN[thresholds.REFERENCE]
    reference = thresholds.distances(thresholds.REFERENCE)
    assert fitted.member_radius == pytest.approx(reference.member_radius * scale)
    assert fitted.split_distance == pytest.approx(reference.split_distance * scale)
    assert "fitted to this archive: 900 pairs" in fitted.source and not fitted.measured
    # one face per photo: nothing to fit from
    assert thresholds.distances("facenet-vggface2", X, np.arange(600)) == thresholds.GUESSED["facenet-vggface2"]
    # a measured model keeps its own, whatever the archive
    assert thresholds.distances(thresholds.REFERENCE, X, photos) == reference
    clusterer = PeopleClusterer.from_settings(settings["cluster"], "facenet-vggface2", fitted)
    assert clusterer.max_member_distance == pytest.approx(fitted.member_radius)
    assert clusterer.attach_distance == pytest.approx(fitted.attach)



def test_a_chain_of_strangers_gets_no_allowance_for_its_spread(monkeypatch):
    from facecluster.grouping import clustering

    # 40 faces of 40 strangers lying together (as blurred background faces do), taken for one
    # person: far wider than one person's faces, so it is cut as a small person would be.
    X, _ = people_on_a_sphere([40], spread=0.33, seed=9)
    X = X.astype(np.float64)
    assert clustering._close_pairs_distance(X) > clustering.ONE_PERSON_SPREAD * 0.38
    labels = clustering.split_mixed_people(X, np.zeros(40, dtype=np.int64), max_distance=0.38, min_cluster_size=2)
    assert (labels == 0).sum() < 10
    monkeypatch.setattr(clustering, "ONE_PERSON_SPREAD", 10.0)  # with the allowance, they would stay one
    assert (clustering.split_mixed_people(X, np.zeros(40, dtype=np.int64), 0.38, 2) == 0).all()


def test_faces_too_unclear_to_say_who_they_are_are_left_out_with_the_reason(settings):
    from facecluster.curation.labels import APPLIED_COLUMNS, Constraints
    from facecluster.grouping.quality import unclear_centre
    from facecluster.jobs.cluster import cluster_faces

    model = "dlib-resnet-v1-four-views"
    # Three people, and six strangers' faces lying where the network puts the faces it cannot
    # read (blurred, half hidden): close enough to each other to make a "person" of strangers.
    X, truth = people_on_a_sphere([6, 6, 6], seed=4)
    rng = np.random.default_rng(5)
    unclear = unclear_centre(model) + rng.normal(size=(6, 128)) * 0.01
    X = np.concatenate([X, unclear / np.linalg.norm(unclear, axis=1, keepdims=True)]).astype(np.float32)
    n = len(X)
    meta = pd.DataFrame({"face_id": [f"f{i}" for i in range(n)], "photo_id": [f"p{i}" for i in range(n)],
                         "face_px": 90.0, "face_score": 1.0, "albums": [["a"]] * n, "model": model})
    assignments, people = cluster_faces(meta, X, settings["cluster"], "run")
    assert (assignments["left_out"].iloc[18:] == "unclear").all() and not assignments["clustered"].iloc[18:].any()
    assert assignments["left_out"].iloc[:18].isna().all() and (assignments["clarity"].iloc[:18] > 0.6).all()
    assert len(people) == 3
    plain, _ = cluster_faces(meta, X, {**settings["cluster"], "min_clarity": None}, "run")
    assert plain["person_id"].iloc[18:].nunique() == 1 and plain["person_id"].iloc[18] >= 0, "else no test"
    # a face the user put in a person is clustered, however unclear
    applied = pd.DataFrame([[0, "f18", "member", "g", "Ann"]], columns=APPLIED_COLUMNS)
    labelled, _ = cluster_faces(meta, X, settings["cluster"], "run", Constraints(applied))
    assert labelled["clustered"].iloc[18] and labelled["person_id"].iloc[18] >= 0
