"""forget: nothing of a forgotten person or photo remains in any file under the output root,
and a later run keeps them out."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def traces(out: Path, needles: dict) -> list[str]:
    """Every place under `out` where a forgotten value still appears: any cell of any Parquet
    file (strings, bytes, float vectors), and the raw bytes of every other file."""
    found = []
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for column in table.column_names:
                values = table.column(column).to_pylist()
                flat = repr(values)
                for what, needle in needles.items():
                    if isinstance(needle, str) and needle in flat:
                        found.append(f"{path}:{column}: {what}")
                    elif isinstance(needle, bytes) and any(needle in v for v in _bytes_in(values)):
                        found.append(f"{path}:{column}: {what}")
                    elif isinstance(needle, np.ndarray) and any(_same_vector(v, needle) for v in _lists_in(values)):
                        found.append(f"{path}:{column}: {what}")
        else:
            raw = path.read_bytes()
            for what, needle in needles.items():
                if isinstance(needle, str) and needle.encode() in raw or isinstance(needle, bytes) and needle in raw:
                    found.append(f"{path}: {what}")
    return found


def _bytes_in(values):
    for v in values:
        if isinstance(v, bytes):
            yield v
        elif isinstance(v, (list, dict)):
            yield from _bytes_in(v.values() if isinstance(v, dict) else v)


def _lists_in(values):
    for v in values:
        if isinstance(v, list) and v and isinstance(v[0], float):
            yield v
        elif isinstance(v, (list, dict)):
            yield from _lists_in(v.values() if isinstance(v, dict) else v)


def _same_vector(values, needle):
    return len(values) == len(needle) and np.allclose(values, needle, atol=1e-6)


def needles_for(out: Path, faces: pd.DataFrame, with_photo: bool = True) -> dict:
    needles = {}
    for face in faces.itertuples():
        needles[f"face_id {face.face_id}"] = face.face_id
        needles[f"thumb of {face.face_id}"] = bytes(face.thumb)[-100:-36]  # entropy-coded pixels, not shared headers
        needles[f"embedding of {face.face_id}"] = np.asarray(face.embedding, dtype=np.float32)
    if with_photo:
        needles["photo_id"] = faces.photo_id.iloc[0]
    return needles


def test_forget_a_person_and_a_photo_leaves_no_trace(spark, sample_run, sample_archive, tmp_path, settings):
    from facecluster.cli import main
    from facecluster.jobs import cluster, embed, ingest

    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    faces = pd.read_parquet(out / "faces")
    assignments = pd.read_parquet(out / "assignments")
    (out / "labels.csv").write_text("action,person_id,other_person_id,face_id,name\nname,1,,,Bob\nname,0,,,Ann\n")
    cluster.cluster(spark, str(out), settings["cluster"])  # Bob's name now in people and labels_applied
    from facecluster.jobs.knn_graph import knn_graph

    knn_graph(spark, str(out), k=4, n_lists=2, probes=2)  # face ids on both sides of its edges
    person = 1
    theirs = faces[faces.face_id.isin(assignments.face_id[assignments.person_id == person])]
    assert len(theirs) >= 2
    photo = faces[faces.path.str.endswith("2023_holiday/img57.jpg")]
    photo_path = str(sample_archive / "2023_holiday" / "img57.jpg")
    photo_needles = {**needles_for(out, photo), "photo path": "2023_holiday/img57.jpg"}
    person_needles = {**needles_for(out, theirs, with_photo=False), "name": "Bob"}
    assert traces(out, person_needles) and traces(out, photo_needles)  # the check can find them

    assert main(["forget", "--out", str(out), "--person", str(person), "--set", "spark.master=local[2]"]) == 0
    assert main(["forget", "--out", str(out), "--photo", photo_path, "--set", "spark.master=local[2]"]) == 0
    assert traces(out, person_needles) == []
    assert traces(out, photo_needles) == []
    people = pd.read_parquet(out / "people")
    assert person not in set(people.person_id) and "Ann" in set(people.name)  # the rest is intact
    assert len(pd.read_parquet(out / "faces")) == len(faces) - len(theirs) - len(photo)

    # a later run over the same archive keeps them out
    ingest.ingest(spark, str(sample_archive), str(out))
    from facecluster.udfs.embedders import resolve_embedder

    embed_settings, weights = resolve_embedder(settings["embed"])
    embed.embed(spark, str(out), embed_settings, weights)
    cluster.cluster(spark, str(out), settings["cluster"])
    assert traces(out, {k: v for k, v in photo_needles.items() if k != "photo path"}) == []
    assert traces(out, {k: v for k, v in person_needles.items() if k != "name"}) == []

    with pytest.raises(SystemExit):
        main(["forget", "--out", str(out), "--person", "999", "--set", "spark.master=local[2]"])
