"""Fixtures of the text-pipeline tests."""

import numpy as np
import pytest


@pytest.fixture()
def corpus(tmp_path):
    """A 300-line text file of random sentences over a few words (some split into pieces); returns (path, lines)."""
    rng = np.random.default_rng(0)
    plain = ["unbelievable", "cats", "the", "dog", "ran", "far", "away", "home", "mat", "sat", "on"]
    lines = [" ".join(rng.choice(plain, size=rng.integers(1, 9))) + "." for _ in range(300)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines
