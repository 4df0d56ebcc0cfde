"""Embedders `dlib` and `dlib-one-view`: dlib's face-recognition ResNet (128-d, LFW 99.38%).

Its weights ship in the face-recognition-models package, so it works on a machine with no
network. dlib aligns a face with its own 5-point shape predictor; we run that predictor in a
box around the face MTCNN found and cut the 150x150 chip dlib was trained on (both cheap, in
dlib). The network itself runs in torch (udfs/dlib_torch.py, weights read from dlib's own file):
batched, traced and frozen on a CPU, on a GPU where there is one; its descriptors equal dlib's
to 1e-6.

`dlib` (model dlib-resnet-v1-four-views) describes a face by four views: the chips cut from two
boxes (the one dlib's own HOG detector draws around the face, and MTCNN's box mapped to where it
would draw it), each with its mirror image. The landmarks, so the chip, move with the box they
start from, and the mirror image halves the ranking errors: LFW dev pairs 99.12% -> 99.43%
(docs/benchmarks.md, Verification). `dlib-one-view` (model dlib-resnet-v1) is one descriptor of
the chip cut from the mapped box: a quarter of the network's work, no HOG search.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

MODEL_ID = "dlib-resnet-v1"                     # one view, MTCNN's box mapped
FOUR_VIEWS_MODEL_ID = "dlib-resnet-v1-four-views"  # two boxes, each chip and its mirror image
DIMENSION = 128
CHIP_SIZE = 150
SOURCE = "face-recognition-models 0.3.0 (dlib_face_recognition_resnet_model_v1.dat, shape_predictor_5_face_landmarks.dat)"


def model_dir() -> Path:
    # Located without importing the package: its __init__ imports pkg_resources,
    # which modern setuptools no longer provides.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the dlib embedder needs the face-recognition-models package: "
                           "pip install face-recognition-models==0.3.0")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def load_shape_predictor():
    """dlib's 5-point landmark model from face-recognition-models."""
    import dlib

    return dlib.shape_predictor(str(model_dir() / "shape_predictor_5_face_landmarks.dat"))


def load_dlib_reference():
    """dlib's own ResNet (dlib.face_recognition_model_v1): the reference the torch module is
    measured against, not used to embed."""
    import dlib

    return dlib.face_recognition_model_v1(str(model_dir() / "dlib_face_recognition_resnet_model_v1.dat"))


# dlib's shape predictor was trained on the boxes of dlib's own HOG detector: squarer than
# MTCNN's, from the brows down. Median offsets of the HOG box from the MTCNN box of the same face,
# in MTCNN box widths/heights, measured on 297 LFW photos (left, top, right, bottom). Fed MTCNN's
# box as it is, the predictor's landmarks drift: LFW dev pairs 98.77% -> 99.06% with the mapping.
HOG_BOX_OFFSETS = (-0.101, 0.122, 0.027, -0.031)


def dlib_box(box) -> tuple[float, float, float, float]:
    """The box dlib's HOG detector would draw around the face MTCNN boxed."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    left, top, right, bottom = HOG_BOX_OFFSETS
    return x1 + left * w, y1 + top * h, x2 + right * w, y2 + bottom * h


# The HOG detector searches only the region around the face (a 60-megapixel photo costs what a
# portrait does), scaled so that the face is 120 pixels wide: just above its 80-pixel window
# after two steps of its pyramid, 13 ms a face. With the mirror image, LFW dev pairs 99.34%,
# as with the detector over the whole photo upsampled (41 ms); at 100 pixels upsampled, 99.20%.
# Its box alone moves with small changes of MTCNN's box (98.86% on one view): with the mapped box
# beside it, the four views reach 99.43%.
HOG_FACE_PX = 120
HOG_UPSAMPLE = 0
HOG_MIN_OVERLAP = 0.3   # IoU with MTCNN's box: the same face, not a neighbour's


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes."""
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


def face_region(pixels: np.ndarray, box) -> tuple[np.ndarray, int, int]:
    """(region, left, top): the pixels around the face MTCNN boxed, where its landmarks and chips
    are cut, so that a 60-megapixel photo costs no more than a portrait."""
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = dlib_box(box)
    pad = 0.6 * max(x2 - x1, y2 - y1)
    left, top = int(max(0, x1 - pad)), int(max(0, y1 - pad))
    right, bottom = int(min(width, x2 + pad)), int(min(height, y2 + pad))
    return np.ascontiguousarray(pixels[top:bottom, left:right]), left, top


def hog_box(detector, pixels: np.ndarray, box: np.ndarray, face_px: float | None = HOG_FACE_PX,
            upsample: int = HOG_UPSAMPLE) -> np.ndarray | None:
    """The box dlib's HOG detector draws around the face MTCNN boxed (box, in these pixels'
    coordinates), the pixels scaled so that the face is face_px wide (None: as they are); None
    where it finds no face overlapping it (a profile, a small or blurred face)."""
    from PIL import Image

    scale = 1.0
    if face_px is not None:
        x1, y1, x2, y2 = dlib_box(box)
        scale = face_px / max(x2 - x1, y2 - y1)
        height, width = pixels.shape[:2]
        pixels = np.asarray(Image.fromarray(pixels).resize(
            (max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR))
    best, best_overlap = None, HOG_MIN_OVERLAP
    for found in detector(pixels, upsample):
        candidate = np.array([found.left(), found.top(), found.right(), found.bottom()], dtype=np.float64) / scale
        candidate_overlap = overlap(candidate, box)
        if candidate_overlap > best_overlap:
            best, best_overlap = candidate, candidate_overlap
    return best


class DlibEmbedder:
    dimension = DIMENSION

    def __init__(self, device: torch.device | None = None, four_views: bool = True):
        """four_views: the `dlib` embedder; False: `dlib-one-view`."""
        import dlib

        from facecluster.udfs.dlib_torch import load_dlib_resnet_torch
        from facecluster.udfs.inference import for_cpu_inference

        self.device = device or torch.device("cpu")
        self.four_views = four_views
        self.model_id = FOUR_VIEWS_MODEL_ID if four_views else MODEL_ID
        self.shape_predictor = load_shape_predictor()
        self.hog_detector = dlib.get_frontal_face_detector() if four_views else None
        network = load_dlib_resnet_torch(self.device)
        self.means = network.input_means
        if self.device.type == "cpu":
            self.network = for_cpu_inference(network, CHIP_SIZE)
        else:
            # Equal to dlib within 1e-4 needs full fp32: TF32 convolutions (on by default on
            # recent GPUs) keep 10 mantissa bits, as fp16 does, about 1e-3 of each value.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            self.network = network

    def chip(self, pixels: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The aligned 150x150 face chip dlib's ResNet expects (one view); for four views, the
        chips of the HOG box and of the mapped box (2 x 150 x 150 x 3), mirrored in embed()."""
        import dlib

        region, left, top = face_region(pixels, box)
        x1, y1, x2, y2 = dlib_box(box)

        def cut(x1, y1, x2, y2) -> np.ndarray:
            shape = self.shape_predictor(region, dlib.rectangle(int(x1), int(y1), int(x2), int(y2)))
            return np.asarray(dlib.get_face_chip(region, shape, size=CHIP_SIZE, padding=0.25))

        mapped = cut(x1 - left, y1 - top, x2 - left, y2 - top)
        if not self.four_views:
            return mapped
        found = hog_box(self.hog_detector, region, np.asarray(box, dtype=np.float64) - [left, top, left, top])
        return np.stack([cut(*found) if found is not None else mapped, mapped])

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        from facecluster.udfs.dlib_torch import network_input

        if not chips:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        if self.four_views:
            views = [view for face in chips for view in face]
            chips = [*views, *(np.ascontiguousarray(view[:, ::-1]) for view in views)]
        batch = network_input(chips, self.means).to(self.device)
        if self.device.type == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():  # (a frozen TorchScript module refuses inference-mode tensors)
            vectors = self.network(batch).float().cpu().numpy()
        if self.four_views:
            half = len(vectors) // 2
            per_box = vectors[:half] + vectors[half:]  # each chip with its mirror image
            per_box /= np.linalg.norm(per_box, axis=1, keepdims=True)
            vectors = per_box.reshape(-1, 2, DIMENSION).sum(axis=1)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
