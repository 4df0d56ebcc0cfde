"""The Spark transforms on a local session with small data."""
import hashlib

import pytest
from pyspark.sql import Row

from facecluster.jobs.embed import faces_table, photo_status_table
from facecluster.jobs.ingest import album_from_path, extract_photo_files, list_photo_files, photos_table
from facecluster.grouping.people_tables import person_albums
from facecluster.jobs.people import people_by_albums
from facecluster.udfs.embed_photos import RESULT_SCHEMA

pytestmark = pytest.mark.spark


def test_photos_are_keyed_by_content_and_keep_every_album(spark, tmp_path):
    for album, name, content in [("a", "x.jpg", b"same bytes"), ("b", "copy.JPG", b"same bytes"),
                                 ("b", "y.png", b"other"), ("", "loose.webp", b"loose"), ("a", "notes.txt", b"no")]:
        folder = tmp_path / album
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(content)
    root = str(tmp_path)
    files = album_from_path(extract_photo_files(spark, list_photo_files(spark, root)))
    photos = {r["photo_id"]: r for r in photos_table(files).collect()}
    assert len(photos) == 3  # notes.txt is not a photo; x.jpg and copy.JPG are one photo
    same = photos[hashlib.sha256(b"same bytes").hexdigest()]
    assert same["albums"] == ["a", "b"] and same["album"] == "a"
    assert [p.rsplit("/", 2)[-2:] for p in same["paths"]] == [["a", "x.jpg"], ["b", "copy.JPG"]]
    assert same["n_bytes"] == len(b"same bytes") and bytes(same["content"]) == b"same bytes"
    assert photos[hashlib.sha256(b"loose").hexdigest()]["album"] == ""


def test_ingest_reads_only_new_and_changed_files(spark, tmp_path):
    import os

    from facecluster.jobs.ingest import ingest

    archive, out = tmp_path / "archive", tmp_path / "out"
    (archive / "a").mkdir(parents=True)
    for name, content in [("1.jpg", b"first photo"), ("2.jpg", b"second photo"), ("empty.jpg", b"")]:
        (archive / "a" / name).write_bytes(content)
    first = {r.photo_id: r for r in ingest(spark, str(archive), str(out)).collect()}
    assert len(first) == 3
    # A file whose bytes change while its size and time stay the same is not read again: proof
    # that known files are taken from the last ingest, not re-read.
    stat = os.stat(archive / "a" / "1.jpg")
    (archive / "a" / "1.jpg").write_bytes(b"FIRST PHOTO")
    os.utime(archive / "a" / "1.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (archive / "b").mkdir()
    (archive / "b" / "3.jpg").write_bytes(b"third photo")
    (archive / "b" / "copy.jpg").write_bytes(b"second photo")  # a known photo in a new album
    os.remove(archive / "a" / "empty.jpg")
    second = {r.photo_id: r for r in ingest(spark, str(archive), str(out)).collect()}
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    assert set(second) == {sha(b"first photo"), sha(b"second photo"), sha(b"third photo")}
    assert bytes(second[sha(b"first photo")].content) == b"first photo"  # kept from the last photos table
    assert second[sha(b"second photo")].albums == ["a", "b"]
    assert bytes(second[sha(b"third photo")].content) == b"third photo" and second[sha(b"third photo")].n_bytes == 11
    # a changed file (new size) is read again
    (archive / "a" / "1.jpg").write_bytes(b"a longer first photo")
    third = {r.photo_id for r in ingest(spark, str(archive), str(out)).collect()}
    assert sha(b"a longer first photo") in third and sha(b"first photo") not in third
    # Each ingest's new photos are a batch of their own; adding photos leaves earlier batches'
    # files as they were, so a new album never rewrites the archive's bytes.
    batches = {r.photo_id: r.batch for r in spark.read.parquet(str(out / "photos")).collect()}
    assert batches[sha(b"third photo")] == 2 and batches[sha(b"a longer first photo")] == 3
    before = {f: f.stat().st_mtime_ns for f in (out / "photos").glob("batch=*/*.parquet")}
    (archive / "c").mkdir()
    (archive / "c" / "4.jpg").write_bytes(b"fourth photo")
    fourth = {r.photo_id: r for r in ingest(spark, str(archive), str(out)).collect()}
    assert fourth[sha(b"fourth photo")].batch == 4 and set(fourth) == third | {sha(b"fourth photo")}
    assert {f: f.stat().st_mtime_ns for f in (out / "photos").glob("batch=[123]/*.parquet")} == before


def test_results_split_into_faces_and_photo_status(spark):
    face = {"face_index": 0, "box": [1.0, 2.0, 30.0, 40.0], "landmarks": [[5.0, 6.0]] * 5, "det_score": 0.99,
            "face_px": 29.0, "embedding": [0.6, 0.8], "thumb": bytearray(b"jpg")}
    results = spark.createDataFrame([
        ("p1", "a", "/a/1.jpg", "ok", None, 100, 80, 2, "m", [face, {**face, "face_index": 1}]),
        ("p2", "a", "/a/2.jpg", "no_face", None, 100, 80, 0, "m", []),
        ("p3", "b", "/b/3.jpg", "error", "empty file (0 bytes)", None, None, 0, "m", []),
    ], RESULT_SCHEMA)
    faces = faces_table(results).orderBy("face_id").collect()
    assert [f["face_id"] for f in faces] == ["p1:0", "p1:1"]
    assert faces[0]["embedding"] == pytest.approx([0.6, 0.8]) and faces[0]["model"] == "m"
    status = {r["photo_id"]: r for r in photo_status_table(results).collect()}
    assert set(status) == {"p1", "p2", "p3"}  # every photo has a status row
    assert status["p3"]["status"] == "error" and "empty" in status["p3"]["error"]


def test_person_album_view_lists_people_in_several_albums_first(spark):
    assignments = spark.createDataFrame([Row(face_id=f, person_id=p) for f, p in
                                         [("f1", 0), ("f2", 0), ("f3", 1), ("f4", 1), ("f5", 1), ("f6", -1)]])
    faces = spark.createDataFrame([Row(face_id=f, photo_id=p) for f, p in
                                   [("f1", "p1"), ("f2", "p2"), ("f3", "p3"), ("f4", "p4"), ("f5", "p5"), ("f6", "p6")]])
    photos = spark.createDataFrame([Row(photo_id=p, albums=a) for p, a in
                                    [("p1", ["x"]), ("p2", ["y", "z"]), ("p3", ["x"]), ("p4", ["x"]),
                                     ("p5", ["x"]), ("p6", ["y"])]])
    people = spark.createDataFrame([Row(person_id=0, name=None, n_faces=2, n_photos=2, exemplar_face_id="f1"),
                                    Row(person_id=1, name="Ana", n_faces=3, n_photos=3, exemplar_face_id="f3")],
                                   "person_id long, name string, n_faces long, n_photos long, exemplar_face_id string")
    by_album = person_albums(assignments, faces, photos)
    assert sorted((r["person_id"], r["album"], r["n_faces"]) for r in by_album.collect()) == [
        (0, "x", 1), (0, "y", 1), (0, "z", 1), (1, "x", 3)]
    view = people_by_albums(people, by_album).collect()
    assert [r["person_id"] for r in view] == [0, 1]  # three albums before one, though smaller
    assert view[0]["n_albums"] == 3 and view[1]["name"] == "Ana"
