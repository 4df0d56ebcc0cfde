"""Triplet-loss training (FaceNet, Schroff et al. 2015) of a small head on frozen embeddings.

The loss asks, for an anchor a, a positive p (same person) and a negative n (someone else):
    ||f(a) - f(p)||^2 + margin < ||f(a) - f(n)||^2,
and is max(0, d(a,p)^2 - d(a,n)^2 + margin) on squared Euclidean distances of unit vectors, as
in the paper. Most triplets already satisfy it and teach nothing, so which ones enter the loss
decides everything. Batches hold P people x K faces, and within a batch:
- batch_hard: per anchor, its farthest positive and nearest negative (Hermans et al. 2017);
- semi_hard: per anchor-positive pair, the nearest negative that is still farther than the
  positive (inside the margin), as FaceNet does; when none is, the farthest negative.
The share of triplets with a non-zero loss ("active") is logged with the loss at every step:
when it falls to zero the batches teach nothing more.

On a CPU the network's own weights stay frozen: a linear head (initialised to the identity, so
before training it changes nothing) re-maps the embeddings. The head has its own model id, so
faces it made are never mixed with the plain embedder's.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from facecluster.udfs.head import TripletHead, head_model_id  # noqa: F401 (TripletHead: the head trained here)

MINING = ("batch_hard", "semi_hard")


def squared_distances(embeddings: torch.Tensor) -> torch.Tensor:
    return (2.0 - 2.0 * embeddings @ embeddings.T).clamp(min=0.0)  # unit vectors


def triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float, mining: str
                 ) -> tuple[torch.Tensor, float]:
    """(mean loss over the mined triplets, share of them with a non-zero loss)."""
    d = squared_distances(embeddings)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive, negative = same & ~eye, ~same
    if mining == "batch_hard":
        hardest_positive = torch.where(positive, d, torch.zeros_like(d)).max(dim=1).values
        hardest_negative = torch.where(negative, d, torch.full_like(d, float("inf"))).min(dim=1).values
        has = positive.any(dim=1) & negative.any(dim=1)
        losses = torch.relu(hardest_positive - hardest_negative + margin)[has]
    elif mining == "semi_hard":
        anchor, other = torch.nonzero(positive, as_tuple=True)
        d_ap = d[anchor, other]                                    # one row per anchor-positive pair
        d_an = d[anchor]                                           # (pairs, batch)
        negatives = negative[anchor]
        semi = negatives & (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + margin)
        nearest_semi = torch.where(semi, d_an, torch.full_like(d_an, float("inf"))).min(dim=1).values
        farthest = torch.where(negatives, d_an, torch.full_like(d_an, -float("inf"))).max(dim=1).values
        chosen = torch.where(semi.any(dim=1), nearest_semi, farthest)
        losses = torch.relu(d_ap - chosen + margin)
    else:
        raise ValueError(f"mining must be one of {MINING}, got {mining!r}")
    if len(losses) == 0:
        raise ValueError("a batch without an anchor-positive-negative triplet: need 2+ people with 2+ faces")
    return losses.mean(), float((losses > 0).float().mean())


def pk_batch(by_person: list[np.ndarray], people: int, faces: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of `people` people x `faces` faces each (drawn with replacement for people
    with fewer photos)."""
    chosen = rng.choice(len(by_person), size=min(people, len(by_person)), replace=False)
    return np.concatenate([rng.choice(by_person[p], size=faces, replace=len(by_person[p]) < faces) for p in chosen])


def descend(trainer, optimiser, step: int, loss, active: float) -> None:
    """One optimiser step on a triplet loss, recorded in trainer.history_ and logged every
    trainer.log_every steps (both trainers: the head here, FaceNet in finetune.py)."""
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    trainer.history_.append((step, float(loss.detach()), active))
    if trainer.log and (step % trainer.log_every == 0 or step == 1):
        trainer.log(f"step {step:5d}  loss {trainer.history_[-1][1]:.4f}  active triplets {active:.3f}")


class TripletTrainer:
    """fit(embeddings, people) trains head_; history_ holds (step, loss, active share)."""

    def __init__(self, margin: float = 0.2, mining: str = "semi_hard", people_per_batch: int = 32,
                 faces_per_person: int = 4, steps: int = 1000, learning_rate: float = 1e-3, seed: int = 0,
                 log_every: int = 100, log=print):
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}, got {mining!r}")
        self.margin, self.mining = margin, mining
        self.people_per_batch, self.faces_per_person = people_per_batch, faces_per_person
        self.steps, self.learning_rate, self.seed = steps, learning_rate, seed
        self.log_every, self.log = log_every, log

    def fit(self, embeddings: np.ndarray, people) -> "TripletTrainer":
        people = np.asarray(people)
        codes, index = np.unique(people, return_inverse=True)
        by_person = [np.flatnonzero(index == c) for c in range(len(codes))]
        by_person = [rows for rows in by_person if len(rows) >= 2]
        if len(by_person) < 2:
            raise ValueError("triplet training needs at least two people with two or more faces each")
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        X = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
        labels = torch.from_numpy(index)
        self.head_ = TripletHead(X.shape[1])
        optimiser = torch.optim.Adam(self.head_.parameters(), lr=self.learning_rate)
        self.history_ = []
        for step in range(1, self.steps + 1):
            rows = torch.from_numpy(pk_batch(by_person, self.people_per_batch, self.faces_per_person, rng))
            loss, active = triplet_loss(self.head_(X[rows]), labels[rows], self.margin, self.mining)
            descend(self, optimiser, step, loss, active)
        self.head_.eval()
        return self


def save_head(head: TripletHead, base_model: str, folder: str | os.PathLike, settings: dict) -> tuple[str, Path]:
    model_id = head_model_id(base_model, head)
    path = Path(folder) / f"{model_id}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_id": model_id, "base_model": base_model, "dimension": head.linear.in_features,
                "state_dict": head.state_dict(), "settings": settings}, path)
    return model_id, path
