"""The main face of a few photos, without Spark: for verify, identify and the pair evaluations.

The same executor code as the embed job (udfs.embed_photos) runs in this process, so a face is
found, cut and embedded exactly as in a run. When a finished run is given, photos it already
embedded (same bytes, same model) are taken from its `faces` table instead of embedded again.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from facecluster.core.catalogue import face_id
from facecluster.measuring.evaluation import central_faces


def photo_rows(paths: list[str]) -> pd.DataFrame:
    """photo_id (sha256), album (the folder), path and content of each photo file; a file that
    cannot be read stops with its path and why."""
    rows = []
    for path in paths:
        if Path(path).exists() and not Path(path).is_file():  # a pipe would wait for a writer forever
            raise FileNotFoundError(f"cannot read photo {path}: not a regular file")
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise FileNotFoundError(f"cannot read photo {path}: {exc.strerror or exc}") from None
        rows.append({"photo_id": hashlib.sha256(content).hexdigest(), "album": Path(path).parent.name,
                     "path": str(path), "content": content})
    return pd.DataFrame(rows, columns=["photo_id", "album", "path", "content"])


def _from_run(run: str, photo_ids: set[str], model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    faces = pd.read_parquet(Path(run) / "faces", columns=["face_id", "photo_id", "box", "embedding", "model"])
    faces = faces[faces["photo_id"].isin(photo_ids) & (faces["model"] == model)]
    status = pd.read_parquet(Path(run) / "photo_status")
    status = status[status["photo_id"].isin(photo_ids) & (status["model"] == model)]
    return faces, status


BATCH = 16  # photos handed to the executors' code at once
IN_WORKERS_FROM = 64  # photos; fewer are embedded here, since starting a worker costs seconds


def _embed_batch(batch: pd.DataFrame, settings: dict, weights: str | None) -> pd.DataFrame:
    from facecluster.udfs.embed_photos import embed_photo_batches

    return pd.concat(list(embed_photo_batches([batch], settings, weights)), ignore_index=True)


def embed_in_process(rows: pd.DataFrame, embed_settings: dict, weights: str | None, workers: int | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(faces, photo_status) of the photos in `rows`, by the executors' code, on every core: one
    worker process per core, each with one torch thread (dlib's network runs on one thread
    whatever torch is given, and threads beyond a process's share run slower, not faster), with a
    progress bar. A few photos are embedded in this process."""
    workers = workers or len(os.sched_getaffinity(0))
    batches = [rows.iloc[i:i + BATCH] for i in range(0, len(rows), BATCH)]
    settings = dict(embed_settings)
    if len(rows) < IN_WORKERS_FROM or workers == 1:
        if settings["torch_threads"] == "auto":  # this process is the only task: all of its CPUs
            settings["torch_threads"] = workers
        parts = [_embed_batch(batch, settings, weights) for batch in batches]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from tqdm import tqdm

        if settings["torch_threads"] == "auto":
            settings["torch_threads"] = 1
        # spawn, not fork: this process may hold torch's thread pools, which do not survive a fork.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool, \
                tqdm(total=len(rows), unit="photo", desc="embedding", mininterval=2.0) as bar:
            futures = [pool.submit(_embed_batch, batch, settings, weights) for batch in batches]
            parts = []
            for future, batch in zip(futures, batches):
                parts.append(future.result())
                bar.update(len(batch))
    results = pd.concat(parts, ignore_index=True)
    faces = [{**face, "photo_id": r.photo_id, "face_id": face_id(r.photo_id, face["face_index"]), "model": r.model}
             for r in results.itertuples() for face in r.faces]
    faces = pd.DataFrame(faces, columns=["face_id", "photo_id", "box", "embedding", "model", "face_px"])
    return faces, results.drop(columns="faces")


def main_faces(paths: list[str], embed_settings: dict, weights: str | None = None,
               run: str | None = None) -> pd.DataFrame:
    """One row per path: status (ok | no_face | error), error, n_faces and the embedding of the
    main face (the one nearest the photo's centre, as in LFW), model."""
    from facecluster.udfs.embedders import model_id

    rows = photo_rows(paths)
    model = model_id(embed_settings)
    faces, status = (_from_run(run, set(rows["photo_id"]), model) if run
                     else (pd.DataFrame(columns=["face_id", "photo_id", "box", "embedding", "model"]),
                           pd.DataFrame(columns=["photo_id", "status", "error", "width", "height", "n_faces"])))
    missing = rows[~rows["photo_id"].isin(status["photo_id"])].drop_duplicates("photo_id")
    if len(missing):
        new_faces, new_status = embed_in_process(missing, embed_settings, weights)
        faces = pd.concat([faces, new_faces], ignore_index=True) if len(faces) else new_faces
        status = pd.concat([status, new_status], ignore_index=True) if len(status) else new_status
    status = status.drop_duplicates("photo_id")
    main = central_faces(faces, status)[["photo_id", "embedding"]] if len(faces) else \
        pd.DataFrame(columns=["photo_id", "embedding"])
    out = rows[["path", "photo_id"]].merge(status[["photo_id", "status", "error", "n_faces"]], on="photo_id",
                                           how="left").merge(main, on="photo_id", how="left")
    out["model"] = model
    out["embedding"] = [np.asarray(e, dtype=np.float32) if isinstance(e, (list, np.ndarray)) else None
                        for e in out["embedding"]]
    return out
