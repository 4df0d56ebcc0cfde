"""Open-set identification: hand cases for the identifiers and the rates, then real photos
through `facecluster identify` and the Spark identify job."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from facecluster.recognition.identification import (UNKNOWN, NearestPersonIdentifier, SvmIdentifier, evaluate_identification,
                                        open_set_rates)
from facecluster.recognition.verification import DistanceCalibration


def unit(*rows):
    X = np.asarray(rows, dtype=np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_nearest_names_only_within_the_distance():
    gallery = unit([1, 0, 0], [0, 1, 0])
    identifier = NearestPersonIdentifier(max_distance=0.5).fit(gallery, ["ann", "bo"])
    names = identifier.predict(unit([1, 0.1, 0], [0.1, 1, 0], [0, 0, 1], [1, 1, 0]))
    # the last two are strangers: far from both (distance 1.41, and 0.77 from each)
    assert names.tolist() == ["ann", "bo", UNKNOWN, UNKNOWN]
    assert identifier.distance_[2] == pytest.approx(np.sqrt(2), abs=1e-6)


def test_svm_refuses_one_photo_per_person():
    with pytest.raises(ValueError, match="two or more photos"):
        SvmIdentifier().fit(unit([1, 0, 0], [0, 1, 0]), ["ann", "bo"])


def test_open_set_rates_by_hand():
    gallery = unit([1, 0, 0], [0, 1, 0])
    identifier = NearestPersonIdentifier(max_distance=1.0).fit(gallery, ["ann", "bo"])
    probes = unit([1, 0.1, 0], [1, 0.5, 0], [0.3, 1, 0])  # ann, ann, bo: all nearest the right one
    strangers = unit([0, 0, 1], [1, 0, 1], [0, 1, 0.2], [0.1, 0.1, 1])
    rates = open_set_rates(identifier, probes, ["ann", "ann", "bo"], strangers, fars=(0.25,))
    # strangers' distances 1.414, 0.765, 0.197, 1.32: the 0.75 quantile of their scores is the
    # nearest stranger, so only probes nearer than 0.197 are accepted: ann's first (0.0998), not
    # ann's second (0.460) nor bo's (0.291)
    assert rates["rank1"] == 1.0
    row = rates["at"][0]
    assert row["threshold"] == pytest.approx(-0.1974, abs=1e-3) and row["far"] == 0.0
    assert row["dir"] == pytest.approx(1 / 3)


def test_evaluate_identification_on_separable_people():
    rng = np.random.default_rng(0)
    centres = unit(*rng.normal(size=(40, 16)))
    people = np.repeat(np.arange(40), 8)
    X = centres[people] + rng.normal(scale=0.03, size=(len(people), 16)).astype(np.float32)
    faces = pd.DataFrame({"person": [f"p{p}" for p in people],
                          "embedding": list(X / np.linalg.norm(X, axis=1, keepdims=True))})
    calibration = DistanceCalibration("toy").fit([0.1, 0.15, 0.2, 1.2, 1.3, 1.4], [1, 1, 1, 0, 0, 0])
    report = evaluate_identification(faces, calibration, shots=(3,))
    assert report["people_enrolled"] == 20
    assert [(p["shots"], p["people"], p["probes"]) for p in report["protocols"]] == [(1, 20, 140), (3, 20, 100)]
    assert "svm" not in report["protocols"][0] and "svm" in report["protocols"][1]
    for protocol in report["protocols"]:
        for name in ("nearest", "svm"):
            if name in protocol:
                assert protocol[name]["rank1"] == 1.0
                assert protocol[name]["at"][0]["dir"] > 0.95


@pytest.mark.slow
def test_identify_names_enrolled_people_and_calls_strangers_unknown(people_folders, tmp_path, capsys):
    from facecluster.cli import main

    gallery, queries = tmp_path / "gallery", []
    for person in ("person_00", "person_01", "person_02"):  # enrolled with one photo each
        photos = sorted((people_folders / person).iterdir())
        (gallery / person).mkdir(parents=True)
        shutil.copy(photos[0], gallery / person)
        queries += [(p, person) for p in photos[1:]]
    for person in ("person_03", "person_05"):  # never enrolled
        queries += [(p, UNKNOWN) for p in sorted((people_folders / person).iterdir())]
    assert main(["identify", *[str(p) for p, _ in queries], "--gallery", str(gallery), "--json",
                 "--embedder", "dlib"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    named = {a["path"]: a["name"] for a in answers}
    assert len(answers) == len(queries)  # one face in each portrait
    assert {str(p): who for p, who in queries} == named
    known = [a for a in answers if a["name"] != UNKNOWN]
    assert all(a["probability"] > 0.5 for a in known)


@pytest.mark.spark
@pytest.mark.slow
def test_identify_job_names_the_faces_of_a_run(sample_run, people_folders, tmp_path):
    from facecluster.jobs import identify

    gallery = tmp_path / "gallery"
    for person in ("person_00", "person_01"):
        (gallery / person).mkdir(parents=True)
        shutil.copy(sorted((people_folders / person).iterdir())[0], gallery / person)
    assert identify.main(["--out", str(sample_run), "--gallery", str(gallery), "--embedder", "dlib",
                          "--set", "spark.master=local[2]"]) == 0
    identities = pd.read_parquet(sample_run / "identities")
    faces = pd.read_parquet(sample_run / "faces", columns=["face_id", "path"])
    assert len(identities) == len(faces)
    labels = pd.read_csv(__import__("tests.conftest", fromlist=["SAMPLES"]).SAMPLES / "labels.csv")
    named = identities.merge(faces, on="face_id")
    named["key"] = named["path"].str.split("/").str[-2:].str.join("/")
    named = named.merge(labels, left_on="key", right_on="path", how="left")
    enrolled = named["person"].isin(["person_00", "person_01"])
    assert (named.loc[enrolled, "name"] == named.loc[enrolled, "person"]).all()
    others = named["person"].notna() & ~enrolled
    assert (named.loc[others, "name"] == UNKNOWN).all()
    # the group selfie (no label) holds person_00 among three strangers
    selfie = named[named["key"].str.endswith("selfie-many-people.jpg")]
    assert sorted(selfie["name"]) == ["person_00", UNKNOWN, UNKNOWN, UNKNOWN]
