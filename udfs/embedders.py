"""Choosing the embedder and the device, and keeping the models once per Python worker."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from facecluster.udfs import dlib_resnet, facenet

DLIB_EMBEDDERS = {"dlib": dlib_resnet.FOUR_VIEWS_MODEL_ID, "dlib-one-view": dlib_resnet.MODEL_ID}
MODEL_IDS = {"facenet": facenet.MODEL_ID, **DLIB_EMBEDDERS}


def model_id(embed_settings: dict) -> str:
    """The id on the faces this embedder setting makes: the network's, or its trained head's."""
    if embed_settings.get("head"):
        from facecluster.udfs.head import load_head

        return load_head(embed_settings["head"])[1]["model_id"]
    if embed_settings["embedder"] == "facenet":
        return facenet.weights_model_id(facenet.find_weights(embed_settings.get("facenet_weights")))
    return MODEL_IDS[embed_settings["embedder"]]


def choose_embedder(name: str, facenet_weights: str | None, run_models=()) -> str:
    """'auto' -> the dlib embedder that embedded the run's faces (run_models) if one did, so that a
    run goes on with the model it has; else 'facenet' when its weights are already on disk, else
    'dlib'. Never touches the network."""
    if name != "auto":
        return name
    for embedder, model in DLIB_EMBEDDERS.items():
        if model in run_models:
            return embedder
    return "facenet" if facenet.find_weights(facenet_weights) else "dlib"


def resolve_embedder(embed_settings: dict, run_models=()) -> tuple[dict, str | None]:
    """Settings with embedder 'auto' resolved, and the FaceNet weights path; runs on the driver
    before any work so that missing weights stop the job at once (udfs.facenet names the remedies).
    run_models: the models of the faces the output root holds already."""
    name = choose_embedder(embed_settings["embedder"], embed_settings["facenet_weights"], run_models)
    weights = str(facenet.resolve_weights(embed_settings["facenet_weights"])) if name == "facenet" else None
    return {**embed_settings, "embedder": name}, weights


def task_cpus() -> int:
    """CPUs Spark gave the running task (spark.task.cpus); 1 outside a task."""
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        if context is not None:
            return max(1, int(context.cpus()))
    except Exception:  # noqa: BLE001 - no Spark, or an old Spark: fall back to one CPU
        pass
    return 1


def task_gpu() -> str | None:
    """The GPU address Spark assigned to the running task (spark.task.resource.gpu.amount)."""
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        if context is not None:
            gpus = context.resources().get("gpu")
            if gpus is not None and gpus.addresses:
                return gpus.addresses[0]
    except Exception:  # noqa: BLE001
        pass
    return None


def choose_device(setting: str) -> torch.device:
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("embed.device = cuda but this worker has no usable CUDA GPU")
        address = task_gpu()
        return torch.device(f"cuda:{address}" if address is not None else "cuda")
    if not torch.cuda.is_available():
        return torch.device("cpu")
    # Spark's GPU scheduling names the task's GPU; local mode has no such scheduling,
    # and there the process's default GPU is the one to use.
    address = task_gpu()
    return torch.device(f"cuda:{address}" if address is not None else "cuda")


def set_threads(setting) -> int:
    """Torch threads from the task's CPU share: oversubscribed OpenMP threads are far slower
    than one (measured: 8x on 2 cores with the other core busy)."""
    threads = task_cpus() if setting == "auto" else int(setting)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def _local_copy(weights_path: str | None) -> Path | None:
    """The weights on this executor: the driver's path in local mode, else the copy Spark
    shipped with SparkContext.addFile."""
    if weights_path is None:
        return None
    if os.path.isfile(weights_path):
        return Path(weights_path)
    from pyspark import SparkFiles

    return Path(SparkFiles.get(os.path.basename(weights_path)))


_WORKER_MODELS: dict[tuple, tuple] = {}


def worker_models(embed_settings: dict, weights_path: str | None):
    """(FaceDetector, embedder) for this Python worker, loaded on first use and then reused
    by every batch and task the worker runs (spark.python.worker.reuse)."""
    from facecluster.udfs.detector import FaceDetector

    device = choose_device(embed_settings["device"])
    key = (embed_settings["embedder"], weights_path, embed_settings["head"], str(device), embed_settings["mixed_precision"],
           embed_settings["max_canvas"],
           embed_settings["min_face_size"], tuple(embed_settings["detection_thresholds"]),
           embed_settings["min_det_score"])
    if key not in _WORKER_MODELS:
        detector = FaceDetector(device, embed_settings["max_canvas"], embed_settings["min_face_size"],
                                embed_settings["detection_thresholds"], embed_settings["min_det_score"])
        if embed_settings["embedder"] in DLIB_EMBEDDERS:
            embedder = dlib_resnet.DlibEmbedder(device, four_views=embed_settings["embedder"] == "dlib")
        else:
            mixed = embed_settings["mixed_precision"]
            embedder = facenet.FacenetEmbedder(_local_copy(weights_path), device,
                                               mixed_precision=(device.type == "cuda") if mixed == "auto" else mixed)
        if embed_settings["head"]:
            from facecluster.udfs.head import HeadEmbedder

            embedder = HeadEmbedder(embedder, _local_copy(embed_settings["head"]))
        _WORKER_MODELS.clear()  # one set of models per worker: a changed setting replaces them
        _WORKER_MODELS[key] = (detector, embedder)
    return _WORKER_MODELS[key]
