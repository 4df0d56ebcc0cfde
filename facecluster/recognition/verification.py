"""Verification: is this the same person? A distance, a threshold and a calibrated probability.

A distance alone means nothing to a user; "0.93 probability of the same person" does, if it is
true 93 times in 100. The probability comes from logistic regression on the distance (Platt
scaling), fitted on labelled pairs. Logistic rather than isotonic because:
- the same-person probability must fall as the distance grows: logistic is monotone by its form,
  isotonic only piecewise-flat, with steps where the pairs happen to lie;
- two parameters fitted on a few thousand pairs do not overfit; isotonic returns exactly 0 or 1
  beyond the last pair it saw, a certainty no model has. Both are measured side by side by
  `facecluster evaluate pairs` (expected calibration error on held-out folds).

A probability depends on how common same-person pairs are. LFW's pairs are about half same
person; two faces drawn at random from an archive almost never are. The calibration keeps the
share it was fitted on and answers for any prior: posterior odds = likelihood ratio x prior odds.
By default answers are given at even odds (prior 0.5), the question "these two, which is it?".

Every calibration belongs to one model id: distances of different embedders are not comparable.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

SHIPPED = Path(__file__).resolve().parent / "calibration"
CALIBRATION_DIR_VARIABLE = "FACECLUSTER_CALIBRATION_DIR"


class CalibrationMissing(LookupError):
    pass


# ---------------------------------------------------------------------------------------- pairs

def read_pairs(path: str | os.PathLike, images: str | os.PathLike) -> list[tuple[str, str, bool]]:
    """LFW's pairs format: `name i j` (same person) or `name1 i name2 j` (different), one pair a
    line, tabs or spaces; an optional header line of numbers (LFW's `10 300`) is skipped.
    Images are IMAGES/Name/Name_0001.jpg."""
    def image(name: str, number: str) -> str:
        return str(Path(images) / name / f"{name}_{int(number):04d}.jpg")

    pairs = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or (number == 1 and all(p.isdigit() for p in parts)):
            continue
        try:
            if len(parts) == 3:
                pairs.append((image(parts[0], parts[1]), image(parts[0], parts[2]), True))
            elif len(parts) == 4:
                pairs.append((image(parts[0], parts[1]), image(parts[2], parts[3]), False))
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}:{number}: expected 'name i j' or 'name1 i name2 j', got {line!r}") from None
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


def labelled_pair_distances(embeddings: np.ndarray, people, max_different: int = 20000, seed: int = 0
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Distances of every same-person pair and of up to max_different random different-person
    pairs among labelled faces: (distances, same)."""
    people = np.asarray(people)
    X = np.asarray(embeddings, dtype=np.float32)
    i, j = np.triu_indices(len(X), k=1)
    same = people[i] == people[j]
    rng = np.random.default_rng(seed)
    different = np.flatnonzero(~same)
    different = rng.choice(different, size=min(max_different, len(different)), replace=False)
    keep = np.concatenate([np.flatnonzero(same), different])
    distances = np.linalg.norm(X[i[keep]] - X[j[keep]], axis=1)
    return distances, same[keep]


# ---------------------------------------------------------------------------------- calibration

def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@dataclass
class DistanceCalibration:
    """Distance -> same-person probability for one model: fit(distances, same), predict_proba.

    threshold_: the distance with the best accuracy on the fitted pairs (LFW's protocol); a pair
    closer than it is called the same person.
    """
    model_id: str
    slope_: float = float("nan")       # log-odds per unit of distance (negative)
    intercept_: float = float("nan")
    threshold_: float = float("nan")
    same_share_: float = float("nan")  # share of same-person pairs it was fitted on
    n_pairs_: int = 0
    source: str = ""
    measured: dict = field(default_factory=dict)
    # open-set identification: the nearest-face distance under which only a share `far` of
    # strangers is named, by far ("0.01", "0.001"), with the gallery it was measured on
    # (facecluster evaluate identify --save-calibration)
    open_set: dict = field(default_factory=dict)

    def identification_distance(self, far: float) -> float:
        key = f"{far:g}"
        if key not in self.open_set:
            raise CalibrationMissing(
                f"no open-set threshold at FAR {key} for {self.model_id} (have: {', '.join(self.open_set) or 'none'}); "
                f"measure it with `facecluster evaluate identify --save-calibration DIR`, or pass --max-distance")
        return float(self.open_set[key])

    def fit(self, distances, same) -> "DistanceCalibration":
        from sklearn.linear_model import LogisticRegression

        d, y = np.asarray(distances, dtype=np.float64), np.asarray(same, dtype=bool)
        if y.all() or not y.any():
            raise ValueError("calibration needs both same-person and different-person pairs")
        model = LogisticRegression(C=1e6).fit(d[:, None], y)  # effectively unregularised
        self.slope_, self.intercept_ = float(model.coef_[0, 0]), float(model.intercept_[0])
        self.threshold_ = best_threshold(d, y)
        self.same_share_, self.n_pairs_ = float(y.mean()), int(len(y))
        return self

    def predict_proba(self, distances, prior: float | None = 0.5) -> np.ndarray:
        """P(same person | distance) when a share `prior` of pairs is the same person
        (None: the share it was fitted on)."""
        log_odds = self.intercept_ + self.slope_ * np.asarray(distances, dtype=np.float64)
        if prior is not None:
            if not 0 < prior < 1:
                raise ValueError(f"prior must be in (0, 1), got {prior}")
            log_odds = log_odds - _logit(self.same_share_) + _logit(prior)
        return 1 / (1 + np.exp(-log_odds))

    def is_same(self, distances) -> np.ndarray:
        return np.asarray(distances) <= self.threshold_

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / f"{self.model_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_id: str, folder: str | os.PathLike | None = None) -> "DistanceCalibration":
        """The calibration of model_id: from `folder`, else $FACECLUSTER_CALIBRATION_DIR, else
        the ones measured for this release (facecluster/recognition/calibration/)."""
        folders = [Path(f) for f in (folder, os.environ.get(CALIBRATION_DIR_VARIABLE)) if f] + [SHIPPED]
        for candidate in folders:
            path = candidate / f"{model_id}.json"
            if path.is_file():
                saved = json.loads(path.read_text())
                saved["open_set"] = {k: v for k, v in saved.get("open_set", {}).items()}
                return cls(**saved)
        raise CalibrationMissing(
            f"no calibration for model {model_id!r} in {', '.join(map(str, folders))}; measure one with "
            f"`facecluster evaluate pairs PAIRS --images ROOT --save-calibration DIR` and set "
            f"{CALIBRATION_DIR_VARIABLE}=DIR")


def calibration_for(embed_settings: dict) -> DistanceCalibration:
    """The calibration of the embedder these settings select; a trained head's, or fine-tuned
    weights', sits beside the file."""
    from facecluster.udfs.embedders import model_id

    trained = embed_settings.get("head") or (embed_settings.get("facenet_weights")
                                            if embed_settings.get("embedder") == "facenet" else None)
    return DistanceCalibration.load(model_id(embed_settings), Path(trained).parent if trained else None)


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold (midway between two observed distances) with the best accuracy."""
    order = np.argsort(distances, kind="stable")
    d, y = distances[order], same[order]
    # accuracy when the first k pairs (k = 0..n) are called same
    correct = np.concatenate([[0], np.cumsum(np.where(y, 1, -1))]) + (~y).sum()
    k = int(np.argmax(correct))
    if k == 0:
        return float(d[0] - 1e-6)
    if k == len(d):
        return float(d[-1] + 1e-6)
    return float((d[k - 1] + d[k]) / 2)


# ------------------------------------------------------------------------------------- measures

def folds_of(n: int, folds: int = 10) -> np.ndarray:
    """LFW's protocol: consecutive blocks of the pairs file (its folds are blocks)."""
    return np.arange(n) * folds // n


def ten_fold(distances, same, folds: int = 10) -> dict:
    """Accuracy with the threshold chosen on the other folds, and held-out probabilities from a
    calibration fitted on the other folds (logistic and, for comparison, isotonic)."""
    from sklearn.isotonic import IsotonicRegression

    d, y = np.asarray(distances, dtype=np.float64), np.asarray(same, dtype=bool)
    fold = folds_of(len(d), folds)
    accuracies, logistic, isotonic = [], np.empty(len(d)), np.empty(len(d))
    for k in range(folds):
        test, train = fold == k, fold != k
        threshold = best_threshold(d[train], y[train])
        accuracies.append(float(((d[test] <= threshold) == y[test]).mean()))
        logistic[test] = DistanceCalibration("fold").fit(d[train], y[train]).predict_proba(d[test], prior=None)
        isotonic[test] = IsotonicRegression(increasing=False, out_of_bounds="clip", y_min=0, y_max=1).fit(
            d[train], y[train]).predict(d[test])
    return {"accuracies": accuracies, "held_out_logistic": logistic, "held_out_isotonic": isotonic}


def val_at_far(distances, same, far: float = 1e-3) -> dict:
    """Validation rate (same pairs accepted) at the largest threshold whose false-accept rate
    (different pairs accepted) is at most `far`."""
    d, y = np.asarray(distances), np.asarray(same, dtype=bool)
    different = np.sort(d[~y])
    allowed = int(math.floor(far * len(different)))  # false accepts allowed
    threshold = different[allowed] if allowed < len(different) else np.inf  # accept d < threshold
    return {"far_target": far, "threshold": float(threshold), "val": float((d[y] < threshold).mean()),
            "far": float((d[~y] < threshold).mean()), "different_pairs": int(len(different))}


def expected_calibration_error(probabilities, same, bins: int = 10) -> float:
    """Mean |observed share - mean predicted| over equal-width probability bins, weighted by size."""
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(same, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return float(error)


def reliability_plot(curves: dict[str, np.ndarray], same, path: str | os.PathLike, title: str, bins: int = 10):
    """Observed same-person share against predicted probability, per bin, for each curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(same, dtype=float)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4))
    left.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, p in curves.items():
        which = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
        used = [b for b in range(bins) if (which == b).any()]
        left.plot([p[which == b].mean() for b in used], [y[which == b].mean() for b in used], marker="o",
                  label=f"{name} (ECE {expected_calibration_error(p, y, bins):.3f})")
        right.hist(p, bins=bins, range=(0, 1), histtype="step", label=name)
    left.set(xlabel="predicted probability of the same person", ylabel="observed share of same-person pairs",
             xlim=(0, 1), ylim=(0, 1))
    left.legend(loc="upper left", fontsize=8)
    right.set(xlabel="predicted probability", ylabel="pairs", yscale="log")
    right.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def evaluate_pair_distances(distances, same, model_id: str, plot: str | os.PathLike | None = None) -> dict:
    """The LFW verification report: 10-fold accuracy, VAL@FAR=1e-3, AUC, calibration error."""
    from sklearn.metrics import roc_auc_score

    d, y = np.asarray(distances, dtype=np.float64), np.asarray(same, dtype=bool)
    folds = ten_fold(d, y)
    calibration = DistanceCalibration(model_id).fit(d, y)
    report = {
        "model": model_id, "pairs": int(len(d)), "same_pairs": int(y.sum()),
        "accuracy": float(np.mean(folds["accuracies"])), "accuracy_std": float(np.std(folds["accuracies"])),
        "val_at_far_1e-3": val_at_far(d, y, 1e-3),
        "auc": float(roc_auc_score(y, -d)),
        "ece_logistic": expected_calibration_error(folds["held_out_logistic"], y),
        "ece_isotonic": expected_calibration_error(folds["held_out_isotonic"], y),
        "threshold": calibration.threshold_,
        "probability_at_threshold": float(calibration.predict_proba([calibration.threshold_])[0]),
        "same_distance_median": float(np.median(d[y])), "different_distance_median": float(np.median(d[~y])),
    }
    if plot is not None:
        reliability_plot({"logistic": folds["held_out_logistic"], "isotonic": folds["held_out_isotonic"]}, y,
                         plot, f"{model_id}: held-out calibration on {len(d)} pairs (10 folds)")
        report["plot"] = str(plot)
    calibration.measured = {k: report[k] for k in ("accuracy", "accuracy_std", "auc", "ece_logistic")}
    report["calibration"] = calibration
    return report


def format_pairs_report(report: dict) -> str:
    val = report["val_at_far_1e-3"]
    lines = [
        f"model {report['model']}: {report['pairs']} pairs ({report['same_pairs']} same person)",
        f"  accuracy (10-fold)  {100 * report['accuracy']:.2f}% ± {100 * report['accuracy_std']:.2f}",
        f"  VAL@FAR=1e-3        {val['val']:.4f} (FAR {val['far']:.4f}, threshold {val['threshold']:.3f}, "
        f"{val['different_pairs']} different pairs)",
        f"  AUC                 {report['auc']:.5f}",
        f"  calibration error   logistic {report['ece_logistic']:.4f}, isotonic {report['ece_isotonic']:.4f} "
        f"(ECE, 10 bins, held-out folds)",
        f"  threshold           {report['threshold']:.4f} (probability there at even odds "
        f"{report['probability_at_threshold']:.2f})",
        f"  median distance     same {report['same_distance_median']:.3f}, different "
        f"{report['different_distance_median']:.3f}",
    ]
    if "plot" in report:
        lines.append(f"  reliability plot    {report['plot']}")
    if report.get("missing"):
        lines.append(f"  pairs skipped       {report['missing']} (no face found in one of the photos)")
    return "\n".join(lines)
