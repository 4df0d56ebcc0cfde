"""Settings: the package's defaults, a user's file over them, command-line overrides over both,
checked before any work starts.

A wrong setting found after an hour of embedding costs the user that hour, so every key is
checked up front against the table below: unknown keys (with the nearest known one), wrong
types and out-of-range values stop the job with a message that names the setting and says why.
A user's file holds only the keys it changes; under spark.conf, a property set to null there
drops the default's.
"""
from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from facecluster.core.errors import UserError

DEFAULTS = Path(__file__).resolve().parent / "defaults.yaml"


class SettingsError(UserError, ValueError):
    """A setting is unknown or has a value the job cannot use."""


@dataclass(frozen=True)
class Rule:
    check: Callable[[Any], Any]  # returns the normalised value or raises ValueError with the reason
    help: str


def _choice(*options):
    def check(v):
        if v not in options:
            raise ValueError(f"must be one of {', '.join(map(str, options))}")
        return v
    return check


def _int_at_least(low):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("must be a whole number")
        if v < low:
            raise ValueError(f"must be at least {low}")
        return v
    return check


def _number_between(low, high):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("must be a number")
        if not low <= v <= high:
            raise ValueError(f"must be between {low} and {high}")
        return float(v)
    return check


def _optional_number_between(low, high):
    def check(v):
        return None if v is None else _number_between(low, high)(v)
    return check


def _auto_or(check_value):
    def check(v):
        return "auto" if v == "auto" else check_value(v)
    return check


def _boolean(v):
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _text(v):
    if not isinstance(v, str) or not v:
        raise ValueError("must be a non-empty text")
    return v


def _optional_file(v):
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError("must be a file path or null")
    path = os.path.expanduser(v)
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    return path


def _thresholds(v):
    if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) and 0 < x < 1 for x in v)):
        raise ValueError("must be three numbers between 0 and 1, one per MTCNN stage (P-, R-, O-net)")
    return [float(x) for x in v]


def _spark_conf(v):
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError("must be a mapping of Spark properties")
    for key, value in v.items():
        if not str(key).startswith("spark."):
            raise ValueError(f"{key!r} is not a Spark property (they start with 'spark.')")
        if isinstance(value, (dict, list)):
            raise ValueError(f"{key}: a Spark property takes a single value")
        if value is None or str(value).strip() == "":
            raise ValueError(f"{key} has no value (remove it to keep Spark's default)")
    return {str(k): str(val).lower() if isinstance(val, bool) else str(val) for k, val in v.items()}


RULES: dict[str, Rule] = {
    "spark.master": Rule(_text, "Spark master URL: local[*], yarn, k8s://..., spark://host:port"),
    "spark.app_name": Rule(_text, "name shown in the Spark UI"),
    "spark.conf": Rule(_spark_conf, "Spark properties passed as they are"),
    "spark.log_level": Rule(_choice("error", "warn", "info"), "how much of Spark's own log is shown "
                            "(--verbose: warn)"),
    "embed.embedder": Rule(_choice("auto", "facenet", "dlib", "dlib-one-view"),
                           "which network embeds the faces: dlib (dlib's ResNet on four views of each face: the "
                           "chips of dlib's own face box and of MTCNN's box, each with its mirror image), "
                           "dlib-one-view (one view of MTCNN's box: a quarter of the network's work, no HOG "
                           "search), facenet; auto = the dlib embedder the output's faces already have, else "
                           "facenet when its weights are on disk, else dlib"),
    "embed.facenet_weights": Rule(_optional_file, "path to the FaceNet VGGFace2 weights"),
    "embed.device": Rule(_choice("auto", "cpu", "cuda"), "where the models run"),
    "embed.mixed_precision": Rule(_auto_or(_boolean), "FaceNet in fp16 on GPU if the first batch's embeddings stay "
                                  "within 1e-2 cosine of fp32; auto = on GPU only"),
    "embed.torch_threads": Rule(_auto_or(_int_at_least(1)), "torch threads per Spark task"),
    "embed.max_canvas": Rule(_int_at_least(160), "longest side of the detection canvas, pixels"),
    "embed.min_face_size": Rule(_int_at_least(10), "smallest face MTCNN looks for, canvas pixels"),
    "embed.detection_thresholds": Rule(_thresholds, "MTCNN stage thresholds"),
    "embed.min_det_score": Rule(_number_between(0.0, 1.0), "faces scored below are dropped"),
    "embed.faces_per_batch": Rule(_int_at_least(1), "faces per embedder batch"),
    "embed.thumb_size": Rule(_int_at_least(16), "longest side of the face thumbnail"),
    "embed.max_pixels": Rule(_int_at_least(1_000_000), "photos with more pixels are refused"),
    "embed.photos_per_round": Rule(_auto_or(_int_at_least(1)),
                                   "photos embedded and committed together; a killed run redoes at most one round"),
    "embed.head": Rule(_optional_file, "a triplet-trained head (facecluster train) applied after the embedder; "
                       "its faces get the head's own model id"),
    "train.margin": Rule(_number_between(0.0, 4.0), "triplet-loss margin alpha on squared distances"),
    "train.mining": Rule(_choice("semi_hard", "batch_hard"), "which triplets of a batch enter the loss"),
    "train.people_per_batch": Rule(_int_at_least(2), "P: people in a batch"),
    "train.faces_per_person": Rule(_int_at_least(2), "K: faces of each person in a batch"),
    "train.steps": Rule(_int_at_least(1), "optimiser steps"),
    "train.learning_rate": Rule(_number_between(1e-7, 1.0), "Adam learning rate"),
    "train.finetune_learning_rate": Rule(_number_between(1e-8, 1.0), "Adam learning rate when fine-tuning FaceNet"),
    "train.finetune_layers": Rule(_choice("last", "all"), "fine-tuning FaceNet: its last block and embedding layer, "
                                  "or every layer"),
    "cluster.mode": Rule(_choice("incremental", "full"), "incremental: the last run's people keep their faces, "
                         "new faces join them or make new people; full: cluster every face again (labels kept)"),
    "cluster.algorithm": Rule(_choice("auto", "exact", "knn", "distributed"), "exact: the hdbscan library; knn: "
                              "HDBSCAN on a k-nearest-neighbour graph (millions of faces); distributed: cell by cell "
                              "on the executors; auto: exact up to 20,000 faces, distributed from "
                              "cluster.distributed_from, knn between"),
    "cluster.distributed_from": Rule(_int_at_least(1), "faces from which algorithm auto clusters on the executors"),
    "cluster.faces_per_cell": Rule(_int_at_least(100), "faces one executor task clusters at once (algorithm "
                                   "distributed; at most twice this, about 9 KB of the task's memory a "
                                   "face); each face is stored in 3 cells on average"),
    "cluster.device": Rule(_choice("auto", "cpu", "cuda"), "where the kNN graph is computed (algorithm knn): "
                           "a GPU searches exactly at any size; auto = a GPU when the driver has one"),
    "cluster.min_face_px": Rule(_int_at_least(0), "faces whose short side is smaller (original pixels) stay in "
                                "`faces` but are not clustered: too small to say who they are"),
    "cluster.min_face_score": Rule(_number_between(0.0, 1.0), "faces the detector scored lower (blurred, partly "
                                   "hidden) stay in `faces` but are not clustered: too unclear to say who they are"),
    "cluster.min_clarity": Rule(_auto_or(_optional_number_between(0.0, 2.0)),
                                "faces closer than this to where the network puts the faces it cannot read stay in "
                                "`faces` but are not clustered; auto = the embedder's measured value, null = off"),
    "cluster.min_cluster_size": Rule(_int_at_least(2), "fewest faces that make a person"),
    "cluster.min_samples": Rule(_int_at_least(1), "HDBSCAN min_samples (density smoothing)"),
    "cluster.cluster_selection_epsilon": Rule(_auto_or(_number_between(0.0, 2.0)),
                                              "HDBSCAN epsilon, Euclidean on unit vectors: clusters parting below it "
                                              "stay one person; auto = the embedder's measured value"),
    "cluster.cluster_selection_method": Rule(_choice("eom", "leaf"), "HDBSCAN cluster selection"),
    "cluster.split_distance": Rule(_auto_or(_optional_number_between(0.0, 2.0)),
                                   "people whose faces form groups further apart (average linkage) are split; "
                                   "auto = the embedder's measured value, null = off"),
    "cluster.duplicate_distance": Rule(_auto_or(_optional_number_between(0.0, 1.0)),
                                       "faces closer than this are clustered as one (bursts, resized and re-saved "
                                       "copies of a photo) and all take its person; auto = the embedder's measured "
                                       "value, null = off"),
    "cluster.attach_distance": Rule(_auto_or(_optional_number_between(0.0, 2.0)),
                                    "a face left out of every person joins the person with at least 8 of its 10 "
                                    "nearest grouped faces this close; auto = the embedder's measured value, null = off"),
    "cluster.max_member_distance": Rule(_auto_or(_optional_number_between(0.0, 2.0)),
                                        "faces further from the rest of their person become noise; "
                                        "auto = the embedder's measured value, null = keep HDBSCAN's answer"),
}


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted != "spark.conf":
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _nest(flat: dict[str, Any]) -> dict:
    tree: dict = {}
    for dotted, value in flat.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def parse_override(text: str) -> tuple[str, Any]:
    """'embed.max_canvas=800' -> ('embed.max_canvas', 800); values are read as YAML."""
    if "=" not in text:
        raise SettingsError(f"override {text!r}: write it as key=value, e.g. embed.max_canvas=800")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SettingsError(f"setting {key}: cannot read value {raw!r}: {exc}") from None
    return key.strip(), value


def _hadoop_text(uri: str) -> str:
    """A small text file read through Hadoop's file systems (hdfs://, s3a://, abfss://, file:)."""
    from pyspark import SparkContext

    SparkContext._ensure_initialized()  # under spark-submit: its JVM; else one started for this
    jvm = SparkContext._jvm
    conf = jvm.org.apache.spark.deploy.SparkHadoopUtil.get().newConfiguration(jvm.org.apache.spark.SparkConf())
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(conf)
    if not fs.exists(path):
        raise SettingsError(f"config file {uri} does not exist")
    stream = fs.open(path)
    try:
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream)).decode("utf-8")
    finally:
        stream.close()


def _settings_text(path: str) -> str:
    """A settings file's text: a local file; a URI read through Hadoop (the driver of a YARN or
    Kubernetes cluster-mode job has no copy of the submitting machine's files); or a file shipped
    with spark-submit --files, named as it was given there or by its name alone."""
    local = os.path.expanduser(path)
    if os.path.isfile(local):
        return Path(local).read_text()
    if "://" in path or path.startswith(("file:", "hdfs:", "s3a:")):
        return _hadoop_text(path)
    name = os.path.basename(path)
    if os.path.isfile(name):  # YARN puts --files in the containers' working folder
        return Path(name).read_text()
    from facecluster.core.runtime import submitted_conf

    for shipped in (submitted_conf() or {}).get("spark.files", "").split(","):
        if shipped and shipped.rstrip("/").rsplit("/", 1)[-1] == name:
            return _hadoop_text(shipped)
    raise SettingsError(f"config file {path} does not exist")


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a settings file needs none, and nested aliases let a
    file of a few hundred bytes expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a settings file",
                                              event.start_mark)
        return super().compose_node(parent, index)


MAX_SETTINGS_BYTES = 1 << 20


def read_settings_file(path: str | os.PathLike) -> dict[str, Any]:
    """A settings file as {dotted key: value}."""
    text = _settings_text(str(path))
    if len(text) > MAX_SETTINGS_BYTES:
        raise SettingsError(f"config file {path} is {len(text):,} characters: a settings file is a few lines")
    try:
        tree = yaml.load(text, Loader=_NoAliasLoader) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise SettingsError(f"config file {path} must hold a mapping of settings")
    return _flatten(tree)


def _lay_over(flat: dict[str, Any], changes: dict[str, Any], source: str) -> dict[str, Any]:
    """flat with changes laid over it; spark.conf merged property by property (null drops one)."""
    flat = dict(flat)
    for key, value in changes.items():
        if key.startswith("spark.conf.") or (key == "spark.conf" and isinstance(value, dict)):
            properties = {key[len("spark.conf."):]: value} if key != "spark.conf" else value
            conf = dict(flat.get("spark.conf") or {})
            for name, setting in properties.items():
                if setting is None and source != "--set":  # on the command line, an empty value is a slip
                    conf.pop(name, None)
                else:
                    conf[name] = setting
            flat["spark.conf"] = conf
        else:
            _check_known(key, source)
            flat[key] = value
    return flat


def load_settings(config: str | os.PathLike | None = None, overrides: list[str] | None = None) -> dict:
    """The defaults, the config file's keys over them, then key=value overrides; all checked, a
    wrong value blamed on where it came from."""
    flat = read_settings_file(DEFAULTS)
    sources = dict.fromkeys(flat, "the defaults")
    for changes, source in ((read_settings_file(config) if config else {}, str(config)),
                            (dict(parse_override(text) for text in overrides or []), "--set")):
        flat = _lay_over(flat, changes, source)
        sources.update({("spark.conf" if key.startswith("spark.conf") else key): source for key in changes})
    return check_settings(flat, source=sources)


def _check_known(key: str, source: str) -> None:
    if key in RULES:
        return
    nearest = difflib.get_close_matches(key, RULES, n=1, cutoff=0.6)
    hint = f"; did you mean {nearest[0]}?" if nearest else f"; known settings: {', '.join(sorted(RULES))}"
    raise SettingsError(f"unknown setting {key} in {source}{hint}")


def check_settings(flat: dict[str, Any], source: str | dict[str, str] = "settings") -> dict:
    """source: where the settings came from, one for all or per key."""
    def where(key: str) -> str:
        return source.get(key, "settings") if isinstance(source, dict) else source

    for key in sorted(flat):
        _check_known(key, where(key))
    missing = sorted(set(RULES) - set(flat))
    if missing:
        raise SettingsError(f"setting {missing[0]} is missing from {where(missing[0])}")
    checked = {}
    for key, value in flat.items():
        try:
            checked[key] = RULES[key].check(value)
        except ValueError as exc:
            raise SettingsError(f"setting {key} = {value!r} in {where(key)}: {exc} ({RULES[key].help})") from None
    cluster_min = checked["cluster.min_cluster_size"]
    if checked["cluster.min_samples"] > cluster_min:
        raise SettingsError(
            f"setting cluster.min_samples = {checked['cluster.min_samples']} in {where('cluster.min_samples')}: "
            f"must not exceed cluster.min_cluster_size = {cluster_min}")
    return _nest(checked)


def with_changes(settings: dict, changes: dict[str, Any]) -> dict:
    """A copy of checked settings with {dotted key: value} changes, checked again."""
    flat = _flatten(copy.deepcopy(settings))
    flat.update(changes)
    return check_settings(flat)


def settings_reference() -> str:
    """Every setting as a Markdown table: key, default, what it does (from RULES and the defaults)."""
    defaults = read_settings_file(DEFAULTS)
    lines = ["| setting | default | what it does |", "|---|---|---|"]
    for key, rule in RULES.items():
        default = defaults.get(key)
        if key == "spark.conf":
            default = ", ".join(f"{k}={v}" for k, v in default.items())
        shown = "null" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
        lines.append(f"| `{key}` | `{shown}` | {rule.help} |")
    return "\n".join(lines) + "\n"

