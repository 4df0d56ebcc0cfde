"""The user's word on people: labels, and forgetting people and photos."""
