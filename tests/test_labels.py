"""Labels kept across runs: snapshot, constraints, stable person ids (by hand), and the cluster
job obeying a user's labels on the sample run."""
import numpy as np
import pandas as pd
import pytest

from facecluster.curation.labels import (COLUMNS, Constraints, LabelError, apply_constraints, check_labels, snapshot,
                                stable_person_ids)


def labels(*rows):
    return check_labels(pd.DataFrame([dict(zip(COLUMNS, r)) for r in rows], columns=COLUMNS))


PREVIOUS = pd.DataFrame({"face_id": ["a", "b", "c", "d", "e", "f", "g"],
                         "person_id": [0, 0, 0, 1, 1, -1, 2]})


def test_check_labels_names_the_bad_line():
    with pytest.raises(LabelError, match="labels.csv:3: unknown action 'rename'"):
        labels(("name", 0, None, None, "Ann"), ("rename", 1, None, None, "Bo"))
    with pytest.raises(LabelError, match="needs the name"):
        labels(("name", 0, None, None, None))


def test_stable_ids_follow_the_most_shared_faces_optimally():
    # new cluster 5 = old person 1's faces plus one of person 0; new 9 = most of person 0.
    # Greedy by cluster order would give 5 -> 0? no: optimal matching maximises total overlap.
    faces = ["a", "b", "c", "d", "e", "f", "g", "h"]
    new = np.array([9, 9, 5, 5, 5, -1, 7, 7])
    ids = stable_person_ids(new, faces, PREVIOUS)
    assert ids.tolist() == [0, 0, 1, 1, 1, -1, 2, 2]
    # a new person that overlaps nobody (f was noise, h is new) gets an id above the previous largest (2)
    ids = stable_person_ids(np.array([4, 4, 4, 1, 1, 8, -1, 8]), faces, PREVIOUS)
    assert ids.tolist() == [0, 0, 0, 1, 1, 3, -1, 3]


def test_stable_ids_prefer_total_overlap_to_greedy():
    # old 0 = a..c, old 1 = d..j; new A = a..g overlaps 0 by 3 and 1 by 4, new B = h..j overlaps 1 by 3.
    # Greedy (largest overlap first) gives A -> 1 and leaves B a new id: 4 faces keep their id.
    # The optimal matching gives A -> 0, B -> 1: 6 faces keep their id.
    previous = pd.DataFrame({"face_id": list("abcdefghij"), "person_id": [0, 0, 0] + [1] * 7})
    ids = stable_person_ids(np.array([5] * 7 + [6] * 3), list("abcdefghij"), previous)
    assert ids.tolist() == [0] * 7 + [1] * 3


def test_snapshot_and_constraints():
    table = labels(("name", 0, None, None, "Ann"), ("merge", 0, 2, None, None),
                   ("move_out", None, None, "b", None), ("not_a_face", None, None, "d", None))
    applied = snapshot(table, 0, PREVIOUS)
    constraints = Constraints(applied)
    # a, c, g are one confirmed person named Ann; b was moved out of her; d is not a face
    identity = constraints.member["a"]
    assert constraints.member["c"] == constraints.member["g"] == identity and "b" not in constraints.member
    assert constraints.names[identity] == "Ann"
    assert constraints.excluded["b"] == {identity} and constraints.not_faces == {"d"}
    with pytest.raises(LabelError, match="no person 9"):
        snapshot(labels(("name", 9, None, None, "X")), 0, PREVIOUS)


def test_apply_constraints_keeps_confirmed_faces_together_and_moved_faces_out():
    table = labels(("merge", 0, 2, None, None), ("move_out", None, None, "b", None))
    constraints = Constraints(snapshot(table, 0, PREVIOUS))
    faces = np.array(["a", "b", "c", "d", "e", "f", "g"])
    # the new clustering split a from c, put b back with a, and g alone in noise
    new = np.array([0, 0, 1, 2, 2, -1, -1])
    out, identity_label = apply_constraints(faces, new, np.zeros((7, 2)), constraints)
    person = identity_label[constraints.member["a"]]
    assert out[0] == out[2] == out[6] == person  # a, c, g together
    assert out[1] != person  # b stays out
    assert out[3] == out[4] != person


@pytest.mark.spark
@pytest.mark.slow
def test_cluster_job_keeps_names_merges_and_moves(spark, sample_run, tmp_path, settings):
    import shutil

    from facecluster.jobs import cluster

    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    before = pd.read_parquet(out / "assignments")
    people = pd.read_parquet(out / "people").sort_values("person_id")
    first, second = int(people.person_id.iloc[0]), int(people.person_id.iloc[1])
    moved = before[before.person_id == first].face_id.iloc[0]
    noise = before[(before.person_id == -1) & before.clustered].face_id.iloc[0]
    (out / "labels.csv").write_text(
        "action,person_id,other_person_id,face_id,name\n"
        f"name,{first},,,Alice\n"
        f"merge,{first},{second},,\n"
        f"move_out,,,{moved},\n"
        f"not_a_face,,,{noise},\n")
    for _ in range(2):  # the labels hold on the run that applies them and on the next one
        cluster.cluster(spark, str(out), settings["cluster"])
        after = pd.read_parquet(out / "assignments")
        people_after = pd.read_parquet(out / "people")
        alice = people_after[people_after.name == "Alice"]
        assert len(alice) == 1 and int(alice.person_id.iloc[0]) == first  # the id stays
        confirmed = set(before.face_id[before.person_id.isin([first, second])]) - {moved}
        assert set(after.face_id[after.person_id == first]) == confirmed
        assert after.set_index("face_id").person_id[moved] != first
        row = after.set_index("face_id").loc[noise]
        assert row.person_id == -1 and not row.clustered
        # every other person keeps their id
        others = before[~before.person_id.isin([first, second, -1])]
        merged = others.merge(after, on="face_id", suffixes=("_before", "_after"))
        assert (merged.person_id_before == merged.person_id_after).all()
    assert len(pd.read_parquet(out / "labels_applied")) > 0
    with open(out / "labels.csv", "a") as log:
        log.write("name,999,,,Nobody\n")
    with pytest.raises(ValueError, match="no person 999"):
        cluster.cluster(spark, str(out), settings["cluster"])
    (out / "labels.csv").write_text("action,person_id,other_person_id,face_id,name\n")
    with pytest.raises(ValueError, match="fewer lines than the 4 already applied"):
        cluster.cluster(spark, str(out), settings["cluster"])


def test_assign_takes_a_face_from_where_it_was_and_hide_keeps_one_person():
    # f (not grouped) is person 1; a is taken out of person 0 into a person of its own, "Bo";
    # person 2 is hidden.
    table = labels(("assign", 1, None, "f", None), ("assign", None, None, "a", "Bo"), ("hide", 2, None, None, None))
    constraints = Constraints(snapshot(table, 0, PREVIOUS))
    assert constraints.member["f"] == constraints.member["d"] == constraints.member["e"]
    bo = constraints.member["a"]
    assert constraints.names[bo] == "Bo" and constraints.member["b"] != bo and constraints.excluded["a"]
    assert constraints.hidden == {constraints.member["g"]}
    faces = np.array(list("abcdefg"))
    out, identity_label = apply_constraints(faces, np.array([0, 0, 0, 1, 1, -1, 2]), np.zeros((7, 2)), constraints)
    assert out[5] == out[3] == out[4] and out[0] not in (out[1], out[5], -1) and out[1] == out[2]
    with pytest.raises(LabelError, match="no person 9"):
        snapshot(labels(("assign", 9, None, "f", None)), 0, PREVIOUS)


def test_undo_takes_back_only_lines_not_applied(tmp_path):
    from facecluster.curation.labels import undo_last_label

    (tmp_path / "labels.csv").write_text("action,person_id,other_person_id,face_id,name\nname,0,,,Ann\n"
                                         "hide,1,,,\n")
    assert undo_last_label(str(tmp_path)).action == "hide"
    assert (tmp_path / "labels.csv").read_text().splitlines()[-1] == "name,0,,,Ann"
    (tmp_path / "labels_applied").mkdir()
    pd.DataFrame({"label_row": [0], "face_id": ["a"], "relation": ["member"], "group": ["g0"], "name": ["Ann"]}
                 ).to_parquet(tmp_path / "labels_applied" / "part.parquet")
    with pytest.raises(LabelError, match="nothing to undo"):
        undo_last_label(str(tmp_path))


def test_a_picture_chosen_alone_is_kept(spark, sample_run, tmp_path, settings):
    """A log holding only a `cover` line (no constraint on who is who) still sets the picture."""
    import shutil

    from facecluster.jobs import cluster

    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    people = pd.read_parquet(out / "people").sort_values("n_faces").set_index("person_id")
    person = int(people.index[-1])
    assignments = pd.read_parquet(out / "assignments")
    pick = next(f for f in assignments.face_id[assignments.person_id == person]
                if f != people.loc[person, "exemplar_face_id"])
    (out / "labels.csv").write_text(f"action,person_id,other_person_id,face_id,name\ncover,,,{pick},\n")
    cluster.cluster(spark, str(out), settings["cluster"])
    holder = pd.read_parquet(out / "assignments").set_index("face_id").loc[pick, "person_id"]
    assert pd.read_parquet(out / "people").set_index("person_id").loc[holder, "exemplar_face_id"] == pick


def _clustered(out):
    """An output root with the assignments of a run: people 3 and 7, face abc:0 not grouped."""
    pd.DataFrame({"face_id": ["abc:0", "abc:1", "def:0", "def:1"], "person_id": [-1, 3, 7, 7]}).to_parquet(
        out / "assignments")


def test_label_command_appends_checked_lines(tmp_path, capsys):
    from facecluster.cli import main

    _clustered(tmp_path)
    assert main(["label", "--out", str(tmp_path), "name", "3", "Alice Smith"]) == 0
    assert main(["label", "--out", str(tmp_path), "merge", "3", "7"]) == 0
    assert main(["label", "--out", str(tmp_path), "not-a-face", "abc:0"]) == 0
    log = pd.read_csv(tmp_path / "labels.csv", dtype=str, keep_default_na=False)
    assert log.action.tolist() == ["name", "merge", "not_a_face"]
    assert log.name.iloc[0] == "Alice Smith" and log.other_person_id.iloc[1] == "7" and log.face_id.iloc[2] == "abc:0"
    assert "3 labels" in capsys.readouterr().out


@pytest.mark.parametrize("words, reason", [
    (["name", "99999", "X"], "no person 99999"),
    (["merge", "3", "99999"], "no person 99999"),
    (["merge", "3", "3"], "with itself"),
    (["move-out", "NOSUCHFACE"], "no face NOSUCHFACE"),
    (["not-a-face", "NOSUCHFACE"], "no face NOSUCHFACE"),
])
def test_a_label_naming_nobody_is_refused_when_written(tmp_path, capsys, words, reason):
    from facecluster.cli import main

    _clustered(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["label", "--out", str(tmp_path), *words])
    assert stopped.value.code == 2 and reason in capsys.readouterr().err
    assert not (tmp_path / "labels.csv").exists()  # nothing written


def test_a_label_before_any_run_is_refused(tmp_path, capsys):
    from facecluster.cli import main

    with pytest.raises(SystemExit):
        main(["label", "--out", str(tmp_path), "name", "0", "Ann"])
    assert "no clustered run yet" in capsys.readouterr().err


def test_names_with_quotes_commas_and_line_breaks_survive_the_log(tmp_path):
    from facecluster.curation.labels import add_label, parse_label_log

    _clustered(tmp_path)
    odd = ['Bob "the builder"', "Smith, Ann", "two\nlines", "Zoë"]
    for name in odd:
        add_label(str(tmp_path), "name", person_id=3, name=name)
    log = check_labels(parse_label_log((tmp_path / "labels.csv").read_text(encoding="utf-8")))
    assert log["name"].tolist() == odd


def test_a_malformed_log_line_is_one_clear_error():
    from facecluster.curation.labels import parse_label_log

    with pytest.raises(LabelError, match="person_id must be a whole number"):
        check_labels(parse_label_log("action,person_id,other_person_id,face_id,name\nname,three,,,Ann\n"))
    with pytest.raises(LabelError, match="is empty"):
        parse_label_log("")
    # a field beyond the header is kept unread rather than shifting the columns
    log = check_labels(parse_label_log("action,person_id,other_person_id,face_id,name\nname,3,,,Ann,a note\n"))
    assert log.loc[0, "action"] == "name" and log.loc[0, "name"] == "Ann"


def test_blanking_lines_keeps_the_log_readable_and_its_length():
    from facecluster.curation.labels import blank_label_lines, parse_label_log

    text = ('action,person_id,other_person_id,face_id,name\nname,3,,,"Bob ""B"""\n'
            'name,4,,,Ann,hand-written note\nnot_a_face,,,abc:0,\n')
    blanked = check_labels(parse_label_log(blank_label_lines(text, {0, 1})))
    assert blanked["action"].tolist() == ["forgotten", "forgotten", "not_a_face"]
    assert "Bob" not in blank_label_lines(text, {0, 1}) and "note" not in blank_label_lines(text, {0, 1})


def test_one_line_on_several_faces_is_the_same_as_a_line_for_each():
    """The review page's selection writes one line naming several faces (one undo takes it all
    back); the constraints it gives are those of one line per face."""
    together = snapshot(labels(("move_out", None, None, "a b", None), ("assign", 2, None, "d f", None)), 0, PREVIOUS)
    apart = snapshot(labels(("move_out", None, None, "a", None), ("move_out", None, None, "b", None),
                            ("assign", 2, None, "d", None), ("assign", 2, None, "f", None)), 0, PREVIOUS)
    X = np.eye(7)
    faces = list(PREVIOUS["face_id"])
    clusters = np.array([0, 0, 0, 1, 1, -1, 2])
    one, _ = apply_constraints(faces, clusters, X, Constraints(together))
    each, _ = apply_constraints(faces, clusters, X, Constraints(apart))
    assert pd.factorize(one)[0].tolist() == pd.factorize(each)[0].tolist()
    assert one[0] != one[2] and one[1] != one[2], "moved out of person 0"
    assert one[3] == one[5] == one[6], "d and f joined person 2"
    with pytest.raises(LabelError, match="no face zz"):
        snapshot(labels(("move_out", None, None, "a zz", None)), 0, PREVIOUS)


def test_forgetting_a_face_of_a_line_on_several_faces_keeps_the_others():
    from facecluster.curation.labels import blank_label_lines, parse_label_log

    text = "action,person_id,other_person_id,face_id,name\nnot_a_face,,,p1:0 p2:0 p3:1,\nmove_out,,,p1:1,\n"
    kept = check_labels(parse_label_log(blank_label_lines(text, {1}, {0: "p2:0 p3:1"})))
    assert kept["action"].tolist() == ["not_a_face", "forgotten"] and kept["face_id"].iloc[0] == "p2:0 p3:1"
    gone = check_labels(parse_label_log(blank_label_lines(text, set(), {0: ""})))
    assert gone["action"].iloc[0] == "forgotten" and "p1" not in blank_label_lines(text, {1}, {0: "p2:0 p3:1"})


def test_a_name_too_long_is_refused_before_anything_is_written(tmp_path, capsys):
    from facecluster.cli import main
    from facecluster.curation.labels import add_label, read_label_log

    _clustered(tmp_path)
    add_label(str(tmp_path), "name", person_id=3, name="Ann")
    before = (tmp_path / "labels.csv").read_bytes()
    with pytest.raises(LabelError, match="at most 200"):
        add_label(str(tmp_path), "name", person_id=3, name="x" * 2_000_000)
    with pytest.raises(SystemExit):
        main(["label", "--out", str(tmp_path), "name", "3", "y" * 201])
    assert "at most 200" in capsys.readouterr().err
    assert (tmp_path / "labels.csv").read_bytes() == before, "nothing appended"
    add_label(str(tmp_path), "hide", person_id=7)  # and the log goes on
    assert read_label_log(str(tmp_path))["action"].tolist() == ["name", "hide"]


def test_a_log_saved_by_a_spreadsheet_reads_as_any_other(tmp_path):
    """A byte-order mark and Windows line ends (CRLF), as Excel and LibreOffice save CSV."""
    from facecluster.curation.labels import add_label, read_label_log, undo_last_label

    _clustered(tmp_path)
    (tmp_path / "labels.csv").write_bytes("action,person_id,other_person_id,face_id,name\r\nname,3,,,Zoë\r\n"
                                          .encode("utf-8-sig"))
    assert read_label_log(str(tmp_path))["name"].tolist() == ["Zoë"]
    add_label(str(tmp_path), "merge", person_id=3, other_person_id=7)
    assert read_label_log(str(tmp_path))["action"].tolist() == ["name", "merge"]
    assert undo_last_label(str(tmp_path)).action == "merge"
    assert read_label_log(str(tmp_path))["name"].tolist() == ["Zoë"]


def test_person_ids_match_as_many_faces_as_one_matching_over_all_people():
    """ids_for_labels matches people group by group (people linked by shared faces): as many
    faces kept under their old ids as one optimal matching over every pair of people."""
    from scipy.optimize import linear_sum_assignment

    from facecluster.curation.labels import ids_for_labels

    rng = np.random.default_rng(1)
    for _ in range(100):
        n_new, n_old, n_pairs = rng.integers(1, 30), rng.integers(1, 30), rng.integers(1, 60)
        overlap = (pd.DataFrame({"new": rng.integers(0, n_new, n_pairs), "old": rng.integers(0, n_old, n_pairs) + 100,
                                 "count": rng.integers(1, 9, n_pairs)})
                   .groupby(["new", "old"], as_index=False)["count"].sum())
        mapping = ids_for_labels(overlap, pd.Series(rng.integers(1, 50, n_new), index=np.arange(n_new)), 150)
        matrix = overlap.pivot_table(index="new", columns="old", values="count", fill_value=0)
        best = matrix.to_numpy()[linear_sum_assignment(matrix.to_numpy(), maximize=True)].sum()
        kept = sum(matrix.loc[new, old] for new, old in mapping.items() if old < 150 and new in matrix.index)
        assert kept == best
        assert sorted(mapping) == list(range(n_new)) and len(set(mapping.values())) == n_new
