"""Faces into people: HDBSCAN (exact and on a kNN graph), copies, split, prune, attach."""
