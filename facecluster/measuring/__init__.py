"""Scores against the truth, and synthetic faces for scale tests."""
