"""Embedder `facenet`: InceptionResnetV1 with the VGGFace2 weights (512-d, LFW 99.65%).

Weights: facenet-pytorch's release file 20180402-114759-vggface2.pt. They are found, in
order, at an explicit path (embed.facenet_weights), in $TORCH_HOME/checkpoints where
facenet-pytorch caches them, or downloaded by facenet-pytorch when the machine is online.
Never run on random weights outside tests.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from facecluster.udfs.inference import for_cpu_inference

MODEL_ID = "facenet-vggface2"
DIMENSION = 512
WEIGHTS_FILE = "20180402-114759-vggface2.pt"
SOURCE = "facenet-pytorch release v2.2.9, " + WEIGHTS_FILE + " (Cao et al., VGGFace2; Schroff et al., FaceNet)"
CHIP_SIZE = 160
MARGIN = 20  # pixels of context at 160x160, as facenet-pytorch's examples crop


class WeightsMissing(RuntimeError):
    pass


def cached_weights_path() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "checkpoints" / WEIGHTS_FILE


def find_weights(explicit: str | None) -> Path | None:
    """The weights file on this machine, without touching the network; None if absent."""
    if explicit:
        path = Path(explicit).expanduser()
        return path if path.is_file() else None
    cached = cached_weights_path()
    return cached if cached.is_file() else None


def resolve_weights(explicit: str | None, allow_download: bool = True) -> Path:
    """The weights file, downloading it once when online; WeightsMissing names the remedies."""
    found = find_weights(explicit)
    if found:
        return found
    remedies = (f"Remedies: (1) pass the file with --set embed.facenet_weights=/path/{WEIGHTS_FILE}; "
                f"(2) place it at {cached_weights_path()}; (3) run once on a machine that can reach "
                "GitHub so facenet-pytorch downloads it there; or (4) use --embedder dlib, whose "
                "weights ship with the package.")
    if explicit:
        raise WeightsMissing(f"FaceNet weights not found at {explicit}. {remedies}")
    if allow_download:
        try:
            from facenet_pytorch import InceptionResnetV1

            InceptionResnetV1(pretrained="vggface2")  # downloads into $TORCH_HOME/checkpoints
        except Exception as exc:  # noqa: BLE001 - offline, proxy, HTTP error: all the same to the user
            raise WeightsMissing(f"FaceNet weights are not on this machine and downloading them failed "
                                 f"({type(exc).__name__}: {exc}). {remedies}") from None
        if cached_weights_path().is_file():
            return cached_weights_path()
    raise WeightsMissing(f"FaceNet weights are not on this machine. {remedies}")


def _saved(weights: Path) -> dict:
    saved = torch.load(weights, map_location="cpu", weights_only=True)
    # A file from `facecluster train --finetune` carries its model id beside the state dict.
    return saved if "state_dict" in saved else {"model_id": MODEL_ID, "state_dict": saved}


def weights_model_id(weights: str | Path | None) -> str:
    """The model id of the faces these weights make: the VGGFace2 release's, or a fine-tuned one's."""
    if weights is None or not Path(weights).is_file():
        return MODEL_ID
    return _saved(Path(weights))["model_id"]


def load_facenet(weights: Path | None, device: torch.device) -> torch.nn.Module:
    """InceptionResnetV1 with the VGGFace2 weights (or weights fine-tuned from them);
    weights=None gives random weights (tests only)."""
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1(pretrained=None, classify=False)
    if weights is not None:
        state = _saved(Path(weights))["state_dict"]
        # The classifier over VGGFace2's 8631 training identities is not part of the embedding.
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}
        model.load_state_dict(state, strict=True)
    return model.eval().to(device)


# Mixed precision is used only if it keeps every embedding of the first batch within this
# cosine distance of full precision; checked once per worker, on real faces.
MIXED_PRECISION_TOLERANCE = 1e-2


def facenet_chip(pixels: np.ndarray, box) -> np.ndarray:
    """A 160x160 crop of the box with facenet-pytorch's margin, from the full-resolution photo."""
    from PIL import Image

    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx = MARGIN * (x2 - x1) / (CHIP_SIZE - MARGIN) / 2
    my = MARGIN * (y2 - y1) / (CHIP_SIZE - MARGIN) / 2
    left, top = int(max(0, x1 - mx)), int(max(0, y1 - my))
    right, bottom = int(min(width, x2 + mx)), int(min(height, y2 + my))
    crop = Image.fromarray(pixels[top:bottom, left:right])
    return np.asarray(crop.resize((CHIP_SIZE, CHIP_SIZE), Image.Resampling.BILINEAR))


class FacenetEmbedder:
    dimension = DIMENSION

    def __init__(self, weights: Path | None, device: torch.device, mixed_precision: bool = False,
                 tolerance: float = MIXED_PRECISION_TOLERANCE):
        self.device = device
        self.model_id = weights_model_id(weights)
        self.model = load_facenet(weights, device)
        # 'unchecked' until the first batch decides between 'mixed' and 'fp32'.
        self.precision = "unchecked" if mixed_precision else "fp32"
        self.tolerance = tolerance
        self.mixed_precision_gap: float | None = None
        if device.type == "cpu" and not mixed_precision:
            # traced and frozen: about a quarter faster on a CPU (benchmarks/embed_speed.py), the
            # embeddings within 1e-7 of the eager network
            self.model = for_cpu_inference(self.model, CHIP_SIZE)

    def chip(self, pixels: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return facenet_chip(pixels, box)

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()
        batch = ((batch - 127.5) / 128.0).to(self.device)  # facenet-pytorch's fixed standardisation
        if self.device.type == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():  # (a frozen TorchScript module refuses inference-mode tensors)
            if self.precision == "fp32":
                vectors = self.model(batch)  # the network L2-normalises its output
            else:
                vectors = self._mixed(batch)
        return vectors.float().cpu().numpy()

    def _mixed(self, batch: torch.Tensor) -> torch.Tensor:
        """fp16 (bf16 on CPU) autocast, kept only if the first batch stays within tolerance."""
        dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        with torch.autocast(self.device.type, dtype=dtype):
            mixed = self.model(batch).float()
        if self.precision == "unchecked":
            full = self.model(batch)
            self.mixed_precision_gap = float((1 - torch.nn.functional.cosine_similarity(mixed, full)).max())
            self.precision = "mixed" if self.mixed_precision_gap <= self.tolerance else "fp32"
            return full
        return mixed
