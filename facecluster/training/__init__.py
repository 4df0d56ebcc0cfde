"""Triplet-loss training of a head, and fine-tuning FaceNet."""
