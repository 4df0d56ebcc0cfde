"""The tables a clustering writes and reads on Spark: faces as one matrix, assignments, people and
person_albums. Shared by the jobs that cluster and those that change a clustered run (forget)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from facecluster.core.catalogue import ASSIGNMENTS, FACES, PEOPLE, PERSON_ALBUMS, PHOTOS
from facecluster.core.runtime import batches_of_faces, table_path
from facecluster.core.tables import write_table



def extract_faces(spark: SparkSession, out: str) -> DataFrame:
    """Faces with the albums of their photo (a photo copied into two albums counts in both)."""
    faces = spark.read.parquet(FACES.path(out)).select("face_id", "photo_id", "face_px", "det_score", "embedding",
                                                       "model")
    albums = spark.read.parquet(PHOTOS.path(out)).select("photo_id", "albums")
    return faces.join(albums, "photo_id", "left").orderBy("face_id")


def to_matrix(faces: pa.Table) -> tuple[pd.DataFrame, np.ndarray]:
    """(face_id, photo_id, face_px, face_score, albums, model) and the (n, d) float32 embedding
    matrix, without Python lists."""
    column = faces.column("embedding").combine_chunks()
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) and lengths.min() != lengths.max():
        raise ValueError(f"embeddings of different lengths ({lengths.min()} and {lengths.max()})")
    dimension = int(lengths[0]) if len(lengths) else 0
    matrix = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(faces), dimension)
    meta = faces.select(["face_id", "photo_id", "face_px", "albums", "model"]).to_pandas()
    meta["face_score"] = faces.column("det_score").to_numpy(zero_copy_only=False).astype(np.float64)

    meta["albums"] = meta["albums"].map(lambda a: list(a) if a is not None else [])
    return meta, matrix


def write_people_tables(spark: SparkSession, out: str, assignments: pd.DataFrame, people: pd.DataFrame) -> None:
    with batches_of_faces(spark, 200_000):
        write_table(spark.createDataFrame(assignments, schema=ASSIGNMENTS.schema), out, ASSIGNMENTS.name, files=1)
        write_table(spark.createDataFrame(people, schema=PEOPLE.schema), out, PEOPLE.name, files=1)


def person_albums(assignments: DataFrame, faces: DataFrame, photos: DataFrame) -> DataFrame:
    """person_id, album, n_faces, n_photos; a photo copied into several albums counts in each."""
    return (assignments.where(F.col("person_id") >= 0).select("face_id", "person_id")
            .join(faces.select("face_id", "photo_id"), "face_id")
            .join(photos.select("photo_id", F.explode("albums").alias("album")), "photo_id")
            .groupBy("person_id", "album")
            .agg(F.countDistinct("face_id").alias("n_faces"), F.countDistinct("photo_id").alias("n_photos")))


def write_person_albums(spark: SparkSession, out: str) -> DataFrame:
    """person_albums from the run's assignments, faces and photos; returns the written table."""
    read = lambda name: spark.read.parquet(table_path(out, name))  # noqa: E731
    return spark.read.parquet(write_table(person_albums(read("assignments"), read("faces"), read("photos")),
                                          out, PERSON_ALBUMS.name, files=1))


def recompute_people(spark: SparkSession, out: str) -> None:
    """people and person_albums again from the faces and assignments left (after a forget: a
    centroid or exemplar may have been a forgotten face); names, and pictures chosen while
    still theirs, stay with their people."""
    from facecluster.grouping.people import people_table

    kept = spark.read.parquet(PEOPLE.path(out))
    names = kept.select("person_id", "name", "exemplar_face_id", *(["hidden"] if "hidden" in kept.columns else [])).toPandas()
    meta, matrix = to_matrix(extract_faces(spark, out).toArrow())
    assignments = spark.read.parquet(ASSIGNMENTS.path(out)).toPandas()
    labels = meta[["face_id"]].merge(assignments[["face_id", "person_id"]], on="face_id", how="left")["person_id"]
    people = people_table(meta, matrix, labels.fillna(-1).to_numpy().astype("int64"))
    people["name"] = people["person_id"].map(names.set_index("person_id")["name"])
    # a picture the user chose stays while the face is still theirs
    picture = people["person_id"].map(names.set_index("person_id")["exemplar_face_id"])
    still = picture.map(labels.set_axis(meta["face_id"]).get) == people["person_id"]
    people["exemplar_face_id"] = picture.where(still, people["exemplar_face_id"])
    if "hidden" in names.columns:
        people["hidden"] = people["person_id"].map(names.set_index("person_id")["hidden"]).fillna(False).astype(bool)
    write_people_tables(spark, out, assignments, people)
    write_person_albums(spark, out)
