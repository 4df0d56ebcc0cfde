"""People found cell by cell, for archives larger than one machine.

HDBSCAN's tree cannot be cut into pieces that fit one task: at any distance that keeps one
person's faces together, single linkage joins most of an archive into one component (the dev LFW
split at mutual reachability 0.35: 7,413 of its 10,917 faces; at 0.41, all but 15:
docs/benchmarks.md, "Past one machine"). So the archive is cut where faces are, as DiskANN
shards an index: k-means centres split the faces into cells, each face is stored in its nearest
cells (CELL_COPIES on average, more for a face between many cells: cell_margin), and each cell
is clustered by the one-machine rules (facecluster.grouping.clustering.PeopleClusterer) in one
task. A face takes the person its home cell (its nearest) found for it; the people of two cells
are one person where at least LINK_FACES faces were put in both (connected components on Spark,
people_across_cells). A person larger than a cell (a head of state in a news archive) spreads
over several cells and is joined back the same way.

The driver holds the centres, a sample to train them on and one count per cell, never the faces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from facecluster.grouping.clustering import NOISE

# Faces are stored 3 times on average: their neighbours across a cell's border are seen with them.
# With 2 each, a small person's few faces often had no cell in common and were found nowhere
# (100,000 synthetic faces in cells of 25,000: 4.5% fewer people than one machine; with 3, 0.2% more).
CELL_COPIES = 3
# How the copies are shared out (SPANN's rule for points on cell borders): a face goes to every cell
# whose centre lies within a margin of its nearest, at least LEAST_COPIES and at most MOST_COPIES,
# the margin set so that the average stays CELL_COPIES. In 128 dimensions a face's next centres lie
# only 1-3% farther than its nearest: with each face in its 3 nearest cells, 16% of the people of 2
# to 10 faces of a million synthetic faces had no cell that held all their faces (with the margin,
# 11%), and the archive had 1.1% fewer people than on one machine (with the margin, 0.3%).
LEAST_COPIES = 2
MOST_COPIES = 6
LINK_FACES = 2  # faces two cells' people must share to be one person (one shared face may be a look-alike)
SAMPLE_PER_CELL = 256  # faces the k-means centres are trained on, per cell (faiss's own floor is 39)
ROUTED_SCHEMA = ("cell int, home boolean, farther double, face_id string, photo_id string, embedding array<float>, "
                 "previous_person long, previous_probability double, previous_outlier_score double")
CELL_PEOPLE_SCHEMA = "cell int, home boolean, face_id string, person long, probability double, outlier_score double"
# Cells are kept for the next incremental run until the archive outgrows them: past this many
# times the faces they were made for, an average cell would hold that much more than faces_per_cell.
OUTGROWN = 1.5


@dataclass(frozen=True)
class Cells:
    """An archive's cells as a run made them, kept (OUT/cells) so that the next incremental run
    stores the old faces in the same cells and leaves the cells without new faces as they were.
    centres: (cells, d) float32; margin: cell_margin's; faces: the faces they were made for."""
    centres: np.ndarray
    margin: float
    faces: int
    faces_per_cell: int
    model: str

    def suit(self, n_faces: int, faces_per_cell: int, model: str) -> bool:
        """Whether an archive of n_faces, clustered with these settings and model, may keep them."""
        return self.model == model and self.faces_per_cell == faces_per_cell and n_faces <= OUTGROWN * self.faces

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"cell": np.arange(len(self.centres), dtype=np.int32),
                             "centre": [row.tolist() for row in self.centres], "margin": self.margin,
                             "faces": self.faces, "faces_per_cell": self.faces_per_cell, "model": self.model})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "Cells":
        frame = frame.sort_values("cell")
        return cls(np.stack(frame["centre"].to_numpy()).astype(np.float32), float(frame["margin"].iloc[0]),
                   int(frame["faces"].iloc[0]), int(frame["faces_per_cell"].iloc[0]), str(frame["model"].iloc[0]))


def most_faces(faces_per_cell: int) -> int:
    """The faces one cell's task holds at most: a cell with more of its own is cut
    (facecluster.grouping.distributed.cell_centres), one with more copies on top is cut back
    (cluster_cell)."""
    return 2 * faces_per_cell


def cells_for(n_faces: int, faces_per_cell: int) -> int:
    """Cells so that each holds about faces_per_cell faces, a face being stored CELL_COPIES times on
    average."""
    if n_faces <= faces_per_cell:
        return 1
    return int(math.ceil(CELL_COPIES * n_faces / faces_per_cell))


def train_cells(sample: np.ndarray, n_cells: int, seed: int = 0) -> np.ndarray:
    """(n_cells, d) float32 k-means centres of a sample of the faces (faiss)."""
    import faiss

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if n_cells <= 1:
        return sample.mean(axis=0, keepdims=True)
    n_cells = min(n_cells, len(sample))
    kmeans = faiss.Kmeans(sample.shape[1], n_cells, niter=20, seed=seed, max_points_per_centroid=SAMPLE_PER_CELL)
    kmeans.train(sample)
    return kmeans.centroids


def nearest_cells(X: np.ndarray, centres: np.ndarray, copies: int = CELL_COPIES) -> np.ndarray:
    """(n, min(copies, cells)) indices of each face's nearest cells, the home cell first."""
    return _nearest_centres(X, centres, copies)[1]


def _nearest_centres(X: np.ndarray, centres: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatL2(centres.shape[1])
    index.add(np.ascontiguousarray(centres, dtype=np.float32))
    squared, nearest = index.search(np.ascontiguousarray(X, dtype=np.float32), min(width, len(centres)))
    return np.sqrt(np.clip(squared, 0, None)), nearest


def _farther_than_home(X: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each face's MOST_COPIES nearest cells and how much farther each centre lies than the home
    cell's (a ratio, 1 for the home cell)."""
    distance, nearest = _nearest_centres(X, centres, MOST_COPIES)
    return distance / np.maximum(distance[:, :1], 1e-12), nearest


def _copies(ratio: np.ndarray, margin: float) -> np.ndarray:
    return np.clip((ratio <= 1.0 + margin).sum(axis=1), min(LEAST_COPIES, ratio.shape[1]), MOST_COPIES)


def cell_margin(sample: np.ndarray, centres: np.ndarray, copies: float = CELL_COPIES) -> float:
    """How much farther than its home cell's centre (a fraction) another cell's centre may lie for
    the face to be stored there too: chosen on a sample of the faces so that a face is stored
    `copies` times on average (inf: in every cell, when there are no more cells than that)."""
    ratio, _ = _farther_than_home(sample, centres)
    if len(centres) <= copies or _copies(ratio, np.inf).mean() <= copies:
        return float("inf")
    # Searched among the sample's own ratios, not by halving a range: a face at a small cell's
    # centre has a ratio of 1e11, and halving down from there stops far too coarse.
    margins = np.unique(ratio[:, LEAST_COPIES:].astype(np.float64)) - 1.0
    low, high = 0, len(margins) - 1
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if _copies(ratio, margins[middle]).mean() < copies else (low, middle)
    return float(margins[low])


def cells_of(X: np.ndarray, centres: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, w) each face's nearest cells, the home cell first, and (n, w) which of them store the
    face: those within the margin (cell_margin), at least LEAST_COPIES, at most MOST_COPIES."""
    nearest, stored, _ = cells_and_ratios(X, centres, margin)
    return nearest, stored


def cells_and_ratios(X: np.ndarray, centres: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cells_of, and (n, w) how much farther each of those centres lies than the home cell's (a
    ratio, 1 at home)."""
    ratio, nearest = _farther_than_home(X, centres)
    rank = np.arange(nearest.shape[1])
    return nearest, rank[None, :] < _copies(ratio, margin)[:, None], ratio


def route_to_cells(batches: Iterator[pd.DataFrame], centres: np.ndarray, margin: float) -> Iterator[pd.DataFrame]:
    """Each face (face_id, photo_id, embedding and its previous_* columns: the last run's person,
    probability and outlier score, null for a new face) as a row in each cell that stores it
    (cells_of), marked home in the nearest; farther: how much farther that cell's centre lies
    than the home cell's (a fraction, 0 at home)."""
    carried = ["face_id", "photo_id", "previous_person", "previous_probability", "previous_outlier_score"]
    for batch in batches:
        if batch.empty:
            continue
        X = np.stack(batch["embedding"].to_numpy()).astype(np.float32)
        nearest, stored, ratio = cells_and_ratios(X, centres, margin)
        face, rank = np.nonzero(stored)
        routed = pd.DataFrame({"cell": nearest[face, rank].astype(np.int32), "home": rank == 0,
                               "farther": ratio[face, rank].astype(np.float64) - 1.0})
        for column in carried:
            routed[column] = batch[column].to_numpy()[face]
        routed["embedding"] = list(X[face])
        yield routed


def cluster_cell(rows: pd.DataFrame, cluster: Callable[[np.ndarray, np.ndarray, pd.DataFrame], tuple],
                 most: int | None = None) -> pd.DataFrame:
    """One cell's faces clustered on one executor. cluster(X, photos, rows) -> (labels,
    probabilities, outlier_scores, old): the one-machine rules; old marks the labels that are
    the last run's person ids (an incremental run), the others are the cell's own numbers.
    Each face's person: a key unique across cells (person_key), null for a face in no person.
    most: the faces one task clusters at most. A cell is cut while its own faces are more than
    that (facecluster.grouping.distributed.cell_centres), but the copies of its neighbours' faces
    come on top: in 128 dimensions a few centres lie near many faces (a synthetic archive of two
    million faces in 24 cells of 250,000: 6 cells store more than 500,000 faces, up to 666,000,
    none more than 160,000 of its own). Past `most`, the copies whose home lies nearest are kept
    (the others are clustered in their own cells)."""
    rows = rows.sort_values(["face_id", "home"], ascending=[True, False]).drop_duplicates("face_id")
    if most is not None:
        rows = rows[kept_in_cell(rows["home"].to_numpy(bool), rows["farther"].to_numpy(np.float64), most)]
    rows = rows.reset_index(drop=True)
    X = np.stack(rows["embedding"].to_numpy()).astype(np.float32)
    labels, probabilities, outlier_scores, old = cluster(X, rows["photo_id"].to_numpy(), rows)
    labels = np.asarray(labels, dtype=np.int64)
    cell = rows["cell"].to_numpy(np.int64)
    key = np.where(old, labels, person_key(cell + 1, labels))
    return pd.DataFrame({"cell": cell.astype(np.int32), "home": rows["home"].to_numpy(bool),
                         "face_id": rows["face_id"].to_numpy(),
                         "person": pd.Series(key, dtype="Int64").mask(labels == NOISE).to_numpy(),
                         "probability": np.asarray(probabilities, dtype=np.float64),
                         "outlier_score": np.asarray(outlier_scores, dtype=np.float64)})


def kept_in_cell(home: np.ndarray, farther: np.ndarray, most: int) -> np.ndarray:
    """Which of a cell's faces its task clusters (cluster_cell): all of them up to `most`; past
    that, the cell's own faces (home), then its copies of other cells' faces, the smallest
    `farther` first."""
    kept = np.ones(len(home), dtype=bool)
    if len(home) > most:
        copies = np.flatnonzero(~home)
        kept[copies[np.argsort(farther[copies], kind="stable")][max(0, most - int(home.sum())):]] = False
    return kept


def person_key(cell, label):
    """One number per (cell, person of that cell), above every person id of a last run: what
    people_across_cells links. Cells count from 1 here."""
    return cell * (1 << 32) + label


def people_across_cells(cell_people, checkpoint=None):
    """cell_people (cell, home, face_id, person, probability, outlier_score: DataFrame) ->
    (face_id, person: long or null, probability, outlier_score), one row per face: the person its
    home cell found, as one person across cells: people of two cells that share LINK_FACES faces
    are one, named by the smallest key among them."""
    from pyspark.sql import functions as F

    from facecluster.grouping.components import connected_components

    grouped = cell_people.where(F.col("person").isNotNull())
    home = grouped.where("home").select("face_id", F.col("person").alias("src"))
    away = grouped.where(~F.col("home")).select("face_id", F.col("person").alias("dst"))
    # Counted both ways: a face of cell A found in cell B's person, and one of B's in A's.
    links = (home.join(away, "face_id").select(F.least("src", "dst").alias("src"), F.greatest("src", "dst").alias("dst"))
             .groupBy("src", "dst").count().where(F.col("count") >= LINK_FACES).select("src", "dst"))
    component = connected_components(links, checkpoint).withColumnRenamed("node", "key")
    faces = cell_people.where("home").select("face_id", "cell", "probability", "outlier_score",
                                             F.col("person").alias("key"))
    found = (faces.join(component, "key", "left")
             .select("face_id", "cell", F.coalesce("component", "key").alias("person"), "probability", "outlier_score"))
    # A face its home cell left in no person takes the person another of its cells put it in (the
    # smallest key, once joined). A small person whose faces have different home cells is found
    # whole only in the cell that holds them all: without this its faces were left out everywhere
    # else, and the one face whose home that cell is became a person of one (a synthetic archive
    # of 100,000 faces in 8 cells: 269 people of one face, and 6% fewer people than on one machine).
    elsewhere = (away.join(component.withColumnRenamed("key", "dst"), "dst", "left")
                 .groupBy("face_id").agg(F.min(F.coalesce("component", "dst")).alias("elsewhere")))
    resolved = (found.join(elsewhere, "face_id", "left")
                .select("face_id", F.coalesce("person", "elsewhere").alias("person"),
                        F.when(F.col("person").isNotNull(), F.col("probability")).otherwise(0.0).alias("probability"),
                        "outlier_score"))
    # HDBSCAN finds no person of one face; one left alone by the joins is a face not grouped.
    alone = resolved.where(F.col("person").isNotNull()).groupBy("person").count().where("count < 2").select("person")
    return (resolved.join(alone.withColumn("alone", F.lit(True)), "person", "left")
            .select("face_id", F.when(F.col("alone").isNull(), F.col("person")).alias("person"),
                    F.when(F.col("alone").isNull(), F.col("probability")).otherwise(0.0).alias("probability"),
                    "outlier_score"))
