"""Comparing the tables of two runs on the same photos."""
import numpy as np
import pandas as pd


def read(out, name, key):
    return pd.read_parquet(out / name).sort_values(key).reset_index(drop=True)


def assert_same_tables(out, reference):
    status, expected_status = read(out, "photo_status", "photo_id"), read(reference, "photo_status", "photo_id")
    pd.testing.assert_frame_equal(status, expected_status)
    faces, expected = read(out, "faces", "face_id"), read(reference, "faces", "face_id")
    assert faces["face_id"].tolist() == expected["face_id"].tolist()
    for column in ("photo_id", "album", "path", "face_index", "model"):
        assert faces[column].tolist() == expected[column].tolist(), column
    for column in ("box", "landmarks", "embedding"):
        got = np.stack([np.hstack(v).astype(np.float64) for v in faces[column]])
        want = np.stack([np.hstack(v).astype(np.float64) for v in expected[column]])
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=column)


def assert_same_people(out, reference):
    """The same faces grouped the same way (person ids may be numbered differently)."""
    def groups(root):
        assignments = pd.read_parquet(root / "assignments")
        people = assignments[assignments["person_id"] >= 0].groupby("person_id")["face_id"].apply(frozenset)
        return set(people), set(assignments.loc[assignments["person_id"] < 0, "face_id"])
    assert groups(out) == groups(reference)
