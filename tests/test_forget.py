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
    photo = faces[faces.path.str.endswith("2023_holiday/img57.jpg")]
    other = faces[~faces.photo_id.isin(photo.photo_id) & faces.face_id.isin(
        assignments.face_id[~assignments.person_id.isin([0, 1])])].face_id.iloc[0]
    # one action on two faces (the review page's selection): forgetting one keeps the other's label
    (out / "labels.csv").write_text("action,person_id,other_person_id,face_id,name\nname,1,,,Bob\nname,0,,,Ann\n"
                                    f"not_a_face,,,{photo.face_id.iloc[0]} {other},\n")
    cluster.cluster(spark, str(out), settings["cluster"])  # Bob's name now in people and labels_applied
    from facecluster.jobs.knn_graph import knn_graph

    knn_graph(spark, str(out), k=4, n_lists=2, probes=2)  # face ids on both sides of its edges
    person = 1
    theirs = faces[faces.face_id.isin(assignments.face_id[assignments.person_id == person])]
    assert len(theirs) >= 2
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
    kept = pd.read_csv(out / "labels.csv", dtype=str).iloc[2]
    assert kept["action"] == "not_a_face" and kept["face_id"] == other, "the other face of the action keeps its label"
    applied = pd.read_parquet(out / "labels_applied")
    assert set(applied.loc[applied.relation == "not_face", "face_id"]) == {other}

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


def test_forget_reaches_the_review_cache_exports_and_pages_written_elsewhere(spark, sample_run, tmp_path, monkeypatch):
    """Every copy the project wrote: the review page's cache (named by the run's real path, however
    it was typed), every export folder and a gallery page written outside the run."""
    import os

    from facecluster.cli import main
    from facecluster.viewing.review import FaceStore

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    (out / "labels.csv").write_text("action,person_id,other_person_id,face_id,name\nname,1,,,Bob\n")
    assert main(["cluster", "--out", str(out), "--set", "spark.master=local[2]"]) == 0
    faces = pd.read_parquet(out / "faces")
    assignments = pd.read_parquet(out / "assignments")
    bob = int(pd.read_parquet(out / "people").set_index("name").loc["Bob", "person_id"])
    theirs = faces[faces.face_id.isin(assignments.face_id[assignments.person_id == bob])]
    needles = {**needles_for(out, theirs, with_photo=False), "name": "Bob"}

    monkeypatch.chdir(tmp_path)
    FaceStore("out").close()  # the review page opened by a relative name
    assert main(["export", str(out), "--to", str(tmp_path / "export")]) == 0
    assert main(["report", str(out), "--to", str(tmp_path / "page" / "index.html")]) == 0
    places = [tmp_path / "cache", tmp_path / "export", tmp_path / "page"]
    assert all(traces(place, needles) for place in places[:2]), "the check can find them"
    assert traces(tmp_path / "page", {f: f for f in theirs.face_id}) or "Bob" in (tmp_path / "page" / "index.html").read_text()

    assert main(["forget", "--out", f"file://{os.path.realpath(out)}", "--person", str(bob),
                 "--set", "spark.master=local[2]"]) == 0
    for place in places:
        assert traces(place, needles) == [], place
    assert (tmp_path / "export" / "faces.csv").exists() and (tmp_path / "page" / "index.html").exists()


def test_without_its_key_a_run_with_forgotten_photos_stops(spark, sample_run, sample_archive, tmp_path, capsys):
    from facecluster.cli import main

    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    assert main(["forget", "--out", str(out), "--person", "0", "--set", "spark.master=local[2]"]) == 0
    (out / "_forget_key").unlink()
    with pytest.raises(SystemExit) as stopped:
        main(["run", str(sample_archive), "--out", str(out), "--set", "spark.master=local[2]"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "_forget_key is missing" in err and "would come back" in err and "Traceback" not in err
    (out / "_forget_key").write_text("00" * 32)
    with pytest.raises(SystemExit):
        main(["cluster", "--out", str(out), "--set", "spark.master=local[2]"])
    assert "is not the key" in capsys.readouterr().err


def test_commands_without_spark_finish_an_interrupted_forget_first(spark, sample_run, tmp_path):
    """As if forget was killed right after recording what to do: export, report and label each
    finish it before they read the run."""
    from facecluster.cli import main
    from facecluster.curation import forgetting
    from facecluster.jobs.forget import find_targets, label_lines_about

    for command in ("export", "report", "label"):
        out = tmp_path / command / "out"
        shutil.copytree(sample_run, out)
        (out / "labels.csv").write_text("action,person_id,other_person_id,face_id,name\nname,0,,,Ann\n")
        assert main(["cluster", "--out", str(out), "--set", "spark.master=local[2]"]) == 0
        ann = int(pd.read_parquet(out / "people").set_index("name").loc["Ann", "person_id"])
        photos, faces = find_targets(spark, str(out), person=ann, photo=None)
        forgetting.start(spark, str(out), photos, faces, label_lines_about(spark, str(out), ann, faces))
        words = {"export": ["export", str(out), "--to", str(tmp_path / command / "export")],
                 "report": ["report", str(out)],
                 "label": ["label", "--out", str(out), "hide", str(ann + 1)]}[command]
        assert main(words) == 0
        assert not (out / forgetting.PENDING).exists(), command
        assert not set(faces) & set(pd.read_parquet(out / "faces")["face_id"]), command
        if command == "export":
            assert "Ann" not in (tmp_path / command / "export" / "faces.csv").read_text()
