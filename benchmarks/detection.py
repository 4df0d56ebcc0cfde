"""Face detection recall and precision on hand-drawn boxes (group photos, small faces).

    .venv/bin/python benchmarks/detection.py [--groups ../shared/data/photos/groups]

Reads training.xml and testing.xml (dlib's imglab format: one <box> per face), runs the
embed job's detector (udfs.detector.FaceDetector, the same code the executors run) on each
photo with several settings, and counts a face found when a detection overlaps its box with
IoU >= 0.4 (one detection per box, best overlap first). The hand-drawn boxes are square
and tight; MTCNN's are taller, which is why the bar is 0.4 and not 0.5.
"""
from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecluster.core.settings import load_settings  # noqa: E402
from facecluster.udfs.decode import decode_photo, downscale  # noqa: E402
from facecluster.udfs.detector import FaceDetector  # noqa: E402

IOU = 0.4


def labelled_boxes(groups: Path) -> dict[str, np.ndarray]:
    """photo file -> N x 4 boxes [x1, y1, x2, y2] from training.xml and testing.xml."""
    boxes: dict[str, list] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(groups / name).getroot().iter("image"):
            for box in image.iter("box"):
                left, top = float(box.get("left")), float(box.get("top"))
                boxes.setdefault(image.get("file"), []).append(
                    [left, top, left + float(box.get("width")), top + float(box.get("height"))])
    return {name: np.asarray(b) for name, b in boxes.items()}


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (N x 4) and b (M x 4)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def matches(truth: np.ndarray, found: np.ndarray) -> int:
    """Greedy one-to-one matching at IoU >= IOU, best overlaps first."""
    if len(truth) == 0 or len(found) == 0:
        return 0
    overlap = iou(truth, found)
    matched = 0
    while overlap.size and overlap.max() >= IOU:
        i, j = np.unravel_index(overlap.argmax(), overlap.shape)
        matched += 1
        overlap[i, :] = -1
        overlap[:, j] = -1
    return matched


def score(groups: Path, truth: dict[str, np.ndarray], min_face_size: int, thresholds: list[float],
          min_scores: list[float], max_canvas: int, scale: float) -> dict[float, tuple[int, int, int]]:
    """min_score -> (true faces found, detections, true faces), on the photos shrunk by `scale`."""
    detector = FaceDetector(torch.device("cpu"), max_canvas, min_face_size, thresholds, min_score=0.0)
    totals = {s: [0, 0, 0] for s in min_scores}
    for name, boxes in truth.items():
        pixels = decode_photo((groups / name).read_bytes(), 120_000_000).pixels
        if scale != 1.0:
            pixels, _ = downscale(pixels, round(max(pixels.shape[:2]) * scale))
            boxes = boxes * scale
        faces = detector.detect([pixels])[0]
        for s in min_scores:
            kept = np.asarray([f.box for f in faces if f.score >= s]).reshape(-1, 4)
            totals[s][0] += matches(boxes, kept)
            totals[s][1] += len(kept)
            totals[s][2] += len(boxes)
    return {s: tuple(t) for s, t in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", default=str(ROOT.parent / "shared" / "data" / "photos" / "groups"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    groups = Path(args.groups)
    truth = labelled_boxes(groups)
    embed = load_settings()["embed"]
    sizes = {len(b) for b in truth.values()}
    short = np.concatenate([np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in truth.values()])
    print(f"{len(truth)} photos, {sum(len(b) for b in truth.values())} hand-drawn faces "
          f"({min(sizes)}-{max(sizes)} per photo), face sides {short.min():.0f}-{short.max():.0f} px "
          f"(median {np.median(short):.0f})")
    print(f"defaults: min_face_size {embed['min_face_size']}, thresholds {embed['detection_thresholds']}, "
          f"min_det_score {embed['min_det_score']}, max_canvas {embed['max_canvas']}\n")
    # The labelled faces are 37 px and more; shrunk to half size they stand for the small faces
    # of a large group photo, the common miss, and there min_face_size makes the difference.
    for scale in (1.0, 0.5):
        print(f"photos at {scale:.0%} of their size (faces {short.min() * scale:.0f}-{short.max() * scale:.0f} px)")
        print(f"{'min_face_size':>13} {'thresholds':>17} {'min_score':>9} {'recall':>7} {'precision':>9} "
              f"{'found/true/detections':>22}")
        for size in (12, 16, 20, 28, 40):
            for thresholds in ([0.6, 0.7, 0.7], [0.5, 0.6, 0.7], [0.6, 0.7, 0.8]):
                results = score(groups, truth, size, thresholds, [0.8, 0.9, 0.95], embed["max_canvas"], scale)
                for s, (found, detections, true) in results.items():
                    default = (size, thresholds, s) == (embed["min_face_size"], embed["detection_thresholds"],
                                                        embed["min_det_score"])
                    print(f"{size:>13} {str(thresholds):>17} {s:>9} {found / true:>7.3f} "
                          f"{found / max(detections, 1):>9.3f} {f'{found}/{true}/{detections}':>22}"
                          f"{' <- default' if default else ''}")
        print()

if __name__ == "__main__":
    main()
