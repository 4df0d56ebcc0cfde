"""How small may a face be and still say who it is? dlib verification accuracy by face size.

    .venv/bin/python benchmarks/face_size.py [--pairs 600]

Takes the first --pairs pairs of ../shared/data/lfw_pairs_dev.txt (half same person, half not
in that file's order of blocks, so both kinds are drawn), finds the face in each full-size
photo, then shrinks the photo so that the face's short side is N pixels and embeds it from
there (box scaled, as the embed job cuts faces from the photo). Prints the pair accuracy at
the model's threshold and at its best threshold for each N. Chooses cluster.min_face_px.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from facecluster.recognition.thresholds import same_person_threshold  # noqa: E402
from facecluster.udfs.decode import decode_photo, downscale  # noqa: E402
from facecluster.udfs.detector import FaceDetector  # noqa: E402
from facecluster.udfs.dlib_resnet import MODEL_ID, DlibEmbedder  # noqa: E402

SIZES = (16, 24, 32, 48, 64, None)  # None: the photo as it is (LFW faces are ~100 px)


def read_pairs(path: Path, count: int) -> list[tuple[str, str, bool]]:
    lines = [line.split("\t") for line in path.read_text().splitlines() if "\t" in line]
    same = [(f"{a}/{a}_{int(i):04d}.jpg", f"{a}/{a}_{int(j):04d}.jpg", True) for a, i, j in
            (line for line in lines if len(line) == 3)]
    other = [(f"{a}/{a}_{int(i):04d}.jpg", f"{b}/{b}_{int(j):04d}.jpg", False) for a, i, b, j in
             (line for line in lines if len(line) == 4)]
    return same[:count // 2] + other[:count // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--lfw", default=str(SHARED / "lfw"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    lfw = Path(args.lfw)
    pairs = read_pairs(SHARED / "lfw_pairs_dev.txt", args.pairs)
    detector = FaceDetector(torch.device("cpu"), 1024, 20, [0.6, 0.7, 0.7], 0.9)
    embedder = DlibEmbedder(four_views=False)  # the figures in docs/benchmarks.md: one view
    photos = sorted({p for a, b, _ in pairs for p in (a, b)})
    central = {}
    for name in photos:
        pixels = decode_photo((lfw / name).read_bytes(), 10 ** 9).pixels
        faces = detector.detect([pixels])[0]
        if faces:  # the face nearest the centre, as LFW centres the named person
            centre = np.array(pixels.shape[1::-1]) / 2
            face = min(faces, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre))
            central[name] = (pixels, face)
    usable = [(a, b, same) for a, b, same in pairs if a in central and b in central]
    print(f"{len(usable)} of {len(pairs)} pairs with a face found in both photos; threshold "
          f"{same_person_threshold(MODEL_ID)} ({MODEL_ID})\n")
    print(f"{'face px':>8} {'accuracy':>9} {'best acc':>9} {'at':>6}")
    for size in SIZES:
        vectors = {}
        for name, (pixels, face) in central.items():
            short = face.short_side
            if size is not None and short > size:
                small, factor = downscale(pixels, max(1, round(max(pixels.shape[:2]) * size / short)))
                box, marks = face.box / factor, face.landmarks / factor
            else:
                small, box, marks = pixels, face.box, face.landmarks
            vectors[name] = embedder.embed([embedder.chip(small, box, marks)])[0]
        distances = np.array([np.linalg.norm(vectors[a] - vectors[b]) for a, b, _ in usable])
        truth = np.array([same for _, _, same in usable])
        accuracy = ((distances < same_person_threshold(MODEL_ID)) == truth).mean()
        candidates = np.unique(distances)
        best = max(candidates, key=lambda t: ((distances <= t) == truth).mean())
        print(f"{size or 'full':>8} {accuracy:>9.3f} {((distances <= best) == truth).mean():>9.3f} {best:>6.3f}")


if __name__ == "__main__":
    main()
