"""`facecluster run` on the sample archive (real photos, real dlib weights, a real Spark session)."""
import pandas as pd
import pytest

from facecluster.core.run_reader import run_models
from facecluster.measuring.metrics import pairwise_scores
from tests.conftest import SAMPLES

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def table(out, name):
    return pd.read_parquet(out / name)


def test_every_photo_has_a_status_and_bad_photos_are_error_rows(sample_run, sample_archive):
    files = [p for p in sample_archive.rglob("*") if p.is_file()]
    photos, status = table(sample_run, "photos"), table(sample_run, "photo_status")
    # 27 files, img11.jpg twice with the same bytes: 26 distinct photos, none lost.
    assert len(files) == 27 and len(photos) == 26 and len(status) == 26
    assert set(status["photo_id"]) == set(photos["photo_id"])
    by_name = status.merge(photos[["photo_id", "path"]], on="photo_id").assign(
        name=lambda d: d["path"].str.rsplit("/", n=1).str[-1]).set_index("name")
    assert by_name.loc["broken.jpg", "status"] == "error"
    assert "truncated" in by_name.loc["broken.jpg", "error"] or "not a photo" in by_name.loc["broken.jpg", "error"]
    assert by_name.loc["dogs.jpg", "status"] == "no_face" and by_name.loc["dogs.jpg", "n_faces"] == 0
    faces = table(sample_run, "faces")
    dogs = photos.loc[photos["path"].str.endswith("dogs.jpg"), "photo_id"].item()
    assert (faces["photo_id"] != dogs).all()
    copied = photos.loc[photos["path"].str.endswith("img11.jpg")].iloc[0]
    assert list(copied["albums"]) == ["2019_birthday", "2023_holiday"]


def test_faces_rows_are_complete(sample_run):
    faces = table(sample_run, "faces")
    assert len(faces) >= 26 and faces["face_id"].is_unique
    assert set(faces["model"]) == {"dlib-resnet-v1-four-views"}
    assert run_models(sample_run) == ["dlib-resnet-v1-four-views"]  # what `auto` goes on with
    for _, face in faces.iterrows():
        assert len(face["embedding"]) == 128
        assert abs(sum(v * v for v in face["embedding"]) - 1) < 1e-4
        assert len(face["box"]) == 4 and len(face["landmarks"]) == 5
        assert bytes(face["thumb"][:2]) == b"\xff\xd8"  # a JPEG


def test_one_person_lands_in_one_person_and_different_people_apart(sample_run):
    faces, assignments = table(sample_run, "faces"), table(sample_run, "assignments")
    labels = pd.read_csv(SAMPLES / "labels.csv")
    labels["name"] = labels["path"].str.rsplit("/", n=1).str[-1]
    faces["name"] = faces["path"].str.rsplit("/", n=1).str[-1]
    labelled = (faces.merge(assignments, on="face_id")
                .merge(labels[["name", "person"]].drop_duplicates(), on="name"))
    assert labelled["photo_id"].nunique() == 23  # every labelled portrait had its face found
    scores = pairwise_scores(labelled["person"].tolist(), labelled["person_id"].tolist())
    assert scores["precision"] >= 0.95, scores
    assert scores["recall"] >= 0.90, scores


def test_people_table_and_album_view(sample_run):
    people, by_album = table(sample_run, "people"), table(sample_run, "person_albums")
    assignments = table(sample_run, "assignments")
    assert 6 <= len(people) <= 9
    assert set(people["person_id"]) == set(assignments.loc[assignments["person_id"] >= 0, "person_id"])
    sizes = assignments[assignments["person_id"] >= 0].groupby("person_id").size()
    assert (people.set_index("person_id")["n_faces"] == sizes).all()
    assert (people["n_albums"] >= 2).sum() >= 5  # the sample's people are spread over its albums
    assert set(by_album["album"]) <= {"2019_birthday", "2021_wedding", "2023_holiday"}


def test_evaluate_clusters_scores_the_run_against_the_sample_labels(sample_run, capsys):
    import json

    from facecluster.cli import main
    from facecluster.measuring.metrics import cluster_report

    assert main(["evaluate", "clusters", str(sample_run), "--labels", str(SAMPLES / "labels.csv"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # The same figures by hand: the face nearest each labelled photo's centre, its person.
    faces, assignments = table(sample_run, "faces"), table(sample_run, "assignments")
    labels = pd.read_csv(SAMPLES / "labels.csv")
    faces["name"] = faces["album"] + "/" + faces["path"].str.rsplit("/", n=1).str[-1]
    status = table(sample_run, "photo_status").set_index("photo_id")
    centre = lambda f: ((f["box"][0] + f["box"][2]) / 2 - status.loc[f["photo_id"], "width"] / 2) ** 2 + \
        ((f["box"][1] + f["box"][3]) / 2 - status.loc[f["photo_id"], "height"] / 2) ** 2  # noqa: E731
    faces["off"] = faces.apply(centre, axis=1)
    central = faces.sort_values("off").drop_duplicates("photo_id").merge(assignments, on="face_id")
    scored = central.merge(labels.rename(columns={"path": "name"}), on="name")
    expected = cluster_report(scored["person"].tolist(), scored["person_id"].to_numpy())
    assert report["faces"] == expected["faces"] == 23  # 24 labelled files, img11 twice: 23 photos
    assert report["pairwise"] == pytest.approx(expected["pairwise"])
    assert report["people_true"] == 7 and report["pairwise"]["precision"] >= 0.95


def test_evaluate_refuses_labels_without_a_person_column(sample_run, tmp_path):
    from facecluster.cli import main

    bad = tmp_path / "labels.csv"
    bad.write_text("path,name\n2019_birthday/img5.jpg,Ann\n")
    with pytest.raises(SystemExit) as stopped:
        main(["evaluate", "clusters", str(sample_run), "--labels", str(bad)])
    assert stopped.value.code == 2


def test_the_readme_shows_what_the_demo_prints(tmp_path):
    """The demo as the README gives it (scripts/demo.sh); its summary's figures are the README's."""
    import re
    import subprocess

    from tests.conftest import ROOT

    done = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), "--out", str(tmp_path / "sample")],
                          capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    readme = (ROOT / "README.md").read_text()
    shown = readme[readme.index("scripts/demo.sh     #"):]
    shown = shown[shown.index("Results in"):shown.index("```", shown.index("Results in"))]

    def summary(text: str) -> dict:
        lines = {}
        for key in ("model:", "photos:", "faces:", "people:", "people in more than one album:"):
            found = re.search(rf"^  {re.escape(key)}\s+(.*)$", text, re.M)
            assert found, f"no '{key}' line in\n{text}"
            lines[key] = found.group(1)
        return lines

    assert summary(shown) == summary(done.stdout)
    # The output root as the user wrote it, no one's home folder: the demo's, and this test's.
    assert "Results in runs/sample\n" in shown and f"Results in {tmp_path / 'sample'}\n" in done.stdout
    rows = lambda text: re.findall(r"^\s+\d+\s+-\s+(\d+)\s+(\d+)", text, re.M)  # noqa: E731 - person rows: faces, albums
    assert rows(shown) and rows(shown) == rows(done.stdout)[:len(rows(shown))]
