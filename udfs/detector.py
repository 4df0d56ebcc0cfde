"""Face detection: facenet-pytorch's MTCNN on a bounded canvas, boxes mapped back to the photo.

MTCNN's cost grows with the pixels it scans, and a 24-megapixel photo holds faces far larger
than it needs, so it searches a downscaled copy (embed.max_canvas) and the boxes and
landmarks are scaled back to original pixels; the embedders then crop from the full photo.
Canvases of the same size go through the network as one batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecluster.udfs.decode import downscale


@dataclass
class DetectedFace:
    box: np.ndarray        # [x1, y1, x2, y2] in original pixels (after EXIF rotation)
    landmarks: np.ndarray  # 5 x 2: left eye, right eye, nose, left and right mouth corner
    score: float

    @property
    def short_side(self) -> float:
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))


def load_mtcnn(device: torch.device, min_face_size: int, thresholds: list[float]):
    """MTCNN with the P/R/O-net weights that ship inside the facenet-pytorch wheel (no download)."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device=device, min_face_size=min_face_size,
                  thresholds=list(thresholds), select_largest=False, post_process=False)
    if device.type == "cpu":
        # On a CPU, MTCNN's max pooling and small convolutions run about twice as fast on
        # channels-last tensors (detection was 79% of the embed job; benchmarks/embed_speed.py).
        # facenet-pytorch builds the networks' inputs itself, so each network turns its input.
        for network in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
            network.to(memory_format=torch.channels_last)
            network.register_forward_pre_hook(_channels_last)
    return mtcnn


def _channels_last(_network, inputs):
    return (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])


class FaceDetector:
    def __init__(self, device: torch.device, max_canvas: int, min_face_size: int,
                 thresholds: list[float], min_score: float):
        self.mtcnn = load_mtcnn(device, min_face_size, thresholds)
        self.max_canvas = max_canvas
        self.min_score = min_score

    def detect(self, photos: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces of each photo (H x W x 3 uint8 arrays), best score first."""
        canvases = [downscale(p, self.max_canvas) for p in photos]
        found: list[list[DetectedFace]] = [[] for _ in photos]
        by_shape: dict[tuple, list[int]] = {}
        for i, (canvas, _) in enumerate(canvases):
            by_shape.setdefault(canvas.shape, []).append(i)
        for indices in by_shape.values():
            batch = np.stack([canvases[i][0] for i in indices])
            with torch.inference_mode():
                boxes, scores, points = self.mtcnn.detect(batch, landmarks=True)
            for j, i in enumerate(indices):
                found[i] = self._faces(boxes[j], scores[j], points[j], canvases[i][1], photos[i].shape)
        return found

    def _faces(self, boxes, scores, points, scale, shape) -> list[DetectedFace]:
        if boxes is None:
            return []
        height, width = shape[:2]
        faces = []
        for box, score, marks in zip(boxes, scores, points):
            if score is None or float(score) < self.min_score:
                continue
            box = np.asarray(box, dtype=np.float64) * scale
            box = np.clip(box, 0, [width, height, width, height])
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            faces.append(DetectedFace(box.astype(np.float32),
                                      (np.asarray(marks, dtype=np.float64) * scale).astype(np.float32),
                                      float(score)))
        faces.sort(key=lambda f: -f.score)
        return faces
