"""Every table of an output root: its name, what one row is, its key and, where it is built from
rows on the driver, its schema. Jobs and forget name tables from here, never by a string.

A face's id is `<photo_id>:<face_index>` (face_id / face_id_column): the photo's content hash
and the face's place in the detector's answer, so that the same photo embedded again by the
same model gives the same ids.
"""
from __future__ import annotations

from dataclasses import dataclass

from facecluster.core.runtime import table_path


@dataclass(frozen=True)
class Table:
    name: str
    row: str                   # what one row is, in the user's words
    key: tuple[str, ...]       # the columns that name a row
    schema: str | None = None  # Spark DDL where rows are built on the driver; else the writer's

    def path(self, out: str) -> str:
        return table_path(out, self.name)


PHOTO_FILES = Table("photo_files", "a file the last ingest read: path, album, length, modified", ("path",))
PHOTOS = Table("photos", "a distinct photo (by content): its bytes, albums and paths", ("photo_id",))
PHOTO_STATUS = Table("photo_status", "what embedding a photo gave: ok, no_face or error, and why", ("photo_id",))
EMBED_PARTS = Table("embed_parts", "a committed round of embedding (one sub-table per round and model)", ("photo_id",))
FACES = Table("faces", "a face: box, landmarks, size, thumbnail, embedding, model", ("face_id",))
ASSIGNMENTS = Table("assignments", "a face's person (-1: not grouped) and how sure", ("face_id",),
                    "face_id string, person_id long, probability double, outlier_score double, clustered boolean, "
                    "left_out string, clarity double, run_id string")
PEOPLE = Table("people", "a person: name, faces, photos, albums, exemplar face, centroid", ("person_id",),
               "person_id long, name string, n_faces long, n_photos long, albums array<string>, n_albums long, "
               "exemplar_face_id string, centroid array<float>, hidden boolean")
PERSON_ALBUMS = Table("person_albums", "a person in an album: faces and photos of them there", ("person_id", "album"))
LABELS_APPLIED = Table("labels_applied", "a line of labels.csv as applied to faces", ("label_row", "face_id"),
                       "label_row long, face_id string, relation string, `group` string, name string")
IDENTITIES = Table("identities", "a face named from a gallery (facecluster identify), or unknown", ("face_id",),
                   "face_id string, name string, probability double, distance double, model string")
KNN_GRAPH = Table("knn_graph", "a face and one of its nearest faces", ("face_id", "neighbour_id"))
CELLS = Table("cells", "a cell of the archive (cluster.algorithm distributed): its centre, kept for the next run",
              ("cell",), "cell int, centre array<float>, margin double, faces long, faces_per_cell long, model string")
FORGOTTEN = Table("forgotten", "a keyed digest of a forgotten photo or face, kept out of every later run", ("digest",))

# The tables a run leaves for the user, in the order they are listed.
RESULTS = (PHOTOS, PHOTO_STATUS, FACES, ASSIGNMENTS, PEOPLE, PERSON_ALBUMS)
# What forget must clean, by the kind of key.
FACE_TABLES = (FACES, ASSIGNMENTS, IDENTITIES, KNN_GRAPH)
PHOTO_TABLES = (PHOTOS, PHOTO_FILES, PHOTO_STATUS)

LABEL_LOG = "labels.csv"         # the user's labels, a log: lines are added, never removed
STAGING = "_staging"             # tables being written (facecluster/core/tables.py)
FORGET_KEY = "_forget_key"       # the key of the forgotten digests
FORGET_PENDING = "_forget_pending.json"  # a forget recorded, not yet carried out


def face_id(photo_id: str, face_index: int) -> str:
    return f"{photo_id}:{face_index}"


def face_id_column(photo_id, face_index):
    """face_id as a Spark column, from a photo id column (or name) and a face index column."""
    from pyspark.sql import functions as F

    return F.concat_ws(":", photo_id, face_index.cast("string"))
