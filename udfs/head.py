"""A trained head's inference on the executors: the embedder's vector re-mapped by the linear
head `facecluster train` saved (facecluster.training.triplet trains it)."""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch


class TripletHead(torch.nn.Module):
    """x -> normalise(W x + b), W initialised to the identity."""

    def __init__(self, dimension: int):
        super().__init__()
        self.linear = torch.nn.Linear(dimension, dimension)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(dimension))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.linear(x), dim=1)


def head_model_id(base_model: str, head: TripletHead) -> str:
    buffer = io.BytesIO()
    torch.save(head.state_dict(), buffer)
    return f"{base_model}+triplet-{hashlib.sha256(buffer.getvalue()).hexdigest()[:10]}"


def load_head(path: str | os.PathLike) -> tuple[TripletHead, dict]:
    """A head saved by `facecluster train` (source: that command's --save folder)."""
    saved = torch.load(Path(path), map_location="cpu", weights_only=True)
    head = TripletHead(saved["dimension"])
    head.load_state_dict(saved["state_dict"])
    head.eval()
    return head, saved


def apply_head(head: TripletHead, embeddings: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head(torch.from_numpy(np.asarray(embeddings, dtype=np.float32))).numpy()


class HeadEmbedder:
    """An embedder followed by a trained head: what the embed job runs when embed.head is set."""

    def __init__(self, base, head_path: str | os.PathLike):
        self.base = base
        self.head, saved = load_head(head_path)
        if saved["base_model"] != base.model_id:
            raise ValueError(f"head {head_path} was trained on {saved['base_model']} embeddings, "
                             f"not {base.model_id}")
        self.model_id = saved["model_id"]
        self.dimension = saved["dimension"]

    def chip(self, pixels, box, landmarks):
        return self.base.chip(pixels, box, landmarks)

    def embed(self, chips):
        return apply_head(self.head, self.base.embed(chips))
