"""What people fix by hand, kept across runs: names, merges, faces moved out, "not a face".

Users write `OUT/labels.csv` (by hand, in the notebook with `add_label`, or with
`facecluster label`), one action per line, in terms of the run they are looking at:

    action,person_id,other_person_id,face_id,name
    name,3,,,Alice                     person 3 is Alice
    merge,3,7,,                        person 7 is the same person as 3
    move_out,,,<face_id>,              this face is not of the person it was put in
    not_a_face,,,<face_id>,            a false detection: never cluster it
    assign,3,,<face_id>,               this face is person 3 (taken from where it was)
    assign,,,<face_id>,Bob             this face is a person of its own (named, or not)
    not_a_face,,,<id> <id> <id>,       one action on several faces: their ids, space-separated
    hide,3,,,                          person 3 is kept but never shown or exported
    cover,,,<face_id>,                 this face is the picture of whoever holds it

The next `cluster` run snapshots each new line against the assignments it was written for (the
faces of person 3 *then*) into the `labels_applied` table, so a label keeps its meaning however
the people move later. From the snapshot come constraints that every later clustering obeys:
- faces confirmed together (named or merged as one person) are never split: one person holds
  them all, and it carries the name;
- a face moved out of a person is never put back into that person;
- a "not a face" is left out of clustering;
- a hidden person stays one person, marked hidden in the people table.
Person ids are stable across runs: each new person takes the id of the old person with whom it
shares most faces, by an optimal one-to-one matching (Hungarian), not greedily.
"""
from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from facecluster.grouping.clustering import NOISE
from facecluster.core.catalogue import ASSIGNMENTS, LABEL_LOG, LABELS_APPLIED
from facecluster.core.errors import UserError

ACTIONS = ("name", "merge", "move_out", "not_a_face", "assign", "hide", "cover", "forgotten")  # forgotten: a line `forget` blanked
COLUMNS = ["action", "person_id", "other_person_id", "face_id", "name"]
APPLIED_COLUMNS = ["label_row", "face_id", "relation", "group", "name"]


class LabelError(UserError, ValueError):
    pass


MAX_NAME = 200  # characters: a person's name, not a document (and far below the CSV reader's field limit)


def faces_of_line(field) -> list[str]:
    """The faces a line names: one face id, or several separated by spaces (one action on many
    faces, from the review page's selection, is one line, so that one undo takes it back)."""
    if field is None or (isinstance(field, float) and np.isnan(field)):
        return []
    return list(dict.fromkeys(str(field).split()))


def check_labels(labels: pd.DataFrame, source: str = "labels.csv") -> pd.DataFrame:
    """The labels with their types checked; a wrong line stops the run before any work."""
    missing = [c for c in COLUMNS if c not in labels.columns]
    if missing:
        raise LabelError(f"{source}: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    labels = labels[COLUMNS].copy()
    for number, row in enumerate(labels.itertuples(index=False), start=2):  # line 1 is the header
        def need(field: str, what: str):
            value = getattr(row, field)
            if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
                raise LabelError(f"{source}:{number}: action {row.action!r} needs {what} ({field})")
            return value

        if row.action not in ACTIONS:
            raise LabelError(f"{source}:{number}: unknown action {row.action!r}; one of {', '.join(ACTIONS)}")
        if isinstance(row.name, str) and len(row.name) > MAX_NAME:
            raise LabelError(f"{source}:{number}: a name of {len(row.name):,} characters; at most {MAX_NAME}")
        if row.action == "name":
            need("person_id", "the person")
            need("name", "the name")
        elif row.action == "merge":
            need("person_id", "the person kept")
            need("other_person_id", "the person merged into it")
        elif row.action == "hide":
            need("person_id", "the person")
        elif row.action != "forgotten":
            need("face_id", "the face")
    for column in ("person_id", "other_person_id"):
        try:
            labels[column] = pd.to_numeric(labels[column], errors="raise").astype("Int64")
        except (ValueError, TypeError):
            raise LabelError(f"{source}: {column} must be a whole number (a person id)") from None
    return labels.reset_index(drop=True)


def snapshot(labels: pd.DataFrame, first_row: int, assignments: pd.DataFrame) -> pd.DataFrame:
    """Face-level rows (APPLIED_COLUMNS) for label lines first_row.. against `assignments` (the
    face_id -> person_id of the run the lines were written for)."""
    faces_of = assignments[assignments["person_id"] != NOISE].groupby("person_id")["face_id"].agg(list)
    person_of = assignments.set_index("face_id")["person_id"]
    rows = []

    def person_faces(person, line: int) -> list[str]:
        if person not in faces_of.index:
            raise LabelError(f"labels.csv:{line + 2}: no person {person} in the run these labels were written for")
        return faces_of[person]

    for index in range(first_row, len(labels)):
        label = labels.iloc[index]
        group = f"g{index}"
        if label.action == "name":
            rows += [(index, f, "member", group, str(label["name"])) for f in person_faces(label.person_id, index)]
        elif label.action == "merge":
            faces = person_faces(label.person_id, index) + person_faces(label.other_person_id, index)
            rows += [(index, f, "member", group, None) for f in faces]
        elif label.action in ("move_out", "assign"):
            faces = faces_of_line(label.face_id)
            target = label.person_id
            by_person: dict[int, list[str]] = {}
            for face in faces:
                person = person_of.get(face)
                if person is None:
                    raise LabelError(f"labels.csv:{index + 2}: no face {face} in the run")
                stays = label.action == "assign" and not pd.isna(target) and int(target) == person
                if person != NOISE and not stays:
                    by_person.setdefault(int(person), []).append(face)
            for person, leaving in by_person.items():  # the rest of each person is confirmed without them
                rest = f"{group}out" if len(by_person) == 1 else f"{group}out{person}"
                gone = set(leaving)
                rows += [(index, f, "member", rest, None) for f in faces_of[person] if f not in gone]
                rows += [(index, f, "not_member", rest, None) for f in leaving]
            if label.action == "assign":
                name = None if pd.isna(label["name"]) else str(label["name"])
                joined = person_faces(target, index) if not pd.isna(target) else []
                rows += [(index, f, "member", group, name) for f in dict.fromkeys([*joined, *faces])]
        elif label.action == "hide":
            rows += [(index, f, "hidden", group, None) for f in person_faces(label.person_id, index)]
        elif label.action == "not_a_face":
            rows += [(index, f, "not_face", None, None) for f in faces_of_line(label.face_id)]
        elif label.action == "cover":
            rows += [(index, f, "cover", None, None) for f in faces_of_line(label.face_id)[:1]]
    return pd.DataFrame(rows, columns=APPLIED_COLUMNS)


class Constraints:
    """Built from the labels_applied snapshot: member (face -> identity), excluded (face ->
    identities it must not join), not_faces, names (identity -> name), hidden (identities)."""

    def __init__(self, applied: pd.DataFrame):
        parent: dict[str, str] = {}

        def find(g):
            while parent.setdefault(g, g) != g:
                parent[g] = parent[parent[g]]
                g = parent[g]
            return g

        member: dict[str, str] = {}
        excluded: dict[str, set] = {}
        not_faces: set[str] = set()
        named: list[tuple[str, str]] = []
        hidden: set[str] = set()
        self.covers: dict[str, int] = {}  # face -> the label line that chose it as its person's picture
        for row in applied.sort_values("label_row", kind="stable").itertuples(index=False):
            if row.relation in ("member", "hidden"):  # hiding a person confirms them as one person
                if row.relation == "hidden":
                    hidden.add(row.group)
                if row.face_id in member:
                    parent[find(member[row.face_id])] = find(row.group)
                member[row.face_id] = row.group
                if isinstance(row.name, str):
                    named.append((row.group, row.name))
            elif row.relation == "not_member":
                member.pop(row.face_id, None)
                excluded.setdefault(row.face_id, set()).add(row.group)
            elif row.relation == "not_face":
                member.pop(row.face_id, None)
                not_faces.add(row.face_id)
            elif row.relation == "cover":
                self.covers[row.face_id] = int(row.label_row)
        self.member = {face: find(group) for face, group in member.items()}
        self.excluded = {face: {find(g) for g in groups} for face, groups in excluded.items()}
        self.not_faces = not_faces
        self.names = {}
        for group, name in named:  # a later name wins
            self.names[find(group)] = name
        self.hidden = {find(group) for group in hidden}

    def __bool__(self):
        return bool(self.member or self.excluded or self.not_faces)


def apply_constraints(face_ids, labels: np.ndarray, X: np.ndarray, constraints: Constraints
                      ) -> tuple[np.ndarray, dict]:
    """Clustering labels made to obey the constraints; returns (labels, identity -> label)."""
    labels = np.asarray(labels).copy()
    index = {f: i for i, f in enumerate(face_ids)}
    members: dict[str, np.ndarray] = {}
    for face, identity in constraints.member.items():
        if face in index:
            members.setdefault(identity, []).append(index[face])
    members = {k: np.array(v) for k, v in members.items()}
    next_label = int(labels.max()) + 1 if len(labels) else 0
    owner: dict[int, str] = {}  # cluster label -> the identity that owns it
    identity_label: dict[str, int] = {}
    # Largest identities choose first; each takes a cluster no other identity took, so two
    # confirmed people are never merged (the rest of a shared cluster stays with the first).
    for identity, rows in sorted(members.items(), key=lambda kv: -len(kv[1])):
        found = labels[rows][labels[rows] != NOISE]
        choice = None
        if len(found):
            for label, _ in pd.Series(found).value_counts().items():
                if int(label) not in owner:
                    choice = int(label)
                    break
        if choice is None:
            choice, next_label = next_label, next_label + 1
        owner[choice] = identity
        identity_label[identity] = choice
        # Clusters made mostly of this identity's confirmed faces are this person too.
        for label in set(found.tolist()) - {choice}:
            in_cluster = labels == label
            if int(label) not in owner and np.isin(np.flatnonzero(in_cluster), rows).mean() > 0.5:
                labels[in_cluster] = choice
        labels[rows] = choice
    for face, identities in constraints.excluded.items():
        i = index.get(face)
        if i is not None and any(identity_label.get(identity) == labels[i] for identity in identities):
            labels[i] = NOISE
    return labels, identity_label


def stable_person_ids(labels: np.ndarray, face_ids, previous: pd.DataFrame | None) -> np.ndarray:
    """Person ids for new cluster labels: each takes the id of the previous person it shares
    most faces with, by an optimal one-to-one matching; the others get ids above the previous
    run's largest, larger people first. Without a previous run: 0 = the largest person."""
    from facecluster.grouping.people import number_by_size

    labels = np.asarray(labels)
    if previous is None or previous.empty or not (previous["person_id"] != NOISE).any():
        return number_by_size(labels)
    old = pd.Series(np.asarray(face_ids)).map(previous.set_index("face_id")["person_id"]).fillna(NOISE)
    old = old.to_numpy().astype(np.int64)
    both = (labels != NOISE) & (old != NOISE)
    overlap = pd.DataFrame({"new": labels[both], "old": old[both]}).value_counts().rename("count").reset_index()
    sizes = pd.Series(labels[labels != NOISE]).value_counts()
    mapping = ids_for_labels(overlap, sizes, int(previous["person_id"].max()))
    result = np.full(len(labels), NOISE, dtype=np.int64)
    keep = labels != NOISE
    result[keep] = pd.Series(labels[keep]).map(mapping).to_numpy()
    return result


def ids_for_labels(overlap: pd.DataFrame, sizes: pd.Series, previous_max: int) -> dict:
    """new label -> person id, from overlap (new, old, count: faces a new label shares with a
    previous person) and sizes (new label -> faces): the optimal one-to-one matching by shared
    faces, then ids above previous_max, larger people first. What stable_person_ids does on one
    machine and the distributed clustering does from counts gathered on Spark."""
    from scipy.optimize import linear_sum_assignment

    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    mapping: dict = {}
    overlap = overlap[overlap["count"] > 0]
    if len(overlap):
        new_keys, new_row = np.unique(overlap["new"].to_numpy(), return_inverse=True)
        old_keys, old_col = np.unique(overlap["old"].to_numpy(), return_inverse=True)
        counts = overlap["count"].to_numpy(dtype=np.float64)
        # One matching per group of people linked by shared faces: most new people share faces
        # with one old person only, and a matrix of every new by every old person would take
        # 11 GB at 38,000 people (a million faces).
        n_new = len(new_keys)
        graph = coo_matrix((counts, (new_row, n_new + old_col)), shape=(n_new + len(old_keys),) * 2)
        _, group = connected_components(graph, directed=False)
        pair_group = group[new_row]
        order = np.argsort(pair_group, kind="stable")
        starts = np.flatnonzero(np.r_[True, pair_group[order][1:] != pair_group[order][:-1]])
        for pairs in np.split(order, starts[1:]):
            rows_of, row = np.unique(new_row[pairs], return_inverse=True)
            cols_of, col = np.unique(old_col[pairs], return_inverse=True)
            matrix = np.zeros((len(rows_of), len(cols_of)))
            matrix[row, col] = counts[pairs]
            for r, c in zip(*linear_sum_assignment(matrix, maximize=True)):
                if matrix[r, c] > 0:
                    mapping[new_keys[rows_of[r]].item()] = old_keys[cols_of[c]].item()
    next_id = max(previous_max, -1) + 1
    for label in sizes.sort_values(ascending=False, kind="stable").index:  # largest first
        if label not in mapping:
            mapping[label] = next_id
            next_id += 1
    return mapping


def constraint_changes(labelled: pd.DataFrame, sizes: pd.Series, largest_label: int, constraints: Constraints
                       ) -> tuple[dict, dict, dict]:
    """apply_constraints for labels that live on Spark: from the labelled faces' cluster labels
    (labelled: face_id, label), the size of each of those clusters and the largest label of all,
    (label -> new label for
    a whole cluster, face_id -> label for a labelled face, identity -> label). The driver holds
    the labelled faces and one count per cluster they are in, never the archive's faces."""
    involved = sizes[sizes.index.isin(labelled["label"])]
    per_label = labelled[labelled["label"] != NOISE].groupby("label").size()
    others = (involved - per_label.reindex(involved.index).fillna(0)).clip(lower=0).astype(int)
    stand_ins = np.repeat(others.index.to_numpy(), others.to_numpy())  # the unlabelled faces of each cluster
    face_ids = list(labelled["face_id"]) + [None] * len(stand_ins)
    labels = np.r_[labelled["label"].to_numpy(dtype=np.int64), stand_ins.astype(np.int64)]
    # A last stand-in at the largest label of all makes new labels start above every cluster.
    floor = [int(largest_label)] if len(labels) == 0 or largest_label > labels.max() else []
    changed, identity_label = apply_constraints(face_ids + [None] * len(floor), np.r_[labels, floor].astype(np.int64),
                                                None, constraints)
    changed = changed[:len(labels)]
    unlabelled = len(labelled)
    remap = {int(old): int(new) for old, new in zip(labels[unlabelled:], changed[unlabelled:]) if old != new}
    overrides = {face: int(new) for face, new in zip(labelled["face_id"], changed[:unlabelled])}
    return remap, overrides, identity_label


def _log_rows(text: str, source: str = "labels.csv") -> list[list[str]]:
    """The log's lines as CSV rows, blank lines skipped. A spreadsheet's byte-order mark and
    Windows line ends (CRLF) are read as any other log."""
    try:
        return [row for row in csv.reader(io.StringIO(text.removeprefix("\ufeff")))
                if any(field.strip() for field in row)]
    except csv.Error as exc:
        raise LabelError(f"{source} cannot be read as CSV ({exc}): correct or remove the line it names") from None


def parse_label_log(text: str, source: str = "labels.csv") -> pd.DataFrame:
    """labels.csv as text -> one row per line (all text; check_labels types it). Read with
    Python's csv module, as add_label writes it: a name may hold commas, quotes or line breaks.
    A line with fields beyond the header keeps them unread; blank lines are skipped."""
    rows = _log_rows(text, source)
    if not rows:
        raise LabelError(f"{source} is empty: its first line must be the header {','.join(COLUMNS)}")
    header, lines = rows[0], rows[1:]
    width = len(header)
    return pd.DataFrame([(line + [""] * width)[:width] for line in lines], columns=header, dtype=object
                        ).replace("", None)


def blank_label_lines(text: str, lines: set[int], faces_kept: dict[int, str] | None = None) -> str:
    """The label log with the given lines (0 = the first after the header) replaced by
    'forgotten' lines, every other field emptied: the log keeps its length, so the lines already
    applied keep their numbers, and every field a user added stays with the other lines.
    faces_kept: line -> the face ids it keeps (a line on many faces that loses some of them)."""
    rows = _log_rows(text)
    header, body = rows[0], rows[1:]
    face_column = header.index("face_id") if "face_id" in header else None
    for line, kept in (faces_kept or {}).items():
        if line < len(body) and line not in lines and face_column is not None:
            if kept:
                body[line] = (body[line] + [""] * len(header))[:max(len(header), len(body[line]))]
                body[line][face_column] = kept
            else:
                lines = {*lines, line}
    for line in lines:
        if line < len(body):
            body[line] = ["forgotten"] + [""] * (max(len(header), len(body[line])) - 1)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *body])
    return buffer.getvalue()


def check_against_run(row: pd.Series, assignments: pd.DataFrame | None, out: str) -> None:
    """A label must name people and faces of the run it is written for: refused now, with the
    reason, rather than after the next run's ingest and embed."""
    if assignments is None:
        raise LabelError(f"{out} has no clustered run yet: run `facecluster run PHOTOS --out {out}` first")
    if row["action"] in ("name", "merge", "hide", "assign"):
        people = set(assignments.loc[assignments["person_id"] != NOISE, "person_id"].astype(int))
        for field in ("person_id", "other_person_id"):
            person = row[field]
            if person is not None and not pd.isna(person) and int(person) not in people:
                raise LabelError(f"no person {int(person)} in {out} (people are numbered 0 to "
                                 f"{max(people) if people else -1}; see `facecluster people --out {out}`)")
        if row["action"] == "merge" and int(row["person_id"]) == int(row["other_person_id"]):
            raise LabelError(f"merge: person {int(row['person_id'])} with itself")
    named = faces_of_line(row["face_id"]) if row["action"] in ("move_out", "not_a_face", "assign", "cover") else []
    missing = list(pd.Index(named).difference(assignments["face_id"], sort=False)) if named else []
    if missing:
        raise LabelError(f"no face {missing[0]} in {out} (face ids look like <photo_id>:<n>; "
                         f"the report and the notebook show them)")


def add_label(out: str, action: str, person_id: int | None = None, other_person_id: int | None = None,
              face_id: str | None = None, name: str | None = None,
              assignments: pd.DataFrame | None = None) -> pd.DataFrame:
    """Append one checked line to OUT/labels.csv (a local output root); applied by the next
    `facecluster cluster`. assignments: the run's face_id -> person_id when the caller holds
    them (read from OUT otherwise). Returns the whole log."""
    import os

    row = check_labels(pd.DataFrame([{"action": action, "person_id": person_id, "other_person_id": other_person_id,
                                      "face_id": face_id, "name": name}], columns=COLUMNS), "this label")
    assignments_path = os.path.join(out, ASSIGNMENTS.name)
    if assignments is None and os.path.exists(assignments_path):
        assignments = pd.read_parquet(assignments_path, columns=["face_id", "person_id"])
    check_against_run(row.iloc[0], assignments, out)
    path = os.path.join(out, LABEL_LOG)
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8", newline="") as log:
            text = log.read()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if not text.strip():
        writer.writerow(COLUMNS)
    elif not text.endswith("\n"):
        buffer.write("\n")  # a hand-edited log whose last line has no line end
    writer.writerow(["" if v is None else v for v in (action, person_id, other_person_id, face_id, name)])
    # The log as it would be is read back before a byte is written: a line that could not be read
    # would stop every later label, undo and cluster run until the file was edited by hand.
    check_labels(parse_label_log(text + buffer.getvalue(), path), path)
    with open(path, "a", encoding="utf-8", newline="") as log:
        log.write(buffer.getvalue())
    return read_label_log(out)


def applied_lines(out: str) -> int:
    """How many lines of OUT/labels.csv a cluster run has applied (they can no longer be undone)."""
    from facecluster.core.run_reader import has_table, read_table

    if not has_table(out, LABELS_APPLIED):
        return 0
    rows = read_table(out, LABELS_APPLIED, ["label_row"])["label_row"]
    return int(rows.max()) + 1 if len(rows) else 0


def read_label_log(out: str) -> pd.DataFrame:
    """OUT/labels.csv checked, or an empty log."""
    import os

    path = os.path.join(out, LABEL_LOG)
    if not os.path.exists(path):
        return pd.DataFrame(columns=COLUMNS)
    with open(path, encoding="utf-8", newline="") as log:
        text = log.read()
    return check_labels(parse_label_log(text, path), path) if text.strip() else pd.DataFrame(columns=COLUMNS)


def undo_last_label(out: str) -> pd.Series:
    """Take back the last line of OUT/labels.csv, if no cluster run has applied it yet (an applied
    line has moved people: it is answered by a label that says otherwise). Returns that line."""
    import os

    path = os.path.join(out, LABEL_LOG)
    log = read_label_log(out)
    if len(log) <= applied_lines(out):
        raise LabelError("nothing to undo: every label was applied by `facecluster cluster`; "
                         "add a label that says otherwise")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = _log_rows(handle.read())
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows[:-1])
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
    os.replace(partial, path)  # a crash leaves the old log or the new one, never half of one
    return log.iloc[-1]
