"""People found on Spark's executors (cluster.algorithm: distributed), the driver holding no faces.

The faces are cut into cells (facecluster.grouping.cells); each cell is clustered by the
one-machine rules in one task and the cells' people are joined where they share faces. Around
that, every step a clustering takes on one machine is done here with DataFrames: the faces left
out (too small, unclear, labelled not a face), the user's labels, stable person ids and the
people table. The driver holds the cell centres, a sample of faces to train them on, the
labelled faces, and counts per cell and per person.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster.core.catalogue import PEOPLE
from facecluster.grouping import cells
from facecluster.grouping.clustering import NOISE, PeopleClusterer

SAMPLE_FACES = 200_000  # faces brought to the driver: cell centres, distances fitted to an unmeasured model
REASONS_SCHEMA = "left_out string, clarity double"  # what the quality gate adds to a face


def chosen_algorithm(n_faces: int, cluster_settings: dict) -> str:
    """cluster.algorithm, with auto resolved: exact up to AUTO_EXACT_UP_TO faces, distributed from
    cluster.distributed_from, knn between."""
    from facecluster.grouping.clustering import AUTO_EXACT_UP_TO

    algorithm = cluster_settings["algorithm"]
    if algorithm != "auto":
        return algorithm
    if n_faces >= cluster_settings["distributed_from"]:
        return "distributed"
    return "exact" if n_faces <= AUTO_EXACT_UP_TO else "knn"


def _batch_matrix(batch: pd.DataFrame) -> np.ndarray:
    return np.stack(batch["embedding"].to_numpy()).astype(np.float32) if len(batch) else np.zeros((0, 0), np.float32)


def step(spark: SparkSession, what: str) -> None:
    """Name the Spark jobs that follow in the UI and the event log (benchmarks/distributed.py
    reads them there)."""
    spark.sparkContext.setJobDescription(f"facecluster cluster: {what}")


def left_out_on_executors(faces: DataFrame, cluster_settings: dict, model: str, member: set, not_faces: set
                          ) -> DataFrame:
    """faces (face_id, face_px, det_score, embedding and any other columns) with two more:
    left_out (null for the faces clustered) and clarity, by the one-machine gate
    (facecluster.grouping.quality) applied batch by batch. member: faces a label puts in a person
    (clustered whatever their quality); not_faces: faces labelled "not a face"."""
    from pyspark.sql.functions import pandas_udf

    from facecluster.grouping.quality import NOT_A_FACE, clarity, left_out, min_clarity

    threshold = min_clarity(cluster_settings["min_clarity"], model)

    # A column of each row rather than a table joined back by face_id: the join shuffled and
    # sorted every face with its embedding once more (3.1 GB of shuffle at two million faces).
    @pandas_udf(REASONS_SCHEMA)
    def reasons(face_id: pd.Series, face_px: pd.Series, det_score: pd.Series, embedding: pd.Series) -> pd.DataFrame:
        face_clarity = clarity(np.stack(embedding.to_numpy()).astype(np.float32), model) if len(embedding) else np.zeros(0)
        reason = left_out(face_px.to_numpy(dtype=np.float64), det_score.to_numpy(dtype=np.float64),
                          face_clarity, cluster_settings, threshold)
        reason[face_id.isin(member).to_numpy()] = ""
        reason[face_id.isin(not_faces).to_numpy()] = NOT_A_FACE
        return pd.DataFrame({"left_out": pd.Series(reason, dtype=object).replace("", None), "clarity": face_clarity})

    gated = faces.withColumn("_reasons", reasons("face_id", "face_px", "det_score", "embedding"))
    return gated.select(*faces.columns, "_reasons.left_out", "_reasons.clarity")


def sample_faces(faces: DataFrame, n_faces: int, size: int = SAMPLE_FACES, seed: int = 0) -> pd.DataFrame:
    """About `size` faces (face_id, photo_id, embedding) on the driver, whole photos at a time
    (the distances fitted to an unmeasured model need faces that share a photo), chosen by a
    hash of the photo and sorted: the same faces and the same cells on every run, whatever the
    order the executors read them in."""
    fraction = min(1.0, size / max(1, n_faces))
    chosen = faces if fraction >= 1.0 else faces.where(
        (F.abs(F.hash("photo_id", F.lit(seed))) % 1_000_000) < int(fraction * 1_000_000))
    return chosen.select("face_id", "photo_id", "embedding").toPandas().sort_values("face_id", ignore_index=True)


def model_distances(model: str, sample: pd.DataFrame):
    """The model's distances: measured, or fitted to the sample's faces that share a photo."""
    from facecluster.recognition.thresholds import distances

    return distances(model, _batch_matrix(sample), sample["photo_id"].to_numpy())


def cell_centres(faces: DataFrame, sample: pd.DataFrame, n_faces: int, faces_per_cell: int, seed: int = 0,
                 kept: np.ndarray | None = None) -> np.ndarray:
    """Centres for cells of about faces_per_cell faces: kept (the last run's), or trained on the
    sample. A cell too large (a person of half a million faces: k-means gives a dense region few
    centres for its share of the sample; or a large album of one person added to kept cells) is
    cut again by centres trained on its own faces, until none holds more than twice
    faces_per_cell (three rounds at most); the other cells stay as they were."""
    centres = kept if kept is not None else cells.train_cells(_batch_matrix(sample),
                                                              cells.cells_for(n_faces, faces_per_cell), seed)
    for round_ in range(3):
        if len(centres) == 1:
            break
        home = functools.partial(_home_cells, centres=centres)
        counts = faces.select("embedding").mapInPandas(home, "cell int").groupBy("cell").count().toPandas()
        large = counts[counts["count"] > cells.most_faces(faces_per_cell)]
        if large.empty:
            break
        replaced = [centres[np.setdiff1d(np.arange(len(centres)), large["cell"].to_numpy())]]
        for cell, count in zip(large["cell"], large["count"]):
            fraction = min(1.0, cells.SAMPLE_PER_CELL * 8 * count / faces_per_cell / count)
            own = faces.select("embedding").mapInPandas(
                functools.partial(_faces_of_cell, centres=centres, cell=int(cell)), "embedding array<float>")
            own_sample = _batch_matrix(own.sample(fraction=fraction, seed=seed + round_).toPandas())
            replaced.append(cells.train_cells(own_sample, int(np.ceil(count / faces_per_cell)), seed + round_))
        centres = np.concatenate(replaced).astype(np.float32)
    return centres


def _home_cells(batches, centres):
    for batch in batches:
        if len(batch):
            yield pd.DataFrame({"cell": cells.nearest_cells(_batch_matrix(batch), centres, 1)[:, 0].astype(np.int32)})


def _faces_of_cell(batches, centres, cell):
    for batch in batches:
        if len(batch):
            home = cells.nearest_cells(_batch_matrix(batch), centres, 1)[:, 0]
            yield batch[home == cell]


def cell_clusterer(cluster_settings: dict, model: str, distances, previous_largest: int | None, n_cells: int):
    """The function each cell's task runs (facecluster.grouping.cells.cluster_cell): the one-machine
    rules on the cell's faces, kNN-graph HDBSCAN inside. In an incremental run (previous_largest:
    the last run's largest person id) a cell without new faces keeps its faces' people, and a
    cell with new faces adds them to its old people as one machine does."""
    from facecluster.grouping.incremental import add_to_people

    settings = {**cluster_settings, "algorithm": "knn"}

    def clusterer():
        found = PeopleClusterer.from_settings(settings, model, distances)
        found.part_of_larger = n_cells > 1
        return found

    def cluster(X: np.ndarray, photos: np.ndarray, rows: pd.DataFrame):
        previous = rows["previous_person"]
        if previous_largest is not None and previous.notna().all():  # no new face here: nothing to do
            return (previous.to_numpy(np.int64), rows["previous_probability"].to_numpy(np.float64),
                    rows["previous_outlier_score"].to_numpy(np.float64), previous.to_numpy() != NOISE)
        if previous_largest is not None and (previous.fillna(NOISE) != NOISE).any():
            old = rows[previous.notna()]
            last = pd.DataFrame({"face_id": old["face_id"], "person_id": old["previous_person"].astype(np.int64),
                                 "probability": old["previous_probability"],
                                 "outlier_score": old["previous_outlier_score"]})
            last = pd.concat([last, pd.DataFrame({"face_id": ["\0largest"], "person_id": [previous_largest],
                                                  "probability": [0.0], "outlier_score": [0.0]})])
            labels, probabilities, outliers = add_to_people(rows[["face_id", "photo_id"]].reset_index(drop=True), X,
                                                            np.ones(len(X), dtype=bool), last, settings, model,
                                                            distances, clusterer())
            return labels, probabilities, outliers, (labels != NOISE) & (labels <= previous_largest)
        found = clusterer().fit(X, photos)
        return found.labels_, found.probabilities_, found.outlier_scores_, np.zeros(len(X), dtype=bool)

    return cluster


def people_on_executors(spark: SparkSession, faces: DataFrame, previous: DataFrame | None, cluster_settings: dict,
                        model: str, distances, n_faces: int, sample: pd.DataFrame, kept: cells.Cells | None = None,
                        checkpoint=None) -> tuple[DataFrame, cells.Cells]:
    """faces (face_id, photo_id, embedding: the faces to cluster) -> (face_id, person: a key, null
    for a face in no person, probability, outlier_score), and the cells used. previous: the last
    run's assignments (face_id, person_id, probability, outlier_score) in an incremental run, else
    None; kept: the last run's cells, used again where they suit this archive (Cells.suit), so
    that only the cells the new faces fall in are clustered again."""
    faces_per_cell = cluster_settings["faces_per_cell"]
    step(spark, "cell centres")
    kept = kept if kept is not None and kept.suit(n_faces, faces_per_cell, model) else None
    centres = cell_centres(faces, sample, n_faces, faces_per_cell, kept=None if kept is None else kept.centres)
    if kept is not None and centres is kept.centres:
        used = kept
    else:
        used = cells.Cells(centres, cells.cell_margin(_batch_matrix(sample), centres),
                           n_faces if kept is None else kept.faces, faces_per_cell, model)
    if previous is not None:
        faces = faces.join(previous.select("face_id", F.col("person_id").alias("previous_person"),
                                           F.col("probability").alias("previous_probability"),
                                           F.col("outlier_score").alias("previous_outlier_score")), "face_id", "left")
        largest = previous.agg(F.max("person_id")).first()[0]
    else:
        faces = faces.select("*", F.lit(None).cast("long").alias("previous_person"),
                             F.lit(None).cast("double").alias("previous_probability"),
                             F.lit(None).cast("double").alias("previous_outlier_score"))
        largest = None
    route = functools.partial(cells.route_to_cells, centres=centres, margin=used.margin)
    columns = ["face_id", "photo_id", "embedding", "previous_person", "previous_probability", "previous_outlier_score"]
    if previous is not None:
        touched = (faces.where(F.col("previous_person").isNull()).select(*columns)
                   .mapInPandas(route, cells.ROUTED_SCHEMA).select("cell").distinct().count())
        print(f"cluster: new faces in {touched} of {len(centres)} cells; the others keep their people", flush=True)
    routed = faces.select(*columns).mapInPandas(route, cells.ROUTED_SCHEMA)
    cluster = cell_clusterer(cluster_settings, model, distances, None if largest is None else int(largest), len(centres))
    most = cells.most_faces(faces_per_cell)
    found = routed.groupBy("cell").applyInPandas(lambda rows: cells.cluster_cell(rows, cluster, most),
                                                 cells.CELL_PEOPLE_SCHEMA)
    checkpoint = checkpoint or (lambda frame: frame.localCheckpoint(eager=True))
    step(spark, "cluster each cell")
    found = checkpoint(found)
    step(spark, "join people across cells")
    return cells.people_across_cells(found, checkpoint), used


def previous_for_labels(previous: DataFrame | None, labels: pd.DataFrame | None, first_row: int) -> pd.DataFrame | None:
    """The last run's assignments (face_id, person_id) of the people and faces the label lines
    from first_row on refer to: what facecluster.curation.labels.snapshot reads, without the
    rest of the archive."""
    if previous is None:
        return None
    if labels is None or len(labels) <= first_row:
        return previous.limit(0).select("face_id", "person_id").toPandas()
    lines = labels.iloc[first_row:]
    people = {int(p) for column in ("person_id", "other_person_id") if column in lines
              for p in lines[column].dropna()}
    faces = [f for f in lines["face_id"].dropna()] if "face_id" in lines else []
    if faces:
        people |= {r.person_id for r in previous.where(F.col("face_id").isin(faces)).select("person_id").collect()}
    people.discard(NOISE)
    return (previous.where(F.col("person_id").isin(sorted(people)) | F.col("face_id").isin(faces))
            .select("face_id", "person_id").toPandas())


def obey_labels(found: DataFrame, constraints) -> tuple[DataFrame, dict]:
    """found (face_id, person, ...) made to obey the user's labels as on one machine
    (facecluster.curation.labels.constraint_changes); returns it and identity -> person key."""
    from facecluster.curation.labels import constraint_changes

    if not constraints:
        return found, {}
    spark = found.sparkSession
    labelled_ids = sorted(set(constraints.member) | set(constraints.excluded))
    labelled = (found.where(F.col("face_id").isin(labelled_ids))
                .select("face_id", F.coalesce("person", F.lit(NOISE)).alias("label")).toPandas())
    involved = sorted(int(k) for k in labelled["label"].unique() if k != NOISE)
    sizes = (found.where(F.col("person").isin(involved)).groupBy("person").count().toPandas()
             .set_index("person")["count"])
    largest = found.agg(F.max("person")).first()[0]
    remap, overrides, identity_label = constraint_changes(labelled, sizes, NOISE if largest is None else int(largest),
                                                          constraints)
    key = F.coalesce("person", F.lit(NOISE))
    if remap:
        changes = spark.createDataFrame(pd.DataFrame({"key": list(remap), "remapped": list(remap.values())}),
                                        "key long, remapped long")
        found = found.withColumn("key", key).join(F.broadcast(changes), "key", "left").withColumn(
            "person", F.coalesce("remapped", "key")).drop("key", "remapped")
        key = F.col("person")
    faces = spark.createDataFrame(pd.DataFrame({"face_id": list(overrides), "assigned": list(overrides.values())}),
                                  "face_id string, assigned long")
    found = (found.withColumn("person", key).join(F.broadcast(faces), "face_id", "left")
             .withColumn("person", F.coalesce("assigned", "person")).drop("assigned")
             .withColumn("person", F.when(F.col("person") != NOISE, F.col("person"))))
    return found, identity_label


def stable_ids(found: DataFrame, previous: DataFrame | None) -> dict:
    """person key -> person id, as on one machine (facecluster.curation.labels.ids_for_labels):
    from one count per person and per (person, previous person), never the faces."""
    from facecluster.curation.labels import ids_for_labels

    grouped = found.where(F.col("person").isNotNull())
    sizes = grouped.groupBy("person").count().toPandas().set_index("person")["count"]
    if previous is None:
        overlap, previous_max = pd.DataFrame(columns=["new", "old", "count"]), NOISE
    else:
        old = previous.where(F.col("person_id") != NOISE).select("face_id", F.col("person_id").alias("old"))
        overlap = (grouped.join(old, "face_id").groupBy(F.col("person").alias("new"), "old").count().toPandas())
        previous_max = previous.agg(F.max("person_id")).first()[0]
        previous_max = NOISE if previous_max is None else int(previous_max)
    # Without a last run the largest person is 0, as number_by_size numbers them.
    return ids_for_labels(overlap, sizes.sort_index(), previous_max)


def people_rows(assignments: DataFrame, faces: DataFrame) -> DataFrame:
    """The people table (facecluster.grouping.people.people_table), one task per group of people."""
    from facecluster.grouping.people import people_table

    members = (assignments.where(F.col("person_id") != NOISE).select("face_id", "person_id")
               .join(faces.select("face_id", "photo_id", "albums", "embedding"), "face_id"))

    def person(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.assign(albums=rows["albums"].map(lambda a: list(a) if a is not None else []))
        table = people_table(rows, _batch_matrix(rows), rows["person_id"].to_numpy(np.int64))
        return table.assign(name=None, hidden=False)

    return members.groupBy("person_id").applyInPandas(person, PEOPLE.schema)
