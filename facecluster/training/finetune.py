"""Fine-tuning FaceNet's InceptionResnetV1 itself with the triplet loss (for a GPU).

The CPU path (facecluster.training.triplet) trains a small head on frozen embeddings. With a GPU the
network can learn too: faces are cut as the embed job cuts them (MTCNN, facenet-pytorch's
margin, 160 x 160), batches of P people x K faces go through the network in training mode, and
the same triplet loss and mining (facecluster.training.triplet.triplet_loss) drive it. Batch norms keep
their VGGFace2 statistics (eval mode): P x K batches are too small and too few people to
re-estimate them. By default only the last block and the embedding layer learn
(`layers="last"`); `layers="all"` trains everything.

The result is a weights file carrying its own model id (`facenet-vggface2+finetune-<hash>`),
used with --set embed.facenet_weights=FILE; its faces are never mixed with the original's.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from facecluster.training.triplet import descend, pk_batch, triplet_loss

LAST_LAYERS = ("block8", "last_linear", "last_bn")


def face_chips(paths: list[str], embed_settings: dict) -> tuple[np.ndarray, list[int]]:
    """160 x 160 FaceNet chips of the main face (nearest the centre) of each photo, and the index
    of the photo each chip came from (photos without a face or unreadable are left out)."""
    from facecluster.udfs.decode import PhotoError, decode_photo
    from facecluster.udfs.detector import FaceDetector
    from facecluster.udfs.embedders import choose_device
    from facecluster.udfs.facenet import facenet_chip

    device = choose_device(embed_settings["device"])
    detector = FaceDetector(device, embed_settings["max_canvas"], embed_settings["min_face_size"],
                            embed_settings["detection_thresholds"], embed_settings["min_det_score"])
    chips, owners = [], []
    for index, path in enumerate(paths):
        try:
            photo = decode_photo(Path(path).read_bytes(), embed_settings["max_pixels"])
        except (OSError, PhotoError):
            continue
        faces = detector.detect([photo.pixels])[0]
        if not faces:
            continue
        centre = np.array([photo.width / 2, photo.height / 2])
        main = min(faces, key=lambda f: np.hypot(*((f.box[:2] + f.box[2:]) / 2 - centre)))
        chips.append(facenet_chip(photo.pixels, main.box))
        owners.append(index)
    return (np.stack(chips) if chips else np.zeros((0, 160, 160, 3), np.uint8)), owners


def _standardise(chips: np.ndarray, device: torch.device) -> torch.Tensor:
    batch = torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()
    return ((batch - 127.5) / 128.0).to(device)  # facenet-pytorch's fixed standardisation


class FacenetFinetuner:
    """fit(chips, people) trains model_ (InceptionResnetV1); history_ = (step, loss, active share)."""

    def __init__(self, weights: Path | None, device: torch.device, margin: float = 0.2, mining: str = "semi_hard",
                 people_per_batch: int = 32, faces_per_person: int = 4, steps: int = 1000,
                 learning_rate: float = 1e-4, layers: str = "last", seed: int = 0, log_every: int = 100, log=print):
        if layers not in ("last", "all"):
            raise ValueError(f"layers must be 'last' or 'all', got {layers!r}")
        self.weights, self.device, self.layers = weights, device, layers
        self.margin, self.mining = margin, mining
        self.people_per_batch, self.faces_per_person = people_per_batch, faces_per_person
        self.steps, self.learning_rate, self.seed = steps, learning_rate, seed
        self.log_every, self.log = log_every, log

    def fit(self, chips: np.ndarray, people) -> "FacenetFinetuner":
        from facecluster.udfs.facenet import load_facenet

        codes, index = np.unique(np.asarray(people), return_inverse=True)
        by_person = [rows for rows in (np.flatnonzero(index == c) for c in range(len(codes))) if len(rows) >= 2]
        if len(by_person) < 2:
            raise ValueError("fine-tuning needs at least two people with two or more faces each")
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        model = load_facenet(self.weights, self.device)
        for name, parameter in model.named_parameters():
            parameter.requires_grad = self.layers == "all" or name.split(".")[0] in LAST_LAYERS
        model.train()
        for module in model.modules():  # batch norms keep VGGFace2's statistics
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                module.eval()
        optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=self.learning_rate)
        labels = torch.from_numpy(index).to(self.device)
        self.history_ = []
        for step in range(1, self.steps + 1):
            rows = pk_batch(by_person, self.people_per_batch, self.faces_per_person, rng)
            loss, active = triplet_loss(model(_standardise(chips[rows], self.device)), labels[rows],
                                        self.margin, self.mining)
            descend(self, optimiser, step, loss, active)
        self.model_ = model.eval()
        return self

    def embed(self, chips: np.ndarray, batch: int = 64) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([self.model_(_standardise(chips[i:i + batch], self.device)).cpu().numpy()
                                   for i in range(0, len(chips), batch)] or [np.zeros((0, 512), np.float32)])


def save_finetuned(model: torch.nn.Module, folder: str | os.PathLike, settings: dict) -> tuple[str, Path]:
    """<folder>/<model id>.pt holding the state dict and its model id (udfs.facenet.load_facenet reads it)."""
    from facecluster.udfs.facenet import MODEL_ID

    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, buffer)
    model_id = f"{MODEL_ID}+finetune-{hashlib.sha256(buffer.getvalue()).hexdigest()[:10]}"
    path = Path(folder) / f"{model_id}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_id": model_id, "base_model": MODEL_ID, "state_dict": state, "settings": settings}, path)
    return model_id, path
