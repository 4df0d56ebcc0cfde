"""Embedder `dlib`: dlib's face-recognition ResNet (128-d, LFW 99.38%).

Its weights ship in the face-recognition-models package, so it works on a machine with no
network. dlib aligns a face with its own 5-point shape predictor; we run that predictor in
the MTCNN box, cut the 150x150 chip dlib was trained on, and embed chips in batches.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

MODEL_ID = "dlib-resnet-v1"
DIMENSION = 128
SOURCE = "face-recognition-models 0.3.0 (dlib_face_recognition_resnet_model_v1.dat, shape_predictor_5_face_landmarks.dat)"


def model_dir() -> Path:
    # Located without importing the package: its __init__ imports pkg_resources,
    # which modern setuptools no longer provides.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the dlib embedder needs the face-recognition-models package: "
                           "pip install face-recognition-models==0.3.0")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def load_dlib_resnet():
    """(shape predictor, ResNet) from face-recognition-models."""
    import dlib

    models = model_dir()
    return (dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")))


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


class DlibEmbedder:
    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self):
        self.shape_predictor, self.resnet = load_dlib_resnet()

    def chip(self, pixels: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The aligned 150x150 face chip dlib's ResNet expects."""
        import dlib

        # Work in a region around the face so a 60-megapixel photo costs no more than a portrait.
        height, width = pixels.shape[:2]
        x1, y1, x2, y2 = dlib_box(box)
        pad = 0.6 * max(x2 - x1, y2 - y1)
        left, top = int(max(0, x1 - pad)), int(max(0, y1 - pad))
        right, bottom = int(min(width, x2 + pad)), int(min(height, y2 + pad))
        region = np.ascontiguousarray(pixels[top:bottom, left:right])
        rect = dlib.rectangle(int(x1 - left), int(y1 - top), int(x2 - left), int(y2 - top))
        shape = self.shape_predictor(region, rect)
        return np.asarray(dlib.get_face_chip(region, shape, size=150, padding=0.25))

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        vectors = np.asarray(self.resnet.compute_face_descriptor(chips), dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
