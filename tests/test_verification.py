"""Verification: pairs files, thresholds, calibration, the pair measures, and `facecluster verify`
on real photos with the real dlib model."""
import json

import numpy as np
import pytest

from facecluster.cli import main
from facecluster.recognition.verification import (CalibrationMissing, DistanceCalibration, best_threshold,
                                      expected_calibration_error, labelled_pair_distances, read_pairs, ten_fold,
                                      val_at_far)


def test_read_pairs_with_and_without_header(tmp_path):
    lines = "Ann_Lee\t1\t3\nAnn_Lee\t1\tBo_Wu\t12\n"
    (tmp_path / "plain.txt").write_text(lines)
    (tmp_path / "header.txt").write_text("10\t300\n" + lines)
    for name in ("plain.txt", "header.txt"):
        pairs = read_pairs(tmp_path / name, "/lfw")
        assert pairs == [("/lfw/Ann_Lee/Ann_Lee_0001.jpg", "/lfw/Ann_Lee/Ann_Lee_0003.jpg", True),
                         ("/lfw/Ann_Lee/Ann_Lee_0001.jpg", "/lfw/Bo_Wu/Bo_Wu_0012.jpg", False)]
    (tmp_path / "bad.txt").write_text("Ann_Lee 1 3\nAnn_Lee one 3\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        read_pairs(tmp_path / "bad.txt", "/lfw")


def test_best_threshold_and_val_at_far_by_hand():
    d = np.array([0.1, 0.2, 0.3, 0.5, 0.6, 0.35])
    same = np.array([True, True, True, False, False, False])
    assert best_threshold(d, same) == pytest.approx(0.325)  # between 0.3 (same) and 0.35 (different)
    # FAR 1/3 allows one of three different pairs: accept below 0.5, all same pairs in
    val = val_at_far(d, same, far=1 / 3)
    assert val["threshold"] == 0.5 and val["val"] == 1.0 and val["far"] == pytest.approx(1 / 3)
    # FAR 0: accept below the nearest different pair 0.35
    assert val_at_far(d, same, far=0.0)["threshold"] == 0.35


def test_expected_calibration_error_by_hand():
    p = np.array([0.05, 0.05, 0.95, 0.95])
    assert expected_calibration_error(p, [0, 0, 1, 1]) == pytest.approx(0.05)
    assert expected_calibration_error(p, [1, 1, 0, 0]) == pytest.approx(0.95)


def test_calibration_is_monotone_prior_aware_and_round_trips(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(0.3, 0.06, 600), rng.normal(0.6, 0.06, 400)])
    same = np.arange(1000) < 600
    calibration = DistanceCalibration("test-model").fit(d, same)
    p = calibration.predict_proba([0.2, 0.45, 0.7])
    assert p[0] > 0.99 and p[2] < 0.01 and p[0] > p[1] > p[2]
    # Bayes: the odds move by exactly the change in prior odds
    low, even = calibration.predict_proba([0.45], prior=0.01)[0], calibration.predict_proba([0.45], prior=0.5)[0]
    assert (low / (1 - low)) / (even / (1 - even)) == pytest.approx(0.01 / 0.99)
    assert 0.4 < calibration.threshold_ < 0.5
    # held-out calibration of these two normals is good
    folds = ten_fold(d, same)
    assert expected_calibration_error(folds["held_out_logistic"], same) < 0.05
    assert np.mean(folds["accuracies"]) > 0.97
    calibration.save(tmp_path)
    monkeypatch.setenv("FACECLUSTER_CALIBRATION_DIR", str(tmp_path))
    loaded = DistanceCalibration.load("test-model")
    assert loaded.threshold_ == calibration.threshold_
    np.testing.assert_allclose(loaded.predict_proba([0.4]), calibration.predict_proba([0.4]))
    with pytest.raises(CalibrationMissing, match="evaluate pairs"):
        DistanceCalibration.load("no-such-model")


@pytest.mark.parametrize("model", ["dlib-resnet-v1", "dlib-resnet-v1-four-views"])
def test_shipped_calibrations_for_dlib_were_measured(model):
    calibration = DistanceCalibration.load(model)
    assert calibration.n_pairs_ > 3000 and calibration.measured["accuracy"] > 0.985
    assert calibration.predict_proba([calibration.threshold_])[0] == pytest.approx(0.5, abs=0.1)
    assert set(calibration.open_set) >= {"0.01", "0.001"}


def test_labelled_pair_distances_counts_pairs():
    X = np.eye(4, dtype=np.float32)
    distances, same = labelled_pair_distances(X, ["a", "a", "b", "c"])
    assert same.sum() == 1 and (~same).sum() == 5 and np.allclose(distances, np.sqrt(2))


@pytest.mark.slow
def test_verify_real_photos(capsys):
    from tests.conftest import ARCHIVE

    same_a, same_b = ARCHIVE / "2019_birthday" / "img44.jpg", ARCHIVE / "2021_wedding" / "img43.jpg"  # person_01
    other = ARCHIVE / "2019_birthday" / "img50.jpg"  # person_02
    assert main(["verify", str(same_a), str(same_b), "--json", "--embedder", "dlib"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert set(same) >= {"distance", "same", "probability"}
    assert same["same"] is True and same["probability"] > 0.9 and same["distance"] < 0.4
    assert main(["verify", str(same_a), str(other), "--json", "--embedder", "dlib"]) == 0
    different = json.loads(capsys.readouterr().out)
    assert different["same"] is False and different["probability"] < 0.1
    with pytest.raises(SystemExit) as stop:
        main(["verify", str(same_a), str(ARCHIVE / "2019_birthday" / "dogs.jpg"), "--embedder", "dlib"])
    assert stop.value.code == 1
    assert "no face found" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_pairs_on_real_photos(people_folders, tmp_path, capsys):
    people = sorted(p.name for p in people_folders.iterdir())
    lines = []
    for person in people:
        n = len(list((people_folders / person).iterdir()))
        lines += [f"{person}\t1\t{j}" for j in range(2, n + 1)]
    lines += [f"{a}\t1\t{b}\t2" for a in people for b in people if a < b]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    plot = tmp_path / "reliability.png"
    assert main(["evaluate", "pairs", str(tmp_path / "pairs.txt"), "--images", str(people_folders), "--json",
                 "--embedder", "dlib", "--plot", str(plot), "--save-calibration", str(tmp_path / "cal")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == len(lines) and report["missing"] == 0
    assert report["auc"] > 0.95 and report["accuracy"] > 0.85
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert DistanceCalibration.load("dlib-resnet-v1-four-views", tmp_path / "cal").n_pairs_ == len(lines)


def test_verify_refuses_a_pipe_at_once(tmp_path, capsys):
    """A FIFO named like a photo would block the read until something wrote to it."""
    import os

    from facecluster.cli import main
    from tests.conftest import ARCHIVE

    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(SystemExit) as stopped:
        main(["verify", str(ARCHIVE / "2019_birthday" / "img5.jpg"), str(tmp_path / "pipe.jpg"), "--embedder", "dlib"])
    assert stopped.value.code == 2 and "not a regular file" in capsys.readouterr().err
