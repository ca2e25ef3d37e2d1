"""Independent, reproducible random streams: one per (seed, purpose, chunk).

Each chunk of each table draws from its own stream, so the output does not depend on the order
in which chunks are generated, and adding a new kind of data never shifts the existing ones.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _stable_key(name: str) -> int:
    # Python's hash() is salted per process; the stream key must be the same in every run.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def stream(seed: int, name: str, chunk: int = 0) -> np.random.Generator:
    """The random generator for ``name`` (e.g. "transactions") and ``chunk`` under ``seed``."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(np.random.SeedSequence([seed, _stable_key(name), chunk]))
