"""Two faces of one photo are two people, wherever faces are grouped."""
import numpy as np
import pandas as pd

from facecluster.grouping.clustering import NOISE, PeopleClusterer, attach_not_grouped, one_face_per_photo
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


def test_an_incremental_run_files_two_people_of_a_new_photo_apart():
    from facecluster.core.settings import load_settings
    from facecluster.grouping.incremental import add_to_people

    # Person 0 photographed in two decades (two groups 0.41 apart); a new photo holds a face of
    # each decade's look: two people standing together, as far as one photo tells.
    rng = np.random.default_rng(7)
    young = rng.normal(size=128)
    young /= np.linalg.norm(young)
    turn = rng.normal(size=128)
    turn -= (turn @ young) * young
    old = young + 0.42 * turn / np.linalg.norm(turn)
    old /= np.linalg.norm(old)
    faces = [centre + rng.normal(size=(n, 128)) * 0.01 for centre, n in ((young, 6), (old, 6), (young, 1), (old, 1))]
    matrix = np.concatenate(faces)
    matrix = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    assert np.linalg.norm(matrix[12] - matrix[13]) > 0.4
    face_ids = [f"old{k}:0" for k in range(12)] + ["new:0", "new:1"]
    meta = pd.DataFrame({"face_id": face_ids, "photo_id": [f.split(":")[0] for f in face_ids], "face_px": 100.0,
                         "face_score": 1.0, "model": "dlib-resnet-v1"})
    previous = pd.DataFrame({"face_id": face_ids[:12], "person_id": 0, "probability": 1.0, "outlier_score": 0.0})
    labels, _, _ = add_to_people(meta, matrix, np.ones(14, dtype=bool), previous,
                                 load_settings()["cluster"], "dlib-resnet-v1")
    assert (labels[:12] == 0).all()
    assert sorted(labels[12:].tolist())[1] == 0 and sorted(labels[12:].tolist())[0] != 0  # one joins, one does not


def test_a_person_seen_twice_in_a_collage_stays_one_and_two_people_together_stay_two():
    from facecluster.core.settings import load_settings

    # A: 30 photos alone and 8 collages of two of their faces; B: 30 photos alone and 6
    # photos beside A. One person's faces lie about 0.25 apart, two people's about 0.6.
    X, truth = people_on_a_sphere([46, 36], spread=0.18, seed=11)
    photos = np.array([f"alone{i}" for i in range(82)], dtype=object)
    photos[30:46] = [f"collage{k // 2}" for k in range(16)]
    photos[[24, 25, 26, 27, 28, 29]] = photos[[76, 77, 78, 79, 80, 81]] = [f"together{k}" for k in range(6)]
    in_pair = np.linalg.norm(X[30:46:2] - X[31:46:2], axis=1)
    assert in_pair.max() < 0.335 < np.linalg.norm(X[24:30] - X[76:82], axis=1).min()
    clusterer = PeopleClusterer.from_settings(load_settings()["cluster"], "dlib-resnet-v1-four-views")
    labels = clusterer.fit(X.astype(np.float64), photos).labels_
    assert (labels[:46] == labels[0]).all() and labels[0] != NOISE, "A, collages and all, is one person"
    assert (labels[46:] == labels[46]).all() and labels[46] not in (labels[0], NOISE), "B is another"
    halves = one_face_per_photo(X[30:46], np.zeros(16, dtype=np.int64), photos[30:46])  # pairs never one person
    assert (halves == NOISE).sum() == 8


def test_a_collage_keeps_one_face_unless_its_faces_fit_as_one_person():
    X, _ = people_on_a_sphere([20], spread=0.3, seed=4)
    labels = np.zeros(20, dtype=np.int64)
    photos = np.array([f"p{i}" for i in range(20)], dtype=object)
    photos[[3, 11]] = "collage"  # one photo showing the person twice (then and now)
    assert (one_face_per_photo(X, labels, photos) == 0).sum() == 19  # taken for two people: one face stays
    close = float(np.linalg.norm(X[3] - X[11]))
    assert (one_face_per_photo(X, labels, photos, twice=close + 0.01) == 0).all()
    assert (one_face_per_photo(X, labels, photos, twice=close - 0.01) == 0).sum() == 19


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


def test_a_crowd_of_look_alikes_in_one_photo_stays_apart():
    from facecluster.grouping.clustering import twice_per_face

    # Four faces of one photo all alike (a crowd of bald men), and a collage of one person twice.
    X, _ = people_on_a_sphere([4, 2], spread=0.12, seed=6)
    X = X.astype(np.float64)
    photos = np.array(["crowd"] * 4 + ["collage"] * 2, dtype=object)
    twice = twice_per_face(X, photos, 0.37)
    assert (twice[:4] == 0).all() and (twice[4:] == 0.37).all()
    labels = np.array([0, 0, 0, 0, 1, 1])
    kept = one_face_per_photo(X, labels, photos, twice)
    assert (kept[:4] == 0).sum() == 1 and (kept[4:] == 1).all()
