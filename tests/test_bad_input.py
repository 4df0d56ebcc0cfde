"""Hostile input: odd file names, links, missing and vanishing files, rows without bytes, a bad
setting or model id. Each is kept as a photo or stopped with one line that says what to do."""
import hashlib
import os
import shutil

import pandas as pd
import pytest

from facecluster.core.errors import UserError
from tests.conftest import ARCHIVE

pytestmark = pytest.mark.spark

PORTRAIT = ARCHIVE / "2019_birthday" / "img5.jpg"
OTHER = ARCHIVE / "2019_birthday" / "img16.jpg"


def ingested(spark, archive, out):
    from facecluster.jobs.ingest import ingest

    ingest(spark, str(archive), str(out))
    return pd.read_parquet(out / "photos", columns=["photo_id", "path", "paths", "n_bytes"])


def test_names_with_pattern_characters_are_read_on_every_ingest(spark, tmp_path):
    archive, out = tmp_path / "photos", tmp_path / "out"
    (archive / "a").mkdir(parents=True)
    shutil.copy(PORTRAIT, archive / "a" / "first.jpg")
    assert len(ingested(spark, archive, out)) == 1
    (archive / "b").mkdir()
    for name, source in [("IMG [1].jpg", OTHER), ("{x} *?.jpg", ARCHIVE / "2021_wedding" / "img6.jpg")]:
        shutil.copy(source, archive / "b" / name)
    photos = ingested(spark, archive, out)  # the second ingest reads only these two, by name
    names = {p.rsplit("/", 1)[-1] for p in photos["path"]}
    assert names == {"first.jpg", "IMG [1].jpg", "{x} *?.jpg"}
    assert (photos["n_bytes"] > 0).all()
    assert len(ingested(spark, archive, out)) == 3  # and every later one


def test_a_name_that_is_not_utf8_is_a_photo_too(spark, tmp_path):
    archive, out = tmp_path / "photos", tmp_path / "out"
    (archive / "a").mkdir(parents=True)
    shutil.copy(PORTRAIT, archive / "a" / "plain.jpg")
    with open(os.path.join(os.fsencode(archive / "a"), b"caf\xe9.jpg"), "wb") as handle:
        handle.write(OTHER.read_bytes())
    photos = ingested(spark, archive, out)
    assert len(photos) == 2
    odd = photos[photos["path"].str.contains("caf")].iloc[0]
    assert odd["path"].endswith("caf\\xe9.jpg") and odd["photo_id"] == hashlib.sha256(OTHER.read_bytes()).hexdigest()


def test_every_name_is_a_photo_and_every_empty_file_a_row_of_its_own(spark, tmp_path):
    """Cameras name photos _DSC0001.jpg, Spark's file source hides _ and . names; a colon is no
    URI; two empty files and a pipe are three photos that cannot be read, never one; an archive
    named file:///... gives the same albums as its plain path."""
    archive, out = tmp_path / "photos", tmp_path / "out"
    for album in ("wedding", "weird:colon"):
        (archive / album).mkdir(parents=True)
    shutil.copy(PORTRAIT, archive / "wedding" / "_DSC0001.jpg")
    shutil.copy(OTHER, archive / "wedding" / ".kept.jpg")
    shutil.copy(ARCHIVE / "2021_wedding" / "img6.jpg", archive / "weird:colon" / "a.jpg")
    for name in ("empty.jpg", "empty2.jpg"):
        (archive / "wedding" / name).touch()
    os.mkfifo(archive / "wedding" / "pipe.jpg")
    from facecluster.jobs.ingest import ingest

    ingest(spark, f"file://{archive}/", str(out))
    photos = pd.read_parquet(out / "photos", columns=["photo_id", "album", "path", "n_bytes"])
    names = {p.rsplit("/", 1)[-1]: (album, n) for p, album, n in zip(photos["path"], photos["album"], photos["n_bytes"])}
    assert names == {"_DSC0001.jpg": ("wedding", PORTRAIT.stat().st_size), ".kept.jpg": ("wedding", OTHER.stat().st_size),
                     "a.jpg": ("weird:colon", (ARCHIVE / "2021_wedding" / "img6.jpg").stat().st_size),
                     "empty.jpg": ("wedding", 0), "empty2.jpg": ("wedding", 0), "pipe.jpg": ("wedding", 0)}
    assert photos["photo_id"].is_unique
    assert pd.read_parquet(out / "photo_files", columns=["root"])["root"].eq(f"file:{archive}").all()


def test_a_hadoop_listing_keeps_every_name(spark, tmp_path):
    """On HDFS or S3 the listing is Hadoop's own, and the names Spark's sources hide are read
    through Hadoop's file system."""
    from facecluster.jobs.ingest import _read_through_hadoop, list_hadoop_photo_files

    (tmp_path / "a").mkdir()
    shutil.copy(PORTRAIT, tmp_path / "a" / "_DSC0001.jpg")
    shutil.copy(OTHER, tmp_path / "a" / "plain.jpg")
    listed = list_hadoop_photo_files(spark, f"file://{tmp_path}").collect()
    assert sorted(r.path.rsplit("/", 1)[-1] for r in listed) == ["_DSC0001.jpg", "plain.jpg"]
    assert {r.root for r in listed} == {f"file:{tmp_path}"}
    hidden = [r.path for r in listed if "_DSC" in r.path]
    assert _read_through_hadoop(spark, hidden) == [(hidden[0], PORTRAIT.read_bytes())]


def test_a_link_back_up_the_tree_is_not_followed_around(spark, tmp_path):
    archive, out = tmp_path / "photos", tmp_path / "out"
    (archive / "a").mkdir(parents=True)
    shutil.copy(PORTRAIT, archive / "a" / "one.jpg")
    os.symlink("..", archive / "a" / "loop")
    (archive / "best").symlink_to(archive / "a")  # a link to another album is an album
    photos = ingested(spark, archive, out)
    assert len(photos) == 1
    assert sorted(p.split("/photos/", 1)[1] for p in photos["paths"].iloc[0]) == ["a/one.jpg", "best/one.jpg"]


def test_a_photo_gone_between_listing_and_reading_is_left_out(spark, tmp_path):
    from facecluster.jobs.ingest import extract_photo_files, list_photo_files

    (tmp_path / "a").mkdir()
    for name in ("stays.jpg", "goes.jpg"):
        shutil.copy(PORTRAIT, tmp_path / "a" / name)
    listed = list_photo_files(spark, str(tmp_path)).cache()
    assert listed.count() == 2
    (tmp_path / "a" / "goes.jpg").unlink()
    read = extract_photo_files(spark, listed).collect()
    assert [r.path.rsplit("/", 1)[-1] for r in read] == ["stays.jpg"]


def test_missing_or_empty_archives_stop_with_one_line(tmp_path, capsys):
    from facecluster.cli import main

    (tmp_path / "empty").mkdir()
    for source, says in [(tmp_path / "nowhere", "does not exist"), (tmp_path / "empty", "no photos under")]:
        with pytest.raises(SystemExit) as stopped:
            main(["ingest", str(source), "--out", str(tmp_path / "out"), "--set", "spark.master=local[2]"])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
    with pytest.raises(SystemExit) as stopped:
        main(["forget", "--out", str(tmp_path / "no_run"), "--person", "1", "--set", "spark.master=local[2]"])
    assert stopped.value.code == 2 and "is not an output root" in capsys.readouterr().err


def test_parquet_rows_without_bytes_become_error_rows(spark, tmp_path):
    from facecluster.core.settings import load_settings
    from facecluster.jobs.embed import embed
    from facecluster.udfs.embedders import resolve_embedder
    from facecluster.jobs.ingest import ingest

    source = tmp_path / "source.parquet"
    pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg"],
                  "content": [PORTRAIT.read_bytes(), None, None]}).to_parquet(source)
    out = tmp_path / "out"
    ingest(spark, str(source), str(out), "parquet")
    photos = pd.read_parquet(out / "photos")
    assert photos["photo_id"].notna().all() and len(photos) == 3  # each row without bytes is an empty photo
    empty = photos[photos["n_bytes"] == 0]
    assert sorted(empty["path"]) == ["b.jpg", "c.jpg"]
    embed_settings, weights = resolve_embedder(load_settings(overrides=["embed.embedder=dlib"])["embed"])
    embed(spark, str(out), embed_settings, weights)
    status = pd.read_parquet(out / "photo_status").set_index("photo_id")
    assert len(status) == 3 and (status.loc[empty["photo_id"], "status"] == "error").all()

    pd.DataFrame({"path": ["a.jpg"], "bytes": [b"x"]}).to_parquet(tmp_path / "wrong.parquet")
    with pytest.raises(UserError, match="no 'content' column"):
        ingest(spark, str(tmp_path / "wrong.parquet"), str(tmp_path / "out2"), "parquet")


def test_an_empty_spark_property_is_refused():
    from facecluster.core.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="spark.driver.memory has no value"):
        load_settings(overrides=["spark.conf.spark.driver.memory="])


def test_a_head_whose_model_id_is_a_path_writes_nothing(spark, tmp_path):
    import torch

    from facecluster.core.settings import load_settings
    from facecluster.training.triplet import TripletHead
    from facecluster.jobs.embed import embed
    from facecluster.udfs.embedders import resolve_embedder

    head = tmp_path / "head.pt"
    torch.save({"model_id": "../../x", "base_model": "dlib-resnet-v1", "dimension": 128,
                "state_dict": TripletHead(128).state_dict(), "settings": {}}, head)
    settings = load_settings(overrides=["embed.embedder=dlib", f"embed.head={head}"])
    embed_settings, weights = resolve_embedder(settings["embed"])
    out = tmp_path / "a" / "b" / "out"
    out.mkdir(parents=True)
    with pytest.raises(UserError, match="model id '../../x'"):
        embed(spark, str(out), embed_settings, weights)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "head.pt", "out"]


def test_a_second_command_on_a_busy_output_root_is_refused(tmp_path):
    from facecluster.core.lock import OutputBusy, output_lock

    with output_lock(str(tmp_path), "run"):
        with pytest.raises(OutputBusy, match=r"in use by `facecluster run` \(pid \d+"):
            with output_lock(str(tmp_path), "forget"):
                pass
    with output_lock(str(tmp_path), "forget"):  # free again once the first is done
        pass


def test_forgotten_digests_are_keyed_and_spark_computes_the_same(spark, tmp_path):
    from pyspark.sql import functions as F

    from facecluster.curation.forgetting import Forgotten

    keyed = Forgotten.read(spark, str(tmp_path), create_key=True)
    assert keyed.key is not None and len(keyed.key) == 32
    ids = ["a" * 64, "b" * 64 + ":3", "ünï:0"]
    frame = spark.createDataFrame([(i,) for i in ids], "id string")
    assert [r.d for r in frame.select(keyed.digest_column(F.col("id")).alias("d")).collect()] == \
           [keyed.digest(i) for i in ids]
    assert keyed.digest(ids[0]) != hashlib.sha256(ids[0].encode()).hexdigest()  # not testable without the key
    assert Forgotten.read(spark, str(tmp_path)).key == keyed.key


def test_looking_at_a_run_reads_no_photo_bytes(sample_run):
    from facecluster.viewing.runs import load_run

    run = load_run(sample_run)
    assert "content" not in run["photos"].columns and len(run["photos"]) == 26
    assert {"photo_id", "path", "albums"} <= set(run["photos"].columns)
    assert "landmarks" not in run["faces"].columns and "thumb" in run["faces"].columns


def test_a_run_is_inspected_where_it_lies_through_a_uri(sample_run, tmp_path):
    """file:// here; hdfs:// and s3a:// go through the same pyarrow file systems."""
    from facecluster.cli import main
    from facecluster.viewing.runs import load_run

    local, remote = load_run(sample_run), load_run(f"file://{sample_run}")
    assert local.keys() == remote.keys() and len(local["faces"]) > 0
    for name in local:
        pd.testing.assert_frame_equal(local[name].sort_values(local[name].columns[0]).reset_index(drop=True),
                                      remote[name].sort_values(remote[name].columns[0]).reset_index(drop=True))
    assert main(["report", f"file://{sample_run}", "--to", str(tmp_path / "page.html")]) == 0
    assert (tmp_path / "page.html").read_text().count("<img") > 0


def test_a_malformed_label_line_stops_cluster_with_one_line(sample_run, tmp_path, capsys):
    from facecluster.cli import main

    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    (out / "labels.csv").write_text("action,person_id,other_person_id,face_id,name\nname,three,,,Ann\n")
    with pytest.raises(SystemExit) as stopped:
        main(["cluster", "--out", str(out), "--set", "spark.master=local[2]"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "person_id must be a whole number" in err and "Traceback" not in err


@pytest.fixture()
def read_only(tmp_path):
    """A folder nobody may write to: a read-only bind mount as root (who may write anywhere
    else), the folder's permissions otherwise."""
    import subprocess

    source, folder = tmp_path / "source", tmp_path / "read_only"
    source.mkdir()
    folder.mkdir()
    if os.geteuid() != 0:
        yield source, lambda: source.chmod(0o555)
        source.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(source), str(folder)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("root here cannot bind-mount a folder read-only")
    yield folder, lambda: subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
    subprocess.run(["umount", str(folder)], check=False)


def test_a_read_only_output_root_is_one_line_not_a_traceback(sample_run, read_only, capsys):
    from facecluster.cli import main

    folder, make_read_only = read_only
    shutil.copytree(sample_run, folder / "run")
    make_read_only()
    for words, says in [(["run", str(ARCHIVE), "--out", str(folder / "new")], "cannot make the output root"),
                        (["cluster", "--out", str(folder / "run")], "cannot write to the output root")]:
        with pytest.raises(SystemExit) as stopped:
            main([*words, "--set", "spark.master=local[2]"])
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and says in err and "Traceback" not in err, err
