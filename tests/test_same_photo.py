"""Two faces of one photo are two people, wherever faces are grouped."""
import numpy as np
import pandas as pd

from facecluster.grouping.clustering import (NOISE, PeopleClusterer, attach_not_grouped, one_face_per_photo,
                                            separate_people_in_one_photo)
from facecluster.measuring.metrics import pairwise_scores
from tests.test_clustering import people_on_a_sphere


def twins(n=12, seed=0):
    """Two people so alike that HDBSCAN makes them one, photographed together: photo k holds
    twin A's k-th face and twin B's k-th face."""
    X, truth = people_on_a_sphere([n, n, n], spread=0.25, seed=seed)  # and a third person, alone in their photos
    X[n:2 * n] = X[:n] * 0.8 + X[n:2 * n] * 0.2  # B: close to A, face by face
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    photos = np.array([f"p{k}" for k in range(n)] * 2 + [f"q{k}" for k in range(n)])
    return X.astype(np.float64), truth, photos


def test_of_several_faces_of_one_photo_in_a_person_only_the_nearest_stays():
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.95, 0.05]])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = np.array([0, 0, 0, 0])
    photos = np.array(["a", "b", "a", "c"])
    kept = one_face_per_photo(X, labels, photos)
    assert kept.tolist() == [0, 0, NOISE, 0]  # of photo a, the face far from the person's centre goes
    assert one_face_per_photo(X, labels, None).tolist() == [0, 0, 0, 0]


def test_clustering_never_puts_two_faces_of_one_photo_in_one_person():
    X, truth, photos = twins()
    for algorithm in ("exact", "knn"):
        plain = PeopleClusterer(algorithm=algorithm, device="cpu").fit(X).labels_
        ruled = PeopleClusterer(algorithm=algorithm, device="cpu").fit(X, photos).labels_
        together = pd.DataFrame({"person": ruled, "photo": photos})[ruled != NOISE].value_counts()
        assert (together <= 1).all(), algorithm
        plain_together = pd.DataFrame({"person": plain, "photo": photos})[plain != NOISE].value_counts()
        assert (plain_together >= 2).any(), f"{algorithm}: the twins were apart without the rule: no test"


def test_a_face_left_out_never_joins_a_person_with_a_face_of_its_photo():
    X, truth = people_on_a_sphere([30, 30], spread=0.3, seed=5)
    X = X.astype(np.float64)
    labels = truth.copy()
    labels[[0, 1]] = NOISE
    photos = np.array([f"p{k}" for k in range(60)])
    photos[0] = photos[5]  # face 0 is in the photo of face 5, already person 0
    attached = attach_not_grouped(X, labels, max_distance=0.6, member_distance=0.35, photos=photos)
    assert attached[0] == NOISE and attached[1] == 0


def test_merge_suggestions_leave_out_people_seen_in_one_photo():
    from facecluster.viewing.runs import merge_suggestions

    centroid = np.ones(128, dtype=np.float32) / np.sqrt(128)
    people = pd.DataFrame({"person_id": [0, 1, 2], "centroid": [centroid, centroid * 0.999 + 0.0001,
                                                                  centroid * 0.998 + 0.0002],
                           "albums": [["a"], ["a"], ["b"]]})
    faces = pd.DataFrame({"face_id": ["x:0", "x:1", "y:0"], "photo_id": ["x", "x", "y"], "model": "dlib-resnet-v1"})
    assignments = pd.DataFrame({"face_id": ["x:0", "x:1", "y:0"], "person_id": [0, 1, 2]})
    suggested = merge_suggestions({"people": people, "faces": faces, "assignments": assignments}, max_distance=1.0)
    pairs = {tuple(sorted(p)) for p in zip(suggested["person_a"], suggested["person_b"])}
    assert (0, 1) not in pairs  # persons 0 and 1 are side by side in photo x
    assert pairs & {(0, 2), (1, 2)}


def test_the_rule_costs_no_recall_where_each_photo_holds_one_face():
    X, truth = people_on_a_sphere([20, 20, 20], spread=0.3, seed=2)
    photos = np.array([f"p{k}" for k in range(60)])
    plain = PeopleClusterer().fit(X.astype(np.float64)).labels_
    ruled = PeopleClusterer().fit(X.astype(np.float64), photos).labels_
    assert (plain == ruled).all()
    assert pairwise_scores(truth, ruled)["f"] > 0.95


def test_an_incremental_run_files_two_faces_of_a_new_photo_apart():
    from facecluster.core.settings import load_settings
    from facecluster.jobs.cluster import add_to_people

    X, _ = people_on_a_sphere([12], spread=0.05, seed=7)
    new = X[:2] + np.random.default_rng(8).normal(size=(2, X.shape[1])) * 0.002  # both very near person 0
    matrix = np.concatenate([X, new / np.linalg.norm(new, axis=1, keepdims=True)]).astype(np.float32)
    face_ids = [f"old{k}:0" for k in range(12)] + ["new:0", "new:1"]
    meta = pd.DataFrame({"face_id": face_ids, "photo_id": [f.split(":")[0] for f in face_ids], "face_px": 100.0,
                         "model": "dlib-resnet-v1"})
    previous = pd.DataFrame({"face_id": face_ids[:12], "person_id": 0, "probability": 1.0, "outlier_score": 0.0})
    labels, _, _ = add_to_people(meta, matrix, np.ones(14, dtype=bool), previous,
                                 load_settings()["cluster"], "dlib-resnet-v1")
    assert (labels[:12] == 0).all()
    assert sorted(labels[12:].tolist())[1] == 0 and sorted(labels[12:].tolist())[0] != 0  # one joins, one does not


def test_a_person_holding_two_people_seen_together_is_split_between_them():
    # Two look-alikes (siblings) merged into one person; three photos show them side by side.
    X, truth = people_on_a_sphere([12, 12], spread=0.15, seed=3)
    X[12:] = X[:12] * 0.9 + X[12:] * 0.1  # as close as siblings: HDBSCAN alone would keep them one person
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    photos = np.array([f"a{i}" for i in range(12)] + [f"b{i}" for i in range(12)], dtype=object)
    photos[[0, 1, 2]] = ["group0", "group1", "group2"]
    photos[[12, 13, 14]] = ["group0", "group1", "group2"]
    labels = separate_people_in_one_photo(X, np.zeros(24, dtype=np.int64), photos)
    assert len(set(labels[:12])) == 1 and len(set(labels[12:])) == 1 and labels[0] != labels[12]


def test_one_collage_of_a_person_does_not_split_them():
    X, _ = people_on_a_sphere([20], spread=0.3, seed=4)
    photos = np.array([f"p{i}" for i in range(20)], dtype=object)
    photos[[3, 11]] = "collage"  # one photo showing the person twice (then and now)
    labels = separate_people_in_one_photo(X, np.zeros(20, dtype=np.int64), photos)
    assert (labels == 0).all()
    assert (one_face_per_photo(X, labels, photos) == 0).sum() == 19  # one face of the collage stays


def test_a_fragment_of_a_person_joins_them_unless_a_photo_shows_both():
    from facecluster.grouping.clustering import join_fragments

    X, truth = people_on_a_sphere([40, 4, 30], spread=0.25, seed=5)
    X[40:44] = X[:4] * 0.85 + X[40:44] * 0.15  # a burst of four photos, a little apart from the rest
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = np.r_[np.zeros(40), np.ones(4), np.full(30, 2)].astype(np.int64)
    photos = np.array([f"p{i}" for i in range(74)], dtype=object)
    joined = join_fragments(X, labels, max_distance=0.43, member_distance=0.35, photos=photos)
    assert (joined[:44] == 0).all() and (joined[44:] == 2).all()
    photos[40] = photos[5]  # a photo shows the fragment's face beside one of the person's
    assert (join_fragments(X, labels, 0.43, 0.35, photos=photos)[40:44] == 1).all()
