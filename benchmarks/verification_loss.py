"""Where dlib's verification accuracy goes between its published LFW figure and ours: the same
dev pairs, the same MTCNN faces, one change at a time in how the face reaches the network.

    .venv/bin/python benchmarks/verification_loss.py [--pairs ../shared/data/lfw_pairs_dev.txt] [--scores-only]

Variants (each an embedding per photo, then LFW's 10-fold accuracy):
  mtcnn box      MTCNN's box handed to dlib's 5-point shape predictor as it is
  hog-like box   MTCNN's box mapped to where dlib's HOG detector would draw it (the embed job)
  hog box        dlib's own HOG detector box where it finds the same face, else the mapped box
  hog in region  the HOG detector run only on the region around MTCNN's face, scaled so that the
                 face is about 100 pixels wide and upsampled once (as LFW's faces are found by it),
                 or scaled to 120 pixels and not upsampled (cheaper)
  + mirror       the mean of the chip's and its mirror image's descriptors
  + jitter N     dlib's num_jitters (random crops, rotations and flips of the chip, averaged)
Faces are found once (MTCNN, the embed job's settings) and cached in --cache.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.core.settings import load_settings  # noqa: E402
from facecluster.recognition.verification import read_pairs, ten_fold  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _photo(path: str) -> np.ndarray:
    from facecluster.udfs.decode import decode_photo

    return decode_photo(Path(path).read_bytes(), 200_000_000).pixels


_MODELS: dict = {}


def _init(settings: dict) -> None:
    import torch

    torch.set_num_threads(1)
    from facecluster.udfs.detector import FaceDetector
    from facecluster.udfs.dlib_resnet import DlibEmbedder

    _MODELS["detector"] = FaceDetector(torch.device("cpu"), settings["max_canvas"], settings["min_face_size"],
                                       settings["detection_thresholds"], settings["min_det_score"])
    _MODELS["embedder"] = DlibEmbedder(four_views=False)  # one chip in, one descriptor out: the views are built here


def _central_face(path: str):
    """(box, landmarks) of the face nearest the photo's centre, as `evaluate pairs` picks it."""
    pixels = _photo(path)
    faces = _MODELS["detector"].detect([pixels])[0]
    if not faces:
        return None
    height, width = pixels.shape[:2]
    centre = np.array([width / 2, height / 2])
    face = min(faces, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre))
    return face.box, face.landmarks


def _hog_box(pixels: np.ndarray, box: np.ndarray, face_px: int | None = None, upsample: int = 1):
    """dlib's HOG detector box overlapping MTCNN's face (IoU >= 0.3), or None: over the whole
    photo (face_px None), or in the region around the face scaled to face_px, as the embedder."""
    import dlib

    from facecluster.udfs.dlib_resnet import face_region, hog_box

    if "hog" not in _MODELS:
        _MODELS["hog"] = dlib.get_frontal_face_detector()
    if face_px is None:
        return hog_box(_MODELS["hog"], pixels, box, None, upsample)
    region, left, top = face_region(pixels, box)
    found = hog_box(_MODELS["hog"], region, box - [left, top, left, top], face_px, upsample)
    return None if found is None else found + [left, top, left, top]


def _chip(pixels, box) -> np.ndarray:
    import dlib

    embedder = _MODELS["embedder"]
    rect = dlib.rectangle(*(int(round(v)) for v in box))
    shape = embedder.shape_predictor(pixels, rect)  # dlib's 5-point model, as the embed job runs it
    return np.asarray(dlib.get_face_chip(pixels, shape, size=150, padding=0.25))


def _descriptors(job) -> dict[str, np.ndarray]:
    from facecluster.udfs.dlib_resnet import dlib_box

    path, found, jitters = job
    if found is None:
        return {}
    box, _ = found
    pixels = _photo(path)
    embedder = _MODELS["embedder"]
    hog = _hog_box(pixels, np.asarray(box, dtype=np.float64))
    box = np.asarray(box, dtype=np.float64)
    region_100 = _hog_box(pixels, box, 100, 1)
    region_120 = _hog_box(pixels, box, 120, 0)
    chips = {"mtcnn box": _chip(pixels, box), "hog-like box": _chip(pixels, dlib_box(box)),
             "hog box": _chip(pixels, hog if hog is not None else dlib_box(box)),
             "hog in region 100/1": _chip(pixels, region_100 if region_100 is not None else dlib_box(box)),
             "hog in region 120/0": _chip(pixels, region_120 if region_120 is not None else dlib_box(box))}
    names = list(chips)
    mirrored_names = names[1:]
    vectors = embedder.embed([chips[n] for n in names] + [np.ascontiguousarray(chips[n][:, ::-1]) for n in mirrored_names])
    out = dict(zip(names, vectors[:len(names)]))
    for name, mirrored in zip(mirrored_names, vectors[len(names):]):
        out[f"{name} + mirror"] = out[name] + mirrored
    if jitters:
        from facecluster.udfs.dlib_resnet import load_dlib_reference

        if "reference" not in _MODELS:
            _MODELS["reference"] = load_dlib_reference()
        out[f"hog-like box + jitter {jitters}"] = np.asarray(
            _MODELS["reference"].compute_face_descriptor(chips["hog-like box"], num_jitters=jitters))
    out["found by hog"] = np.array([hog is not None])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default=str(SHARED / "lfw_pairs_dev.txt"))
    parser.add_argument("--images", default=str(SHARED / "lfw"))
    parser.add_argument("--jitters", type=int, default=0, help="also dlib's num_jitters (0: skip, slow)")
    parser.add_argument("--cache", default=str(ROOT / ".cache" / "verification_faces.npz"))
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--scores-only", action="store_true",
                        help="score the descriptors the last run saved next to --cache, embed nothing")
    args = parser.parse_args()

    if args.scores_only:
        by_path, pairs = np.load(Path(args.cache).with_name("verification_descriptors.npy"), allow_pickle=True)
        print_scores(by_path, pairs)
        return
    pairs = read_pairs(args.pairs, args.images)
    paths = sorted({p for a, b, _ in pairs for p in (a, b)})
    settings = load_settings(overrides=["embed.embedder=dlib"])["embed"]
    started = time.perf_counter()
    with get_context("spawn").Pool(args.workers, initializer=_init, initargs=(settings,)) as pool:
        cache = Path(args.cache)
        if cache.exists():
            stored = np.load(cache, allow_pickle=True)
            faces = dict(zip(stored["paths"], stored["faces"]))
        else:
            faces = dict(zip(paths, pool.map(_central_face, paths, chunksize=16)))
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, paths=np.array(paths), faces=np.array([faces[p] for p in paths], dtype=object))
        print(f"{len(paths)} photos, faces found in {sum(f is not None for f in faces.values())} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        results = pool.map(_descriptors, [(p, faces[p], args.jitters) for p in paths], chunksize=16)
    print(f"descriptors in {time.perf_counter() - started:.0f} s", flush=True)
    by_path = dict(zip(paths, results))
    np.save(Path(args.cache).with_name("verification_descriptors.npy"), np.array([by_path, pairs], dtype=object))
    print(f"dlib's HOG detector found the same face in {sum(bool(r.get('found by hog', [False])[0]) for r in results)}"
          f" of {len(paths)} photos")
    print_scores(by_path, pairs)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def print_scores(by_path: dict, pairs: list) -> None:
    from sklearn.metrics import roc_auc_score

    first = next(r for r in by_path.values() if r)
    variants = {n: (lambda r, n=n: r[n]) for n in first if n != "found by hog"}
    # four views: the region's HOG box and the mapped box, each with its mirror image
    variants["hog in region 120/0 + hog-like box, each + mirror"] = (
        lambda r: _unit(r["hog in region 120/0 + mirror"]) + _unit(r["hog-like box + mirror"]))
    scored = [(a, b, same) for a, b, same in pairs if by_path[a] and by_path[b]]
    same = np.array([s for _, _, s in scored])
    print(f"{len(scored)} of {len(pairs)} pairs scored (a pair with no face in a photo is left out)\n")
    print(f"{'variant':<52} {'10-fold accuracy':>18} {'errors':>7} {'1 - AUC':>9}")
    for name, view in variants.items():
        distances = np.array([float(np.linalg.norm(_unit(view(by_path[a])) - _unit(view(by_path[b]))))
                              for a, b, _ in scored])
        accuracies = np.array(ten_fold(list(distances), list(same))["accuracies"])
        errors = round((1 - accuracies.mean()) * len(scored))
        print(f"{name:<52} {100 * accuracies.mean():6.2f}% ± {100 * accuracies.std():.2f} {errors:>7} "
              f"{1 - roc_auc_score(same, -distances):9.1e}")


if __name__ == "__main__":
    main()
