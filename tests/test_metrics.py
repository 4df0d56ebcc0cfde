import pytest

from facecluster.measuring.metrics import bcubed_scores, cluster_report, nmi, pairwise_scores


def test_pairwise_on_a_hand_computed_case():
    # truth: A A A B B ; predicted: 1 1 2 2 2
    # predicted pairs: (0,1) (2,3) (2,4) (3,4) = 4; true pairs among them: (0,1) (3,4) = 2
    # true pairs: (0,1) (0,2) (1,2) (3,4) = 4
    scores = pairwise_scores(list("AAABB"), [1, 1, 2, 2, 2])
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 4)
    assert scores["f"] == pytest.approx(0.5)


def test_noise_counts_as_singletons():
    # All noise: no predicted pairs -> precision 1 by convention, recall 0 of the 1 true pair.
    scores = pairwise_scores(["A", "A", "B"], [-1, -1, -1])
    assert scores["precision"] == 1.0 and scores["recall"] == 0.0
    # Two noise faces are not "together".
    assert pairwise_scores(["A", "A"], [-1, -1])["recall"] == 0.0


def test_bcubed_on_a_hand_computed_case():
    # truth A A B ; predicted 1 1 1
    # precision per face: 2/3, 2/3, 1/3 -> 5/9 ; recall per face: 1, 1, 1 -> 1
    scores = bcubed_scores(list("AAB"), [1, 1, 1])
    assert scores["precision"] == pytest.approx(5 / 9)
    assert scores["recall"] == pytest.approx(1.0)


def test_nmi_extremes_and_a_known_value():
    assert nmi(list("AABB"), [0, 0, 1, 1]) == pytest.approx(1.0)
    assert nmi(list("AABB"), [5, 5, 9, 9]) == pytest.approx(1.0)  # names do not matter
    # truth AABB vs predicted 0101: independent -> 0
    assert nmi(list("AABB"), [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)


def test_report_counts_people_and_noise():
    report = cluster_report(list("AABBC"), [0, 0, 1, 1, -1])
    assert report["people_found"] == 2
    assert report["people_true"] == 3
    assert report["noise_share"] == pytest.approx(0.2)
    assert report["pairwise"]["f"] == pytest.approx(1.0)
