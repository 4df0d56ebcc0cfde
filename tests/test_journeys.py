"""A user's journeys, end to end through the command line and a real Spark session, with the
tables checked against what the user did after each one: first run; add an album and run
again with the defaults; label, then run; forget, then run again over the same archive; kill a
command at each step and run it again; two commands on one output root at once."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.compare import assert_same_people, assert_same_tables
from tests.conftest import ARCHIVE, ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]

FIRST_ALBUMS = ("2019_birthday", "2021_wedding")
NEW_ALBUM = "2023_holiday"
PHOTO_NAME = (".jpg", ".jpeg", ".png")
LOCAL = ["--set", "spark.master=local[2]"]


def facecluster(*words: str) -> int:
    """One command, as the user types it, in this process (the test's Spark session is reused)."""
    from facecluster.cli import main

    words = [str(w) for w in words]
    extra = ["--embedder", "dlib"] if words[0] in ("run", "embed") else []
    return main([*words, *extra, *(LOCAL if words[0] != "label" else [])])


def archive_of(root: Path, albums) -> Path:
    for album in albums:
        shutil.copytree(ARCHIVE / album, root / album)
    return root


def photo_ids_in(archive: Path) -> set:
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in archive.rglob("*")
            if p.is_file() and p.suffix.lower() in PHOTO_NAME}


def read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / name)


def check_run(out: Path, archive: Path, forgotten_photos=(), forgotten_faces=()):
    """The tables agree with the archive and with each other; nothing forgotten is anywhere."""
    photos, status, faces = read(out, "photos"), read(out, "photo_status"), read(out, "faces")
    assignments, people = read(out, "assignments"), read(out, "people")
    expected = photo_ids_in(archive) - set(forgotten_photos)
    assert set(photos["photo_id"]) == expected, "photos in the archive = rows in photos"
    assert len(status) == len(expected) and set(status["photo_id"]) == expected, "photos in = rows in photo_status"
    assert faces["face_id"].is_unique and set(faces["photo_id"]) <= expected
    counted = faces.groupby("photo_id").size().reindex(status["photo_id"]).fillna(0).astype(int).to_numpy()
    assert (status["n_faces"].to_numpy() == counted).all(), "photo_status.n_faces counts the faces"
    assert sorted(assignments["face_id"]) == sorted(faces["face_id"]), "every face has one assignment"
    grouped = assignments[assignments["person_id"] >= 0]
    sizes = grouped.groupby("person_id").size()
    assert sorted(people["person_id"]) == sorted(sizes.index)
    assert (people.set_index("person_id")["n_faces"].reindex(sizes.index) == sizes).all()
    gone = set(forgotten_faces)
    for name in ("faces", "assignments", "labels_applied"):
        if (out / name).exists():
            assert not gone & set(read(out, name)["face_id"]), f"a forgotten face is back in {name}"
    assert not set(forgotten_photos) & set(faces["photo_id"])
    return assignments


def person_of(out: Path) -> pd.Series:
    return read(out, "assignments").set_index("face_id")["person_id"]


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    """Journey 1: a first run over two albums, then a third album added and `run` again with the
    default settings (an incremental clustering): the archive and the output root."""
    root = tmp_path_factory.mktemp("journey")
    archive = archive_of(root / "photos", FIRST_ALBUMS)
    out = root / "out"
    assert facecluster("run", archive, "--out", out) == 0
    check_run(out, archive)
    before = person_of(out)
    shutil.copytree(ARCHIVE / NEW_ALBUM, archive / NEW_ALBUM)
    assert facecluster("run", archive, "--out", out) == 0
    after = check_run(out, archive).set_index("face_id")["person_id"]
    kept = before[before >= 0]
    assert (after.reindex(kept.index) == kept).all(), "the people of the first run keep their faces and ids"
    new_faces = after.index.difference(before.index)
    assert len(new_faces) >= 8 and (after[new_faces] >= 0).sum() >= 5, "the new album's faces join people"
    return archive, out


def test_add_an_album_and_run_again_with_the_defaults(first_run):
    archive, out = first_run
    status = read(out, "photo_status")
    assert len(status) == len(photo_ids_in(archive)) == 25  # 26 files, img11.jpg in two albums
    people = read(out, "people")
    assert (people["n_albums"] >= 2).sum() >= 4  # people met again in the new album


def test_label_then_run(first_run, tmp_path):
    archive, out = first_run[0], tmp_path / "out"
    shutil.copytree(first_run[1], out)
    person = person_of(out)
    sizes = person[person >= 0].value_counts()
    big, a, b = sizes.index[0], sizes.index[1], sizes.index[2]
    moved = person[person == big].index[0]
    not_face = person[person == big].index[1]
    assert facecluster("label", "--out", out, "name", big, "Ann") == 0
    assert facecluster("label", "--out", out, "merge", a, b) == 0
    assert facecluster("label", "--out", out, "move-out", moved) == 0
    assert facecluster("label", "--out", out, "not-a-face", not_face) == 0
    merged = set(person[person.isin([a, b])].index)
    ann = set(person[person == big].index) - {moved, not_face}
    for mode in ("incremental", "full"):
        assert facecluster("run", archive, "--out", out, "--set", f"cluster.mode={mode}") == 0
        check_run(out, archive)
        now, people = person_of(out), read(out, "people")
        named = people.loc[people["name"] == "Ann", "person_id"]
        assert len(named) == 1 and set(now[now == named.item()].index) >= ann, mode
        assert now[moved] != named.item(), "a face moved out stays out"
        assert now[not_face] == -1 and not read(out, "assignments").set_index("face_id").loc[not_face, "clustered"]
        assert now[list(merged)].nunique() == 1 and now[list(merged)].iloc[0] >= 0, "merged people stay one"


def test_the_journey_with_people_found_on_the_executors(first_run, tmp_path):
    """cluster.algorithm distributed through the command line: a run with nothing new keeps every
    face's person, labels hold, and a full clustering finds the people the driver finds."""
    archive, out = first_run[0], tmp_path / "out"
    shutil.copytree(first_run[1], out)
    on_executors = ["--set", "cluster.algorithm=distributed"]
    before = person_of(out)
    assert facecluster("run", archive, "--out", out, *on_executors) == 0
    check_run(out, archive)
    assert person_of(out).sort_index().equals(before.sort_index()), "a run with no new photo changes no one"
    sizes = before[before >= 0].value_counts()
    big, a, b = sizes.index[0], sizes.index[1], sizes.index[2]
    assert facecluster("label", "--out", out, "name", big, "Ann") == 0
    assert facecluster("label", "--out", out, "merge", a, b) == 0
    assert facecluster("cluster", "--out", out, *on_executors) == 0
    check_run(out, archive)
    now, people = person_of(out), read(out, "people")
    assert people.loc[people["name"] == "Ann", "person_id"].tolist() == [big]
    assert now[before[before.isin([a, b])].index].nunique() == 1
    driver = tmp_path / "driver"
    shutil.copytree(out, driver, ignore=shutil.ignore_patterns("_lock"))
    for root, algorithm in ((out, "distributed"), (driver, "knn")):
        assert facecluster("cluster", "--out", root, "--set", "cluster.mode=full",
                           "--set", f"cluster.algorithm={algorithm}") == 0
    assert_same_people(out, driver)
    assert read(out, "people").sort_values("person_id")["name"].tolist() == \
        read(driver, "people").sort_values("person_id")["name"].tolist()


def test_forget_a_person_and_a_photo_then_run_again(first_run, tmp_path):
    archive, out = first_run[0], tmp_path / "out"
    shutil.copytree(first_run[1], out)
    person = person_of(out)
    sizes = person[person >= 0].value_counts()
    bob = sizes.index[0]
    bobs_faces = set(person[person == bob].index)
    moved = sorted(bobs_faces)[0]
    assert facecluster("label", "--out", out, "name", bob, "Bob") == 0
    assert facecluster("label", "--out", out, "move-out", moved) == 0  # Bob's name stays on this face's old label
    carol = sizes.index[1]
    with open(out / "labels.csv", "a") as log:  # edited by hand: a field the header does not have
        log.write(f"name,{carol},,,Carol,met at the wedding\n")
    assert facecluster("cluster", "--out", out) == 0
    bob_now = person_of(out)
    bobs_faces = set(bob_now[bob_now == bob].index)
    faces = read(out, "faces")
    photo = faces[~faces["face_id"].isin(bobs_faces | {moved})].iloc[0]
    photo_faces = set(faces.loc[faces["photo_id"] == photo.photo_id, "face_id"])
    assert facecluster("forget", "--out", out, "--person", bob) == 0
    assert facecluster("forget", "--out", out, "--photo", photo.photo_id) == 0
    forgotten_photos, forgotten_faces = {photo.photo_id}, bobs_faces | photo_faces
    for _ in range(2):  # the archive unchanged: the same photos come in again, and stay out
        check_run(out, archive, forgotten_photos, forgotten_faces)
        assert "Bob" not in set(read(out, "people")["name"].dropna())
        assert "Bob" not in set(read(out, "labels_applied")["name"].dropna())
        assert "Bob" not in (out / "labels.csv").read_text()
        assert f"name,{carol},,,Carol,met at the wedding" in (out / "labels.csv").read_text()
        assert "Carol" in set(read(out, "people")["name"].dropna())
        assert facecluster("run", archive, "--out", out, "--set", "cluster.mode=full") == 0


def test_a_forget_recorded_but_not_carried_out_is_finished_by_the_next_run(spark, first_run, tmp_path):
    """As if the forget was killed right after it recorded what to do: nothing of the person comes
    back, not even their name on a full re-cluster."""
    from facecluster.curation import forgetting
    from facecluster.jobs.forget import find_targets, label_lines_about

    archive, out = first_run[0], tmp_path / "out"
    shutil.copytree(first_run[1], out)
    person = person_of(out)
    bob = person[person >= 0].value_counts().index[0]
    assert facecluster("label", "--out", out, "name", bob, "Bob") == 0
    assert facecluster("cluster", "--out", out) == 0
    photos, faces = find_targets(spark, str(out), int(bob), None)
    forgetting.start(spark, str(out), photos, faces, label_lines_about(spark, str(out), int(bob), faces))
    assert (out / forgetting.PENDING).exists()
    assert facecluster("run", archive, "--out", out, "--set", "cluster.mode=full") == 0
    assert not (out / forgetting.PENDING).exists()
    check_run(out, archive, (), set(faces))
    assert "Bob" not in set(read(out, "people")["name"].dropna()) and "Bob" not in (out / "labels.csv").read_text()


# --- killed commands ------------------------------------------------------------------------

def start(*words: str, hold: Path | None = None) -> subprocess.Popen:
    """A command in a process of its own session, so that killing the group takes the JVM and
    its Python workers too. hold: the folder of the fault-injection points (udfs/failpoints.py)."""
    from facecluster.udfs.failpoints import HOLD

    words = [str(w) for w in words]
    extra = ["--embedder", "dlib"] if words[0] == "run" else []
    command = [sys.executable, "-m", "facecluster.cli", *words, *extra, "--set", "spark.master=local[2,4]",
               "--set", "embed.photos_per_round=4"]
    env = {**os.environ, **({HOLD: str(hold)} if hold else {})}
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def held_at_table(table: str, hold: Path) -> Path:
    """Arm the point where a command has written `table` but not yet published it: the command
    waits there, so that a kill lands in that state however fast the machine is."""
    hold.mkdir(exist_ok=True)
    (hold / f"table={table}").touch()
    return hold


def kill_when(process: subprocess.Popen, ready, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout  # a net for a command that never gets there, not a pace
    while not ready():
        assert process.poll() is None, f"the command ended before it could be killed:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "timed out waiting for the step"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def held(hold: Path):
    """Ready when a command waits at the armed point (its pid in hold/held)."""
    return lambda: (hold / "held").exists()


@pytest.fixture(scope="module")
def reference(spark, tmp_path_factory):
    """An uninterrupted run over the first two albums."""
    root = tmp_path_factory.mktemp("reference")
    archive = archive_of(root / "photos", FIRST_ALBUMS)
    assert facecluster("run", archive, "--out", root / "out") == 0
    return archive, root / "out"


@pytest.mark.parametrize("step, table", [("ingest", "photos"), ("embed", "embed_parts"),
                                         ("cluster", "assignments"), ("people", "person_albums")])
def test_a_run_killed_at_each_step_is_run_again_to_the_same_tables(reference, tmp_path, step, table):
    archive, expected = reference
    out = tmp_path / "out"
    hold = held_at_table(table, tmp_path / "hold")
    kill_when(start("run", archive, "--out", out, hold=hold), held(hold))
    assert not (out / "person_albums").exists(), "the kill landed before the run ended"
    assert facecluster("run", archive, "--out", out) == 0
    assert not list((out / "_staging").glob("*")), "half-written tables are cleared"
    check_run(out, archive)
    assert_same_tables(out, expected)
    assert_same_people(out, expected)


def test_a_killed_forget_is_finished_by_running_it_again(reference, tmp_path):
    archive, out = reference[0], tmp_path / "out"
    shutil.copytree(reference[1], out)
    person = person_of(out)
    bob = person[person >= 0].value_counts().index[0]
    bobs_faces = set(person[person == bob].index)
    hold = held_at_table("assignments", tmp_path / "hold")
    kill_when(start("forget", "--out", out, "--person", bob, hold=hold), held(hold))
    assert facecluster("forget", "--out", out, "--person", bob) == 0
    check_run(out, archive, (), bobs_faces)
    assert facecluster("run", archive, "--out", out, "--set", "cluster.mode=full") == 0
    check_run(out, archive, (), bobs_faces)


def test_two_commands_on_one_output_root(reference, tmp_path, capsys):
    archive, out = reference[0], tmp_path / "out"
    shutil.copytree(reference[1], out)
    busy = start("run", archive, "--out", out, "--set", "cluster.mode=full")
    deadline = time.monotonic() + 120
    while f'"pid": {busy.pid},' not in ((out / "_lock").read_text() if (out / "_lock").exists() else ""):
        assert busy.poll() is None and time.monotonic() < deadline, busy.stdout.read() if busy.poll() else "no lock"
        time.sleep(0.05)
    with pytest.raises(SystemExit) as refused:
        facecluster("forget", "--out", out, "--person", 0)
    assert refused.value.code == 2
    assert "is in use by `facecluster run`" in capsys.readouterr().err
    output, _ = busy.communicate(timeout=600)
    assert busy.returncode == 0, output[-3000:]
    check_run(out, archive)
    assert 0 in set(read(out, "people")["person_id"]), "the refused forget changed nothing"


DEV_LFW = ROOT.parent / "shared" / "data" / "lfw"


@pytest.mark.skipif(not DEV_LFW.is_dir(), reason="the dev LFW split is at ../shared/data/lfw (developers and CI)")
def test_an_album_added_to_lfw_people_is_clustered_as_well_as_a_full_run(spark, tmp_path):
    """Journey on the dev LFW split, most of its people seen once: a first album (the first 6
    photos of 40 people and 50 people seen once), then an album of the rest of their photos and
    50 others added and `run` again; the people are as right as a full clustering of the same
    faces (pairwise precision and recall within 0.01)."""
    from facecluster.measuring.evaluation import evaluate_run, lfw_subset

    photos = pd.Series({str(p): p.parent.name for p in sorted(DEV_LFW.glob("*/*.jpg"))})
    chosen = photos.loc[lfw_subset(photos, n_people=40, per_person=10, n_distractors=100, seed=0)]
    seen_once = chosen[chosen.map(chosen.value_counts()) == 1]
    first = set(chosen[chosen.map(chosen.value_counts()) > 1].groupby(chosen).head(6).index) | set(seen_once.index[:50])
    archive, out = tmp_path / "photos", tmp_path / "out"
    labels = []
    for path, person in chosen.items():
        album = archive / ("first" if path in first else "added")
        album.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, album / Path(path).name)
        labels.append({"path": f"{album.name}/{Path(path).name}", "person": person})
    labels = pd.DataFrame(labels)
    added = archive / "added"
    shutil.move(added, tmp_path / "later")
    assert facecluster("run", archive, "--out", out) == 0
    shutil.move(tmp_path / "later", added)
    assert facecluster("run", archive, "--out", out) == 0
    check_run(out, archive)
    full = tmp_path / "full"
    shutil.copytree(out, full, ignore=shutil.ignore_patterns("_lock"))
    assert facecluster("cluster", "--out", full, "--set", "cluster.mode=full") == 0
    added_run, full_run = evaluate_run(str(out), labels)["pairwise"], evaluate_run(str(full), labels)["pairwise"]
    assert added_run["precision"] >= full_run["precision"] - 0.01, (added_run, full_run)
    assert added_run["recall"] >= full_run["recall"] - 0.01, (added_run, full_run)
    assert full_run["precision"] >= 0.97 and full_run["recall"] >= 0.9, full_run
