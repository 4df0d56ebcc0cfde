"""Identification in an open set: who is this face, or "unknown".

A gallery holds faces of named people (one photo each is enough). Closed-set classifiers
always answer with an enrolled name, so a stranger gets called Bob because Bob is the nearest
name on file. Here every answer must pass a distance (nearest neighbour) or a probability
(SVM) test, set so that strangers are accepted only at a measured rate; the rest is "unknown".

- NearestPersonIdentifier (default): the nearest enrolled face; accepted when its distance is
  within `max_distance`. Works one-shot. The default is NOT the verification threshold: a
  stranger compared with hundreds of enrolled faces nearly always finds one within it (measured
  on LFW, dlib: 95% of strangers named at 0.436 with 576 enrolled faces). It is the distance
  measured for a false-accept rate (`far`, 1% by default) on strangers, stored with the model's
  calibration (facecluster evaluate identify --save-calibration).
- SvmIdentifier (option, as in FaceNet's classifier example): a linear SVM over the enrolled
  faces with Platt probabilities; accepted when the best probability reaches `min_probability`.
  Needs at least two people with two or more photos each.

Both follow scikit-learn's estimator style: fit(embeddings, names), predict(X), and the scores
of the last predict in distance_ / probability_.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

UNKNOWN = "unknown"


@dataclass
class Gallery:
    """Named faces of one model: embeddings (n, d) float32 and a name per row."""
    embeddings: np.ndarray
    names: np.ndarray
    model_id: str
    photos: list[str] | None = None

    def __post_init__(self):
        if len(self.embeddings) == 0:
            raise ValueError("the gallery holds no face")

    @property
    def people(self) -> int:
        return len(set(self.names))


def gallery_from_folder(folder: str | os.PathLike, embed_settings: dict, weights: str | None = None,
                        run: str | None = None) -> tuple[Gallery, pd.DataFrame]:
    """FOLDER/Person Name/*.jpg: the main face of each photo, named by its sub-folder. Returns the
    gallery and the photos that gave no face (with why)."""
    from facecluster.recognition.photo_faces import main_faces

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"gallery {folder} is not a folder (one sub-folder per named person)")
    photos = sorted(str(p) for p in root.glob("*/*") if p.is_file() and not p.name.startswith("."))
    if not photos:
        raise ValueError(f"gallery {folder} has no photos in person sub-folders")
    faces = main_faces(photos, embed_settings, weights, run)
    found = faces[faces["embedding"].notna()]
    gallery = Gallery(np.stack(found["embedding"].to_numpy()).astype(np.float32),
                      found["path"].map(lambda p: Path(p).parent.name).to_numpy(), faces["model"].iloc[0],
                      found["path"].tolist())
    return gallery, faces[faces["embedding"].isna()][["path", "status", "error"]]


def gallery_from_run(out: str | os.PathLike) -> Gallery:
    """The faces of the people named in a run (people.name), named so."""
    root = Path(out)
    people = pd.read_parquet(root / "people", columns=["person_id", "name"]).dropna(subset=["name"])
    if people.empty:
        raise ValueError(f"no person of the run {out} has a name yet")
    assigned = pd.read_parquet(root / "assignments", columns=["face_id", "person_id"]).merge(people, on="person_id")
    faces = pd.read_parquet(root / "faces", columns=["face_id", "embedding", "model"]).merge(assigned, on="face_id")
    return Gallery(np.stack(faces["embedding"].to_numpy()).astype(np.float32), faces["name"].to_numpy(),
                   faces["model"].iloc[0])


def _nearest(gallery: np.ndarray, X: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to the nearest gallery row, for each row of X (unit vectors)."""
    index, distance = np.empty(len(X), dtype=np.int64), np.empty(len(X), dtype=np.float32)
    for start in range(0, len(X), chunk):
        similarity = X[start:start + chunk] @ gallery.T
        best = similarity.argmax(axis=1)
        index[start:start + chunk] = best
        cosine = similarity[np.arange(len(best)), best]
        distance[start:start + chunk] = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * cosine))
    return index, distance


class NearestPersonIdentifier:
    """Nearest enrolled face within max_distance, else "unknown" (max_distance None: the
    calibration's open-set distance at `far`). probability_: the model's verification
    probability that the face and its nearest enrolled face are one person, at even odds."""

    def __init__(self, max_distance: float | None = None, calibration=None, far: float = 0.01):
        self.max_distance = max_distance
        self.calibration = calibration
        self.far = far

    def fit(self, embeddings: np.ndarray, names) -> "NearestPersonIdentifier":
        self.embeddings_ = np.asarray(embeddings, dtype=np.float32)
        self.names_ = np.asarray(names, dtype=object)
        if self.max_distance is None:
            if self.calibration is None:
                raise ValueError("give max_distance or a calibration with open-set distances")
            self.max_distance = self.calibration.identification_distance(self.far)
        return self

    def scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nearest name, score) for each face; higher score = more confident (-distance)."""
        index, distance = _nearest(self.embeddings_, np.asarray(X, dtype=np.float32))
        return self.names_[index], -distance

    def predict(self, X: np.ndarray) -> np.ndarray:
        names, score = self.scores(X)
        self.distance_ = -score
        self.probability_ = (self.calibration.predict_proba(self.distance_) if self.calibration is not None
                             else np.full(len(score), np.nan))
        return np.where(self.distance_ <= self.max_distance, names, UNKNOWN)


class SvmIdentifier:
    """A linear SVM over the enrolled faces (FaceNet's classifier example) with probabilities by
    sigmoid calibration on held-out folds; "unknown" when the best probability is under
    min_probability. C is large because unit vectors of different people are close in absolute
    terms: at scikit-learn's default C=1 the margins vanish and every probability is ~1/people."""

    def __init__(self, min_probability: float = 0.5, C: float = 100.0):
        self.min_probability = min_probability
        self.C = C

    def fit(self, embeddings: np.ndarray, names) -> "SvmIdentifier":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import LinearSVC

        names = np.asarray(names, dtype=object)
        counts = pd.Series(names).value_counts()
        if len(counts) < 2 or counts.min() < 2:
            raise ValueError("the SVM needs two or more photos of each of at least two people; "
                             "use the nearest-neighbour identifier for one-shot galleries")
        svm = LinearSVC(C=self.C, max_iter=20000)
        self.model_ = CalibratedClassifierCV(svm, method="sigmoid", cv=int(min(5, counts.min())),
                                             ensemble=False).fit(embeddings, names)
        return self

    def scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = self.model_.predict_proba(np.asarray(X, dtype=np.float32))
        best = probabilities.argmax(axis=1)
        return self.model_.classes_[best], probabilities[np.arange(len(best)), best]

    def predict(self, X: np.ndarray) -> np.ndarray:
        names, probability = self.scores(X)
        self.probability_ = probability
        return np.where(probability >= self.min_probability, names, UNKNOWN)


def identifier_for(method: str, calibration, max_distance: float | None = None, min_probability: float = 0.5,
                   far: float = 0.01):
    """The identifier a command asked for."""
    if method == "svm":
        return SvmIdentifier(min_probability=min_probability)
    return NearestPersonIdentifier(max_distance, calibration, far)


def open_set_rates(identifier, known_X, known_names, stranger_X, fars=(0.01, 0.001), stranger_split=None) -> dict:
    """Detection-and-identification rate (DIR: a probe of an enrolled person is named correctly
    and accepted) at the score thresholds where a share `far` of strangers is accepted.

    stranger_split: boolean mask over strangers; thresholds are chosen on the True half and the
    false-accept rate is also measured on the False half, to show it holds on strangers not used
    to choose it."""
    names, known_score = identifier.scores(known_X)
    correct = names == np.asarray(known_names, dtype=object)
    _, stranger_score = identifier.scores(stranger_X)
    choose = np.ones(len(stranger_score), bool) if stranger_split is None else np.asarray(stranger_split)
    rates = {"rank1": float(correct.mean()), "probes": int(len(known_X)), "strangers": int(len(stranger_X)),
             "at": []}
    for far in fars:
        # accept score > threshold: the threshold is the (1 - far) quantile of the strangers' scores
        threshold = float(np.quantile(stranger_score[choose], 1 - far, method="higher"))
        row = {"far_target": far, "threshold": threshold,
               "dir": float((correct & (known_score > threshold)).mean()),
               "far": float((stranger_score[choose] > threshold).mean())}
        if stranger_split is not None:
            row["far_held_out"] = float((stranger_score[~choose] > threshold).mean())
        rates["at"].append(row)
    # and where the identifier itself accepts (its max_distance or min_probability)
    own = -identifier.max_distance if hasattr(identifier, "max_distance") else identifier.min_probability
    rates["own_threshold"] = {"threshold": float(own), "dir": float((correct & (known_score >= own)).mean()),
                              "far": float((stranger_score >= own).mean())}
    return rates


def evaluate_identification(faces: pd.DataFrame, calibration, shots=(2, 5), seed: int = 0) -> dict:
    """Open-set identification on faces with a known `person` (one embedding per row).

    People with at least two photos are split at random (seed) into enrolled and never-enrolled
    halves; every photo of a never-enrolled person, and of every person seen once, is a stranger.
    - one-shot: each enrolled person enrols one photo, their other photos are the probes
      (nearest neighbour only: an SVM cannot be trained on one photo per person);
    - k-shot for each k in `shots`: enrolled people with more than k photos enrol k of them;
      nearest neighbour and SVM side by side on the same probes and strangers.
    Thresholds are chosen on half of the strangers (by person) and checked on the other half."""
    rng = np.random.default_rng(seed)
    faces = faces.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # which photo enrols: random
    counts = faces["person"].value_counts()
    several = np.array(sorted(counts[counts >= 2].index))
    enrolled = set(rng.choice(several, size=len(several) // 2, replace=False))
    strangers = faces[~faces["person"].isin(enrolled)]
    stranger_people = np.array(sorted(strangers["person"].unique()))
    choosing = set(rng.choice(stranger_people, size=len(stranger_people) // 2, replace=False))
    stranger_X = np.stack(strangers["embedding"].to_numpy())
    split = strangers["person"].isin(choosing).to_numpy()
    mine = faces[faces["person"].isin(enrolled)]
    order = mine.groupby("person").cumcount()
    report = {"people_enrolled": len(enrolled), "stranger_people": len(stranger_people),
              "stranger_photos": len(strangers)}

    def protocol(k: int, identifiers: dict) -> dict:
        people = [p for p in enrolled if counts[p] > k]
        pool = mine[mine["person"].isin(people)]
        in_gallery = order.loc[pool.index] < k
        gallery, probes = pool[in_gallery], pool[~in_gallery]
        result = {"shots": k, "people": int(len(people)), "probes": int(len(probes))}
        for name, identifier in identifiers.items():
            identifier.fit(np.stack(gallery["embedding"].to_numpy()), gallery["person"].to_numpy())
            result[name] = open_set_rates(identifier, np.stack(probes["embedding"].to_numpy()),
                                          probes["person"].to_numpy(), stranger_X, stranger_split=split)
        return result

    # nearest's own acceptance here: the verification threshold, to show what it would cost
    nearest = lambda: NearestPersonIdentifier(calibration.threshold_, calibration)  # noqa: E731
    report["protocols"] = [protocol(1, {"nearest": nearest()})]
    report["protocols"] += [protocol(k, {"nearest": nearest(), "svm": SvmIdentifier()}) for k in shots]
    one_shot = report["protocols"][0]
    report["open_set"] = {f"{row['far_target']:g}": -row["threshold"] for row in one_shot["nearest"]["at"]}
    report["open_set"]["measured_on"] = (f"{one_shot['people']} people enrolled with one photo each, "
                                         f"{report['stranger_photos']} stranger photos")
    return report


def format_identification_report(report: dict) -> str:
    lines = [f"{report['people_enrolled']} people enrolled; strangers: {report['stranger_photos']} photos of "
             f"{report['stranger_people']} people never enrolled (thresholds chosen on half of them, "
             f"checked on the other half)"]
    for protocol in report["protocols"]:
        lines.append(f"{protocol['shots']} photo(s) enrolled per person: {protocol['people']} people, "
                     f"{protocol['probes']} probes")
        for name in ("nearest", "svm"):
            if name not in protocol:
                continue
            rates = protocol[name]
            accept = (lambda t: f"distance < {-t:.3f}") if name == "nearest" else (lambda t: f"p > {t:.3f}")
            cells = "; ".join(f"DIR@FAR={row['far_target']:g} {row['dir']:.4f} ({accept(row['threshold'])}, "
                              f"FAR on held-out strangers {row['far_held_out']:.4f})" for row in rates["at"])
            own = rates["own_threshold"]
            where = ("the verification threshold" if name == "nearest" else "p >= 0.5") + \
                f" ({-own['threshold']:.3f})" * (name == "nearest")
            lines.append(f"  {name:8s} rank-1 {rates['rank1']:.4f}; {cells}; at {where}: "
                         f"DIR {own['dir']:.4f}, FAR {own['far']:.4f}")
    return "\n".join(lines)
