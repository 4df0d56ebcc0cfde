"""People found on the executors (cluster.algorithm: distributed) against the one-machine algorithm."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import adjusted_rand_score

from facecluster.measuring.synthetic import FaceSpace, archive_sizes, generate

pytestmark = pytest.mark.spark

DLIB_LIKE = FaceSpace(dimension=128, common=2.70, noise=0.227, noise_spread=0.2, common_spread=0.1)


def write_run(root, X, photos=None, model="dlib-resnet-v1", ids=None):
    """A faces and a photos table as embed writes them, for synthetic faces (ids: the faces')."""
    ids = np.array([f"face{i:06d}" for i in range(len(X))]) if ids is None else np.asarray(ids)
    photos = ids if photos is None else np.asarray(photos)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1]).cast(pa.list_(pa.float32()))
    for name in ("faces", "photos"):
        (root / name).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"face_id": ids, "photo_id": photos, "face_px": np.full(len(X), 100.0, np.float32),
                             "det_score": np.ones(len(X), np.float32), "embedding": embedding,
                             "model": [model] * len(X)}), root / "faces" / "part-0.parquet")
    unique = np.unique(photos)
    pq.write_table(pa.table({"photo_id": unique, "albums": pa.array([["album"]] * len(unique))}),
                   root / "photos" / "part-0.parquet")
    return ids


def people_of(root) -> pd.Series:
    return pd.read_parquet(root / "assignments").set_index("face_id")["person_id"].sort_index()


def same_people(a: pd.Series, b: pd.Series) -> float:
    """Adjusted Rand index with each face in no person a person of its own."""
    a, b = a.to_numpy(), b.reindex(a.index).to_numpy()
    alone = -np.arange(len(a)) - 2
    return adjusted_rand_score(np.where(a < 0, alone, a), np.where(b < 0, alone, b))


def cluster_with(spark, settings, root, **changes):
    from facecluster.core.settings import with_changes
    from facecluster.jobs import cluster

    chosen = with_changes(settings, {f"cluster.{key}": value for key, value in changes.items()})
    cluster.cluster(spark, str(root), chosen["cluster"])
    return people_of(root)


def test_faces_between_cells_are_stored_in_more_of_them():
    """A face at a centre is stored in the fewest cells, one as near to four centres as to its own
    in all four; across an archive the copies average CELL_COPIES, each face once a home."""
    from facecluster.grouping import cells

    centres = np.eye(8, dtype=np.float32)
    between = np.r_[np.full(4, 0.5), np.zeros(4)].astype(np.float32)
    nearest, stored = cells.cells_of(np.stack([centres[0], between]), centres, margin=0.01)
    assert stored[0].sum() == cells.LEAST_COPIES and set(nearest[1][stored[1]]) == {0, 1, 2, 3}

    X, _ = generate(6000, DLIB_LIKE, seed=5)
    centres = cells.train_cells(X, 24)
    margin = cells.cell_margin(X[np.random.default_rng(0).choice(len(X), 3000, replace=False)], centres)
    nearest, stored = cells.cells_of(X, centres, margin)
    copies = stored.sum(axis=1)
    assert abs(copies.mean() - cells.CELL_COPIES) < 0.1 and copies.min() >= cells.LEAST_COPIES
    assert copies.max() > cells.CELL_COPIES
    at_a_centre = np.vstack([X[:3000], centres[:1]])  # a small cell's centre is nearly one of its faces
    _, stored = cells.cells_of(at_a_centre, centres, cells.cell_margin(at_a_centre, centres))
    assert abs(stored.sum(axis=1).mean() - cells.CELL_COPIES) < 0.1
    batch = pd.DataFrame({"face_id": np.arange(len(X)).astype(str), "photo_id": "p", "embedding": list(X),
                          "previous_person": None, "previous_probability": None, "previous_outlier_score": None})
    routed = pd.concat(cells.route_to_cells(iter([batch]), centres, margin))
    assert len(routed) == copies.sum() and routed.groupby("face_id")["home"].sum().eq(1).all()
    assert (routed[routed["home"]].set_index("face_id")["cell"].sort_index(key=lambda i: i.astype(int)).to_numpy()
            == nearest[:, 0]).all()
    assert cells.cell_margin(X[:3000], centres[:3]) == np.inf


def test_a_cell_with_too_many_copies_keeps_its_own_faces_and_the_nearest_copies():
    from facecluster.grouping import cells

    rng = np.random.default_rng(0)
    farther = np.r_[np.zeros(10), rng.permutation(np.linspace(0.001, 0.01, 10))]
    rows = pd.DataFrame({"cell": 4, "home": np.arange(20) < 10, "farther": farther,
                         "face_id": [f"f{i:02d}" for i in range(20)], "photo_id": [f"p{i:02d}" for i in range(20)],
                         "embedding": list(rng.normal(size=(20, 8)).astype(np.float32))})
    seen = []

    def cluster(X, photos, kept):
        seen.append(len(X))
        return np.zeros(len(X)), np.ones(len(X)), np.zeros(len(X)), np.zeros(len(X), dtype=bool)

    found = cells.cluster_cell(rows, cluster, most=15)
    nearest_copies = rows[~rows["home"]].nsmallest(5, "farther")["face_id"]
    assert seen == [15] and set(found["face_id"]) == set(rows["face_id"][:10]) | set(nearest_copies)
    assert len(cells.cluster_cell(rows, cluster)) == 20


def test_one_cell_finds_the_same_people_as_the_knn_algorithm(spark, settings, tmp_path):
    X, _ = generate(2000, DLIB_LIKE, seed=11)
    write_run(tmp_path, X)
    knn = cluster_with(spark, settings, tmp_path, algorithm="knn", mode="full")
    distributed = cluster_with(spark, settings, tmp_path, algorithm="distributed", mode="full")
    assert (knn >= 0).sum() > 1000 and same_people(knn, distributed) == 1.0
    people = pd.read_parquet(tmp_path / "people").sort_values("person_id")
    sizes = distributed[distributed >= 0].value_counts().sort_index()
    assert people["person_id"].tolist() == sizes.index.tolist() and people["n_faces"].tolist() == sizes.tolist()
    assert people["n_faces"].is_monotonic_decreasing, "person 0 is the largest, as on one machine"


def test_people_split_by_cells_are_joined_back(spark, settings, tmp_path):
    """Six cells of about 1,000 faces over 3,000: people cut by a cell's border are one person
    again, and the result stays close to one machine's."""
    from facecluster.measuring.metrics import pairwise_scores

    X, truth = generate(3000, DLIB_LIKE, seed=12)
    ids = write_run(tmp_path, X)
    knn = cluster_with(spark, settings, tmp_path, algorithm="knn", mode="full")
    distributed = cluster_with(spark, settings, tmp_path, algorithm="distributed", mode="full", faces_per_cell=1000)
    truth = pd.Series(truth, index=ids).sort_index()
    f = {name: pairwise_scores(truth.tolist(), found.reindex(truth.index).to_numpy())["f"]
         for name, found in (("knn", knn), ("distributed", distributed))}
    assert same_people(knn, distributed) >= 0.97, same_people(knn, distributed)
    assert f["distributed"] >= f["knn"] - 0.01, f


def test_a_person_larger_than_a_cell_is_cut_into_cells_and_found_whole(spark, settings, tmp_path):
    """One person with most of the archive's faces (a head of state in a news archive) does not
    leave one task with them: their cell is cut by centres trained on its own faces, each piece
    (one person alone, all noise to HDBSCAN) is clustered as part of a larger archive, and the
    pieces are joined back into one person."""
    from facecluster.grouping.cells import nearest_cells
    from facecluster.grouping.distributed import cell_centres, sample_faces

    sizes = np.r_[6000, archive_sizes(1500, seed=3).clip(max=20)]
    X, truth = generate(0, DLIB_LIKE, sizes=sizes, seed=13)
    ids = write_run(tmp_path, X)
    faces = spark.read.parquet(str(tmp_path / "faces"))
    centres = cell_centres(faces, sample_faces(faces, len(X)), len(X), faces_per_cell=1500)
    home = np.bincount(nearest_cells(X, centres, 1)[:, 0])
    assert home.max() <= 2 * 1500 and len(centres) > 2 * len(X) // 1500
    found = cluster_with(spark, settings, tmp_path, algorithm="distributed", mode="full", faces_per_cell=1500)
    largest = found.reindex(ids[truth == 0])
    assert (largest == largest.mode().iloc[0]).mean() >= 0.95 and largest.mode().iloc[0] >= 0


def test_labels_and_an_added_album_on_the_executors(spark, settings, tmp_path):
    """Names, merges, moves, "not a face" and a chosen picture hold as on one machine; in an incremental run the
    last run's people keep their faces and ids, new faces join them."""
    from facecluster.curation.labels import add_label

    X, truth = generate(2400, DLIB_LIKE, seed=14)
    write_run(tmp_path, X[:2000])
    first = cluster_with(spark, settings, tmp_path, algorithm="distributed", mode="full", faces_per_cell=1000)
    sizes = first[first >= 0].value_counts()
    big, a, b = (int(p) for p in sizes.index[:3])
    moved, not_face = first[first == big].index[:2]
    add_label(str(tmp_path), "name", big, name="Ann")
    add_label(str(tmp_path), "merge", a, b)
    add_label(str(tmp_path), "move_out", face_id=moved)
    add_label(str(tmp_path), "not_a_face", face_id=not_face)
    picture = first[first == big].index[-1]
    add_label(str(tmp_path), "cover", face_id=picture)
    ids = write_run(tmp_path, X)  # the same faces and 400 new ones
    after = cluster_with(spark, settings, tmp_path, algorithm="distributed", mode="incremental", faces_per_cell=1000)
    people = pd.read_parquet(tmp_path / "people")
    assert people.loc[people["name"] == "Ann", "person_id"].tolist() == [big]
    assert people.loc[people["name"] == "Ann", "exemplar_face_id"].tolist() == [picture], "the picture chosen"
    assert after[moved] != big and after[not_face] == -1
    assert after[list(first[first.isin([a, b])].index)].nunique() == 1
    kept = first[(first >= 0) & ~first.index.isin([moved, not_face]) & ~first.isin([a, b])]
    assert (after.reindex(kept.index) == kept).all(), "old people keep their faces and ids"
    new = after.reindex(ids[2000:])
    assert (new >= 0).mean() >= 0.8 * (first >= 0).mean(), "the new faces join people as the first ones did"
    assert set(pd.read_parquet(tmp_path / "assignments")["face_id"]) == set(ids)


def test_an_added_album_touches_only_the_cells_it_falls_in_and_forget_drops_the_cells(spark, settings, tmp_path,
                                                                                      capsys):
    """The cells are kept for the next incremental run: a new album of one person is stored in a
    few of them, the others are not clustered again. Forget deletes them (their centres are means
    of sampled faces)."""
    from facecluster.jobs import forget

    X, truth = generate(2000, DLIB_LIKE, seed=21)
    sizes = np.bincount(truth)
    newcomer = int(np.flatnonzero((sizes >= 15) & (sizes <= 40))[0])
    old = truth != newcomer
    ids = np.array([f"face{i:06d}" for i in range(len(X))])
    write_run(tmp_path, X[old], ids=ids[old])
    first = cluster_with(spark, settings, tmp_path, algorithm="distributed", mode="full", faces_per_cell=200)
    centres = pd.read_parquet(tmp_path / "cells").sort_values("cell")
    capsys.readouterr()
    write_run(tmp_path, X, ids=ids)
    after = cluster_with(spark, settings, tmp_path, algorithm="distributed", mode="incremental", faces_per_cell=200)
    touched, n_cells = (int(n) for n in
                        capsys.readouterr().out.split("new faces in ")[1].split(" cells")[0].split(" of "))
    assert n_cells == len(centres) >= 20 and 1 <= touched <= n_cells // 2, (touched, n_cells)
    again = pd.read_parquet(tmp_path / "cells").sort_values("cell")
    assert np.array_equal(np.stack(again["centre"]), np.stack(centres["centre"])), "the same cells"
    grouped = first[first >= 0]
    assert (after.reindex(grouped.index) == grouped).all(), "the old people keep their faces"
    new = after.reindex(ids[~old])
    found = new[new >= 0]
    assert len(found) >= 0.8 * len(new) and found.nunique() == 1 and found.iloc[0] not in set(first), new
    (tmp_path / "photo_status").mkdir()
    pq.write_table(pa.table({"photo_id": ids, "status": ["ok"] * len(ids), "n_faces": np.ones(len(ids), np.int32)}),
                   tmp_path / "photo_status" / "part-0.parquet")
    forget.forget(spark, str(tmp_path), person=int(found.iloc[0]))
    assert not (tmp_path / "cells").exists()
